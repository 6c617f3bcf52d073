"""RadioML 2018.01A (DeepSig's ``GOLD_XYZ_OSC.0001_1024.hdf5``): an HDF5 file
with three datasets of N rows each,

* ``X`` float32 [N, L, 2]: frames of L = 1024 samples, I and Q on the last axis;
* ``Y`` [N, 24]: one-hot class rows;
* ``Z`` [N, 1]: the nominal SNR in dB.

The distributed file is 21 GB.  ``X`` is not read into memory: the reader
checks with h5py that it is stored contiguously and uncompressed, and maps
its bytes with ``numpy.memmap``, so the Dataset's ``frames`` is a view that
reads a frame from the page cache or the disk when it is indexed (training
gathers its batches so, training/train.py).  ``Y`` and ``Z`` (about 500 MB
and 20 MB for the full file) are read and checked in chunks of
CHECK_CHUNK_FRAMES rows; only the labels and SNRs they give stay in memory.

A copy of the file whose ``X`` is chunked or compressed (h5py's
``compression=``) cannot be mapped; ``h5repack -l X:CONTI in.hdf5 out.hdf5``
(Debian package hdf5-tools) writes a mappable one.
"""
import os

import numpy as np

from ..atomic import atomic_path
from .dataset import Dataset, DatasetError

#: The 24 classes in the index order of the one-hot ``Y`` rows.  This is the
#: order of O'Shea, Roy and Clancy, "Over-the-Air Deep Learning Based Radio
#: Signal Classification" (IEEE JSTSP 12(1), 2018), which introduced the
#: dataset, and of TorchSig's reader (``torchsig.datasets.signal_classes.
#: radioml2018``).  The ``classes.txt`` shipped in DeepSig's archive lists the
#: same names in another order (32PSK, 16APSK, 32QAM, FM, ...) that does not
#: match the labels; the corrected list circulates as ``classes-fixed.json``
#: (the Kaggle copy of the dataset) and is this one.
RML2018_CLASSES = (
    "OOK", "4ASK", "8ASK", "BPSK", "QPSK", "8PSK", "16PSK", "32PSK",
    "16APSK", "32APSK", "64APSK", "128APSK", "16QAM", "32QAM", "64QAM", "128QAM",
    "256QAM", "AM-SSB-WC", "AM-SSB-SC", "AM-DSB-WC", "AM-DSB-SC", "FM", "GMSK", "OQPSK",
)

#: The dataset's SNR grid (same paper and DeepSig's description): -20 to 30 dB
#: in steps of 2, 26 values.  A ``Z`` value off this grid is refused: it is
#: not this dataset, or not intact.
RML2018_SNRS = tuple(range(-20, 31, 2))

#: How every HDF5 file without a user block starts.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: Rows of Y, Z and X checked per step: bounded memory (a chunk of X is
#: 32 MB at 1024 samples) whatever the file's size.
CHECK_CHUNK_FRAMES = 4096

_FORMAT = "radioml2018-hdf5"


def _h5py(path):
    try:
        import h5py
    except ImportError as exc:
        raise DatasetError(f"{path}: reading an HDF5 dataset (RadioML 2018.01A) needs h5py, which this "
                           f"Python lacks ({exc}): run scripts/setup.sh (Debian package python3-h5py)") from None
    return h5py


def _member(f, name, path):
    import h5py

    item = f.get(name)
    if not isinstance(item, h5py.Dataset):
        raise DatasetError(f"{path}: not a RadioML 2018.01A file: it has no dataset {name!r} "
                           f"(expected X [N, 1024, 2], Y [N, 24], Z [N, 1]; found {sorted(f.keys())})")
    return item


def _frames_view(path, x):
    """X's bytes in the file as a read-only memmap [N, 2, L] (row 0 = I)."""
    n, length, iq = x.shape
    if x.dtype != np.dtype("<f4"):
        raise DatasetError(f"{path}: X must be little-endian float32, got {x.dtype.str}")
    offset = x.id.get_offset()
    if x.chunks is not None or x.compression is not None or offset is None or x.external:
        raise DatasetError(f"{path}: X is stored chunked, compressed or outside the file; amcee maps its "
                           "bytes and needs them contiguous in the file: rewrite it with "
                           "`h5repack -l X:CONTI IN OUT` (Debian package hdf5-tools)")
    needed = offset + n * length * iq * 4
    size = os.path.getsize(path)
    if needed > size:
        raise DatasetError(f"{path}: truncated file: X needs bytes up to {needed}, the file has {size}")
    mapped = np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=(n, length, iq))
    return mapped.transpose(0, 2, 1)


def _labels(path, y, n):
    """Class indices of the one-hot rows of Y, checked CHECK_CHUNK_FRAMES at a time."""
    if y.ndim != 2 or y.shape != (n, len(RML2018_CLASSES)):
        raise DatasetError(f"{path}: Y must have shape ({n}, {len(RML2018_CLASSES)}) (one-hot rows over "
                           f"RadioML 2018.01A's {len(RML2018_CLASSES)} classes), got {y.shape}")
    if y.dtype.kind not in "iufb":
        raise DatasetError(f"{path}: Y must hold numbers, got dtype {y.dtype}")
    labels = np.empty(n, np.int64)
    for start in range(0, n, CHECK_CHUNK_FRAMES):
        rows = np.asarray(y[start:start + CHECK_CHUNK_FRAMES])
        ones = rows == 1
        bad = ~(((rows == 0) | ones).all(axis=1) & (ones.sum(axis=1) == 1))
        if bad.any():
            first = int(np.argmax(bad))
            raise DatasetError(f"{path}: Y row {start + first} is not one-hot "
                               f"(a single 1 among 0s): {rows[first].tolist()}")
        labels[start:start + len(rows)] = ones.argmax(axis=1)
    return labels


def _snrs(path, z, n):
    if z.shape not in ((n, 1), (n,)):
        raise DatasetError(f"{path}: Z must have shape ({n}, 1) (the SNR of each frame in dB), got {z.shape}")
    if z.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: Z must hold numbers, got dtype {z.dtype}")
    snrs = np.empty(n, np.float32)
    grid = np.array(RML2018_SNRS, np.float64)
    for start in range(0, n, CHECK_CHUNK_FRAMES):
        values = np.asarray(z[start:start + CHECK_CHUNK_FRAMES], np.float64).reshape(-1)
        bad = ~np.isin(values, grid)
        if bad.any():
            first = int(np.argmax(bad))
            raise DatasetError(f"{path}: Z row {start + first} holds {values[first]!r} dB, not one of RadioML "
                               f"2018.01A's SNRs ({RML2018_SNRS[0]} to {RML2018_SNRS[-1]} dB in steps of 2)")
        snrs[start:start + len(values)] = values
    return snrs


def load_radioml2018(path):
    """Read a RadioML 2018.01A HDF5 file; ``frames`` maps X without reading it."""
    path = os.fspath(path)
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as f:
            x, y, z = (_member(f, name, path) for name in ("X", "Y", "Z"))
            if x.ndim != 3 or x.shape[2] != 2 or x.shape[1] < 1:
                raise DatasetError(f"{path}: X must have shape (N, L, 2) (I and Q on the last axis), "
                                   f"got {x.shape}")
            n = x.shape[0]
            if n == 0:
                raise DatasetError(f"{path}: dataset has no frames")
            frames = _frames_view(path, x)
            labels = _labels(path, y, n)
            snrs = _snrs(path, z, n)
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as exc:
        # h5py reports a truncated or corrupt file as OSError ("Unable to open
        # file (truncated file: ...)", "Can't read data ...").
        raise DatasetError(f"{path}: corrupt or truncated HDF5 file ({type(exc).__name__}: {exc})") from exc
    ds = Dataset(frames=frames, labels=labels, snrs=snrs, classes=RML2018_CLASSES,
                 meta={"format": _FORMAT, "source": path, "variant": "RadioML2018.01A"})
    ds.validate()
    return ds


def radioml2018_frame_length(path):
    """Samples per frame of a RadioML 2018.01A file: X's shape from the HDF5
    header, nothing of the data read."""
    path = os.fspath(path)
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as f:
            shape = _member(f, "X", path).shape
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated HDF5 file ({type(exc).__name__}: {exc})") from exc
    if len(shape) != 3 or shape[2] != 2 or shape[1] < 1:
        raise DatasetError(f"{path}: X must have shape (N, L, 2) (I and Q on the last axis), got {shape}")
    return int(shape[1])


def save_radioml2018(path, ds):
    """Write ``ds`` in RadioML 2018.01A's layout (X float32 [N, L, 2], one-hot
    int64 Y, int64 Z [N, 1]), contiguous so that load_radioml2018 maps it;
    atomic replace.  Its classes must be RadioML 2018.01A's, its SNRs on the grid."""
    ds.validate()
    if tuple(ds.classes) != RML2018_CLASSES:
        raise DatasetError(f"save_radioml2018: the dataset's classes are not RadioML 2018.01A's: {ds.classes}")
    h5py = _h5py(path)
    n = len(ds)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        x = f.create_dataset("X", shape=(n, ds.frame_length, 2), dtype="<f4")
        y = f.create_dataset("Y", shape=(n, len(RML2018_CLASSES)), dtype="<i8")
        for start in range(0, n, CHECK_CHUNK_FRAMES):
            rows = slice(start, start + CHECK_CHUNK_FRAMES)
            x[rows] = np.asarray(ds.frames[rows]).transpose(0, 2, 1)
            y[rows] = np.eye(len(RML2018_CLASSES), dtype=np.int64)[ds.labels[rows]]
        f.create_dataset("Z", data=np.round(ds.snrs).astype(np.int64).reshape(-1, 1))
