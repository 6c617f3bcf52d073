"""Dataset files: which format a file holds, detected from its content (not
its name), and its reader.

* our own ``.npz`` (npz);
* RML22 / RadioML 2016 pickles (rml_pickle), read without running code
  unless ``trusted``;
* a SigMF recording written by ``amcee export-stream`` (sigmf_recording).
"""
import os

from .dataset import DatasetError
from .npz import ZIP_MAGIC, load_npz
from .rml_pickle import load_rml_pickle
from .sigmf_recording import is_sigmf_path, load_replay


def load_dataset(path, trusted=False):
    """Read any supported dataset file; the format is detected from its content."""
    path = os.fspath(path)
    if is_sigmf_path(path):
        return load_replay(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset file ({exc.strerror})") from exc
    if not head:
        raise DatasetError(f"{path}: empty file")
    if head.startswith(ZIP_MAGIC):
        return load_npz(path)
    # Pickle protocol >= 2 starts with PROTO (0x80); protocols 0/1 with a dict opcode.
    if head[:1] in (b"\x80", b"}", b"("):
        return load_rml_pickle(path, trusted=trusted)
    raise DatasetError(f"{path}: unknown dataset format (expected an amcee .npz, "
                       "an RML pickle or a SigMF recording)")
