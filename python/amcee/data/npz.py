"""Our own dataset file: a pickle-free .npz (``amcee synth`` writes it).

Plain arrays, loaded with ``allow_pickle=False``; the metadata as a JSON
string; a format version.
"""
import json
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


def load_npz(path):
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
