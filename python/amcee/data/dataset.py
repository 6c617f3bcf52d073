"""Datasets of labelled I/Q frames: the one in-memory type and the paper's split.

A Dataset holds float32 IQ frames [N, 2, L] (row 0 = I, row 1 = Q), their
class labels and nominal SNRs; files.load_dataset reads one from any
supported file (npz, rml_pickle, sigmf_recording, radioml2018), and every
format or validation problem raises :class:`DatasetError` naming the file.
``frames`` may be a read-only numpy.memmap over the file (radioml2018): code
that reads frames indexes the rows it needs instead of copying all of them.
"""
import json
import sys
from dataclasses import dataclass, field

import numpy as np


#: Frames validate() checks per step.
VALIDATE_CHUNK_FRAMES = 8192


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
        first_bad, bad_count = None, 0
        for start in range(0, n, VALIDATE_CHUNK_FRAMES):  # bounded memory for file-mapped frames
            bad = ~np.isfinite(frames[start:start + VALIDATE_CHUNK_FRAMES]).all(axis=(1, 2))
            if bad.any() and first_bad is None:
                first_bad = start + int(np.argmax(bad))
            bad_count += int(bad.sum())
        if bad_count:
            fail(f"{bad_count} frame(s) contain NaN or Inf, first at index {first_bad}")
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as exc:
            fail(f"meta is not JSON-serialisable: {exc}")


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


#: Parts of a dataset split_indices gives: the whole, then paper_split's three parts in its order.
SPLITS = ("all", "train", "val", "test")


def split_indices(ds, split, seed=0):
    """Indices of ``split`` (one of SPLITS) of :func:`paper_split`."""
    if split in (None, "all"):
        return np.arange(len(ds), dtype=np.int64)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected {', '.join(SPLITS)}")
    return paper_split(ds, seed=seed)[SPLITS.index(split) - 1]


def labels_for_model(ds, classes, frame_len, model="the model"):
    """``ds``'s labels as indices into a model's ``classes`` (-1 for a class
    the model lacks) and the mask of the frames it can score.

    A dataset whose frames have another length than ``frame_len``, or that
    shares no class with the model, is a DatasetError; classes the model
    lacks (RadioML 2016's AM-SSB under an RML22 model) are named in a
    warning on stderr and their frames left out of the score."""
    where = f" ({ds.meta['source']})" if ds.meta.get("source") else ""
    if ds.frame_length != int(frame_len):
        raise DatasetError(f"the dataset{where} has frames of {ds.frame_length} samples, {model} takes "
                           f"{int(frame_len)}: use a model trained on frames of this length")
    index = {name: i for i, name in enumerate(classes)}
    mapping = np.array([index.get(name, -1) for name in ds.classes], np.int64)
    labels = mapping[ds.labels]
    scored = labels >= 0
    present = np.bincount(ds.labels, minlength=len(ds.classes)) > 0
    missing = [name for name, i, there in zip(ds.classes, mapping, present) if i < 0 and there]
    if not scored.any():
        raise DatasetError(f"the dataset{where} shares no class with {model}: its classes are "
                           f"{', '.join(ds.classes)}; the model's {', '.join(classes)}")
    if missing:
        print(f"warning: {model} has no class {', '.join(missing)} of the dataset{where}: its "
              f"{int((~scored).sum())} frames of {'that class' if len(missing) == 1 else 'those classes'} "
              "are left out of the score", file=sys.stderr, flush=True)
    return labels, scored
