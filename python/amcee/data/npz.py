"""Our own dataset file: a pickle-free .npz (``amcee synth`` writes it).

Plain arrays, loaded with ``allow_pickle=False``; the metadata as a JSON
string; a format version.
"""
import json
import math
import os
import zipfile
import zlib

import numpy as np

from .dataset import Dataset, DatasetError

#: Version of our .npz layout; bump when the array set changes.
NPZ_FORMAT_VERSION = 1
_NPZ_KEYS = ("frames", "labels", "snrs", "classes", "meta_json", "format_version")
#: How every .npz (a zip archive) starts.
ZIP_MAGIC = b"PK\x03\x04"


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


#: Most a compressed member may unpack to per byte it takes in the file: a
#: member of zeros compressed a thousandfold is a zip bomb, not frames.
MAX_UNPACK_RATIO = 100


def _check_members(path):
    """Each array's declared shape x itemsize against the bytes its member
    holds, read from the .npy headers before numpy allocates anything."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > MAX_UNPACK_RATIO * info.compress_size + (1 << 20):
                raise DatasetError(f"{path}: member {info.filename} unpacks to {info.file_size} bytes from "
                                   f"{info.compress_size} (more than {MAX_UNPACK_RATIO}x: not a dataset)")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = np.lib.format._read_array_header(f, version)
                header = f.tell() if f.seekable() else 0
            if dtype.hasobject:
                raise DatasetError(f"{path}: array {info.filename} has dtype {dtype} (objects)")
            needed = math.prod(shape) * dtype.itemsize
            if needed > info.file_size - header:
                raise DatasetError(f"{path}: array {info.filename} declares shape {shape} ({needed} bytes) "
                                   f"but holds {info.file_size - header} bytes")


def _scalar(npz, key, kind, path):
    """A 0-d array of ``kind`` (numpy dtype kinds) as a Python value."""
    value = npz[key]
    if value.shape != () or value.dtype.kind not in kind:
        raise DatasetError(f"{path}: {key} must be a single value of kind {kind!r}, "
                           f"got dtype {value.dtype} shape {value.shape}")
    return value.item()


def load_npz(path):
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(f"{path}: not an amcee dataset, missing arrays {missing}")
            version = _scalar(npz, "format_version", "iu", path)
            if version != NPZ_FORMAT_VERSION:
                raise DatasetError(f"{path}: unsupported dataset format version {version} "
                                   f"(this module reads {NPZ_FORMAT_VERSION})")
            classes = npz["classes"]
            if classes.ndim != 1 or classes.dtype.kind != "U":
                raise DatasetError(f"{path}: classes must be a list of names, got dtype {classes.dtype} "
                                   f"shape {classes.shape}")
            ds = Dataset(frames=npz["frames"], labels=npz["labels"], snrs=npz["snrs"],
                         classes=tuple(str(c) for c in classes),
                         meta=json.loads(_scalar(npz, "meta_json", "U", path)))
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, TypeError,
            RecursionError, MemoryError, NotImplementedError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated dataset file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ds.meta, dict):
        raise DatasetError(f"{path}: metadata is not a JSON object")
    ds.meta["source"] = os.fspath(path)
    ds.validate()
    return ds


def npz_frame_length(path):
    """Samples per frame of an amcee .npz, from the ``frames`` array's .npy
    header alone (no array is read)."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive, archive.open("frames.npy") as f:
            version = np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format._read_array_header(f, version)
    except KeyError:
        raise DatasetError(f"{path}: not an amcee dataset, it has no array frames") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated dataset file ({type(exc).__name__}: {exc})") from exc
    if len(shape) != 3 or shape[1] != 2 or shape[2] < 1:
        raise DatasetError(f"{path}: frames must have shape (N, 2, L), got {shape}")
    return int(shape[2])
