"""Datasets of labelled I/Q frames: one in-memory type, safe readers and writers.

Formats understood by :func:`load_dataset` (detected from the file, not its name):

* our own ``.npz`` (:func:`save_dataset`): plain arrays, ``allow_pickle=False``,
  metadata as a JSON string, a format version;
* RML22 / RadioML 2016 pickles: ``{(modulation, snr_db): float array (n, 2, L)}``.
  They are read by a restricted unpickler that only rebuilds numpy arrays, so a
  downloaded file cannot run code; ``trusted=True`` opts in to plain pickle;
* a SigMF recording written by :mod:`replay_files` (``.sigmf-meta``/``.sigmf-data``).

Every format or validation problem raises :class:`DatasetError` naming the file.
"""
import json
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .labels import RML22_CLASSES, RML2016_CLASSES

#: Version of our .npz layout; bump when the array set changes.
NPZ_FORMAT_VERSION = 1
_NPZ_KEYS = ("frames", "labels", "snrs", "classes", "meta_json", "format_version")
_ZIP_MAGIC = b"PK\x03\x04"
_SIGMF_SUFFIXES = (".sigmf-meta", ".sigmf-data")


class DatasetError(ValueError):
    """A dataset file or in-memory dataset is malformed."""


@dataclass
class Dataset:
    frames: np.ndarray  # float32 (N, 2, L): row 0 = I, row 1 = Q
    labels: np.ndarray  # int64 (N,), index into classes
    snrs: np.ndarray    # float32 (N,) nominal SNR in dB
    classes: tuple      # class names in index order
    meta: dict = field(default_factory=dict)  # JSON-serialisable

    def __len__(self):
        return int(self.labels.shape[0])

    @property
    def frame_length(self):
        return int(self.frames.shape[2])

    def subset(self, idx):
        """A new Dataset with the frames at ``idx`` (index array or boolean mask)."""
        idx = np.asarray(idx)
        return Dataset(self.frames[idx], self.labels[idx], self.snrs[idx],
                       tuple(self.classes), dict(self.meta))

    def validate(self):
        """Raise DatasetError unless every field has the documented shape, dtype and range."""
        where = f" in {self.meta['source']}" if self.meta.get("source") else ""

        def fail(problem):
            raise DatasetError(problem + where)

        frames, labels, snrs = self.frames, self.labels, self.snrs
        for name, arr, dtype in (("frames", frames, np.float32),
                                 ("labels", labels, np.int64),
                                 ("snrs", snrs, np.float32)):
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
                fail(f"{name} must be a numpy {np.dtype(dtype)} array, "
                     f"got {getattr(arr, 'dtype', type(arr).__name__)}")
        if frames.ndim != 3 or frames.shape[1] != 2 or frames.shape[2] < 1:
            fail(f"frames must have shape (N, 2, L), got {frames.shape}")
        n = frames.shape[0]
        if n == 0:
            fail("dataset has no frames")
        if labels.shape != (n,) or snrs.shape != (n,):
            fail(f"labels {labels.shape} and snrs {snrs.shape} must have shape ({n},)")
        if (not isinstance(self.classes, tuple) or not self.classes
                or not all(isinstance(c, str) for c in self.classes)
                or len(set(self.classes)) != len(self.classes)):
            fail(f"classes must be a non-empty tuple of distinct names, got {self.classes!r}")
        if labels.min() < 0 or labels.max() >= len(self.classes):
            fail(f"labels must lie in 0..{len(self.classes) - 1} "
                 f"({', '.join(self.classes)}), got {labels.min()}..{labels.max()}")
        if not np.isfinite(snrs).all():
            fail("snrs contain NaN or Inf")
        bad = ~np.isfinite(frames).all(axis=(1, 2))
        if bad.any():
            fail(f"{int(bad.sum())} frame(s) contain NaN or Inf, first at index {int(np.argmax(bad))}")
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as exc:
            fail(f"meta is not JSON-serialisable: {exc}")


# --------------------------------------------------------------------- own .npz
def save_dataset(path, ds):
    """Write ``ds`` to ``path`` in our pickle-free .npz format (atomic replace)."""
    ds.validate()
    arrays = {
        "frames": ds.frames,
        "labels": ds.labels,
        "snrs": ds.snrs,
        "classes": np.array(ds.classes, dtype=np.str_),
        "meta_json": np.array(json.dumps(ds.meta)),
        "format_version": np.array(NPZ_FORMAT_VERSION, dtype=np.int64),
    }
    path = os.fspath(path)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:  # a file object stops numpy from appending ".npz"
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(f"{path}: not an amcee dataset, missing arrays {missing}")
            version = int(npz["format_version"])
            if version != NPZ_FORMAT_VERSION:
                raise DatasetError(f"{path}: unsupported dataset format version {version} "
                                   f"(this module reads {NPZ_FORMAT_VERSION})")
            ds = Dataset(frames=npz["frames"], labels=npz["labels"], snrs=npz["snrs"],
                         classes=tuple(str(c) for c in npz["classes"]),
                         meta=json.loads(str(npz["meta_json"])))
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated dataset file ({exc})") from exc
    if not isinstance(ds.meta, dict):
        raise DatasetError(f"{path}: metadata is not a JSON object")
    ds.meta["source"] = os.fspath(path)
    ds.validate()
    return ds


# --------------------------------------------------------------- RML pickles
def _refuse_object_dtype(*args):
    """``numpy.dtype`` for the unpickler: object dtypes would let a pickle hold anything."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refuses to build arrays of dtype {dtype}")
    return dtype


def _numpy_globals():
    """The globals a pickled numpy array refers to, for numpy 1.x and 2.x writers."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray, numeric
    allowed = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(package + ".multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(package + ".numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = _refuse_object_dtype
    # Python 3 writes bytes in protocol <= 2 as _codecs.encode(text, "latin1").
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


def _latin1_encode(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refuses codec {encoding!r}")
    return text.encode("latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy-array globals, so no code can run."""

    def __init__(self, file, source):
        super().__init__(file, encoding="latin1")  # Python-2 pickles (RadioML 2016)
        self._allowed = _numpy_globals()
        self._source = source

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DatasetError(
                f"{self._source}: refuses to load global {module}.{name}: an RML pickle holds "
                "only numpy arrays (pass trusted=True only for files you trust)") from None


def _read_pickle(path, trusted):
    with open(path, "rb") as f:
        try:
            if trusted:
                return pickle.load(f, encoding="latin1")
            return _ArrayOnlyUnpickler(f, path).load()
        except DatasetError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError, OverflowError, ImportError) as exc:
            raise DatasetError(f"{path}: corrupt, truncated or unsupported pickle "
                               f"({type(exc).__name__}: {exc})") from exc


def _pick_classes(path, names, classes):
    """The class list a pickle's labels index into (override, RML22, or RadioML 2016)."""
    if classes is not None:
        candidates = [tuple(classes)]
    else:
        candidates = [RML22_CLASSES, RML2016_CLASSES]
    for candidate in candidates:
        if names <= set(candidate):
            return tuple(candidate)
    valid = candidates[-1] if classes is not None else sorted(set(RML22_CLASSES) | set(RML2016_CLASSES))
    raise DatasetError(f"{path}: unknown label(s) {', '.join(sorted(names - set(valid)))}; "
                       f"valid names are {', '.join(valid)}")


def load_rml_pickle(path, classes=None, trusted=False):
    """Read an RML22 / RadioML 2016 pickle ``{(mod, snr): (n, 2, L) array}``."""
    path = os.fspath(path)
    data = _read_pickle(path, trusted)
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected a non-empty dict {{(modulation, snr): array}}, "
                           f"got {type(data).__name__}")
    entries = []
    for key, value in data.items():
        if (not isinstance(key, tuple) or len(key) != 2 or not isinstance(key[0], (str, bytes))
                or isinstance(key[1], bool) or not isinstance(key[1], (int, np.integer))):
            raise DatasetError(f"{path}: key {key!r} is not a (modulation, snr_db) pair")
        mod = key[0].decode("latin1") if isinstance(key[0], bytes) else key[0]
        if (not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64)
                or value.ndim != 3 or value.shape[1] != 2):
            raise DatasetError(f"{path}: value for {key!r} must be a float32/float64 array "
                               f"(n, 2, L), got {getattr(value, 'dtype', type(value).__name__)} "
                               f"{getattr(value, 'shape', '')}")
        entries.append((mod, int(key[1]), value))
    lengths = {v.shape[2] for _, _, v in entries}
    if len(lengths) != 1:
        raise DatasetError(f"{path}: frames have different lengths {sorted(lengths)}")
    class_list = _pick_classes(path, {mod for mod, _, _ in entries}, classes)
    # Deterministic frame order: class index, then SNR, then the file's order.
    entries.sort(key=lambda e: (class_list.index(e[0]), e[1]))
    counts = [v.shape[0] for _, _, v in entries]
    frames = np.empty((sum(counts), 2, lengths.pop()), np.float32)
    start = 0
    for _, _, value in entries:
        frames[start:start + len(value)] = value  # casts float64 files
        start += len(value)
    ds = Dataset(
        frames=frames,
        labels=np.repeat(np.array([class_list.index(m) for m, _, _ in entries], np.int64), counts),
        snrs=np.repeat(np.array([s for _, s, _ in entries], np.float32), counts),
        classes=class_list,
        meta={"format": "rml-pickle", "source": path,
              "variant": {RML22_CLASSES: "RML22", RML2016_CLASSES: "RadioML2016.10a"}
              .get(class_list, "custom")},
    )
    ds.validate()
    return ds


def save_rml_pickle(path, ds, protocol=4):
    """Write ``ds`` as ``{(mod, snr:int): float32 (n, 2, L)}``, the RML22/RadioML layout.

    Protocol 4 is read by any Python 3 (``pickle.load(f, encoding="latin1")`` too)
    and, unlike protocol 2, stores array bytes without re-encoding them.
    """
    ds.validate()
    if not np.array_equal(ds.snrs, np.round(ds.snrs)):
        raise DatasetError("save_rml_pickle: RML pickles key frames by integer SNR; "
                           "this dataset has fractional SNRs")
    out = {}
    for label in np.unique(ds.labels):
        for snr in np.unique(ds.snrs[ds.labels == label]):
            rows = (ds.labels == label) & (ds.snrs == snr)
            out[(ds.classes[label], int(snr))] = np.ascontiguousarray(ds.frames[rows])
    path = os.fspath(path)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        pickle.dump(out, f, protocol=protocol)
    os.replace(tmp, path)


# ------------------------------------------------------------------- dispatch
def _is_sigmf(path):
    return path.endswith(_SIGMF_SUFFIXES) or (
        not os.path.exists(path) and os.path.exists(path + ".sigmf-meta"))


def load_dataset(path, trusted=False):
    """Read any supported dataset file; the format is detected from its content."""
    path = os.fspath(path)
    if _is_sigmf(path):
        from .replay_files import load_replay  # imports sigmf only when needed
        return load_replay(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset file ({exc.strerror})") from exc
    if not head:
        raise DatasetError(f"{path}: empty file")
    if head.startswith(_ZIP_MAGIC):
        return _load_npz(path)
    # Pickle protocol >= 2 starts with PROTO (0x80); protocols 0/1 with a dict opcode.
    if head[:1] in (b"\x80", b"}", b"("):
        return load_rml_pickle(path, trusted=trusted)
    raise DatasetError(f"{path}: unknown dataset format (expected an amcee .npz, "
                       "an RML pickle or a SigMF recording)")


# ---------------------------------------------------------------------- split
def _split_counts(n, test_fraction, val_fraction):
    """(test, validation) frames that paper_split takes from a group of ``n``."""
    n_test = int(np.floor(n * test_fraction + 0.5))
    return n_test, int(np.floor((n - n_test) * val_fraction + 0.5))


def min_frames_per_group(test_fraction=0.1, val_fraction=0.1):
    """Fewest frames a (class, SNR) group needs for paper_split to give it at
    least one training, one validation and one test frame (6 for 10 % / 10 %)."""
    for n in range(3, 100_000):
        n_test, n_val = _split_counts(n, test_fraction, val_fraction)
        if n_test >= 1 and n_val >= 1 and n - n_test - n_val >= 1:
            return n
    raise ValueError(f"test_fraction {test_fraction} and val_fraction {val_fraction} leave a part empty")


def paper_split(ds, seed=0, test_fraction=0.1, val_fraction=0.1):
    """Stratified split on (class, SNR): ``test_fraction`` of every group is test,
    ``val_fraction`` of the rest validation, the remainder training.

    ``ds`` is a Dataset or a ``(labels, snrs)`` pair. Returns sorted int64 index
    arrays ``(train, val, test)``; the same seed always gives the same split.
    RML22's 420,000 frames give 340,200 / 37,800 / 42,000.  A group too small
    to give every part a frame (min_frames_per_group) is a DatasetError.
    """
    labels, snrs = (ds.labels, ds.snrs) if isinstance(ds, Dataset) else ds
    labels, snrs = np.asarray(labels), np.asarray(snrs)
    if labels.shape != snrs.shape or labels.ndim != 1:
        raise DatasetError(f"labels {labels.shape} and snrs {snrs.shape} must be equal-length vectors")
    if not len(labels):
        raise DatasetError("the dataset is empty: nothing to split")
    snr_values, snr_index = np.unique(snrs, return_inverse=True)
    cells, group = np.unique(np.stack([labels, snr_index]), axis=1, return_inverse=True)
    group = group.reshape(-1)
    sizes = np.bincount(group)
    needed = min_frames_per_group(test_fraction, val_fraction)
    if sizes.min() < needed:
        label, snr = cells[:, int(sizes.argmin())]
        names = ds.classes if isinstance(ds, Dataset) else None
        name = names[label] if names is not None and 0 <= label < len(names) else f"class {label}"
        raise DatasetError(
            f"dataset too small for the paper's split: {name} at {float(snr_values[snr]):g} dB has "
            f"{int(sizes.min())} frames; every (class, SNR) group needs at least {needed}, so that its "
            f"{test_fraction:.0%} test and {val_fraction:.0%}-of-the-rest validation part get a frame "
            f"each ({int((sizes < needed).sum())} of {len(sizes)} groups have fewer)")
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for members in np.split(order, bounds):
        members = rng.permutation(members)
        n_test, n_val = _split_counts(len(members), test_fraction, val_fraction)
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test:n_test + n_val])
        parts[0].append(members[n_test + n_val:])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def split_indices(ds, split, seed=0):
    """Indices of ``split`` ("all", "train", "val" or "test") of :func:`paper_split`."""
    if split in (None, "all"):
        return np.arange(len(ds), dtype=np.int64)
    names = ("train", "val", "test")
    if split not in names:
        raise DatasetError(f"unknown split {split!r}; expected all, {', '.join(names)}")
    return paper_split(ds, seed=seed)[names.index(split)]
