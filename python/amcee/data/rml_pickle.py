"""RML22 / RadioML 2016 pickles: ``{(modulation, snr_db): float array (n, 2, L)}``.

They are read by a restricted unpickler that only rebuilds numpy arrays, so a
downloaded file cannot run code; ``trusted=True`` opts in to plain pickle.
"""
import os
import pickle

import numpy as np

from ..labels import RML22_CLASSES, RML2016_CLASSES
from .dataset import Dataset, DatasetError


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
