"""Dataset files: which format a file holds, detected from its content (not
its name), and its reader.

* our own ``.npz`` (npz);
* RML22 / RadioML 2016 pickles (rml_pickle), read without running code
  unless ``trusted``;
* a SigMF recording written by ``amcee export-stream`` (sigmf_recording);
* RadioML 2018.01A's HDF5 file (radioml2018), its frames mapped, not read.
"""
import os

from .dataset import DatasetError
from .npz import ZIP_MAGIC, load_npz, npz_frame_length
from .radioml2018 import HDF5_MAGIC, load_radioml2018, radioml2018_frame_length
from .rml_pickle import load_rml_pickle, rml_pickle_frame_length
from .sigmf_recording import is_sigmf_path, load_replay, replay_frame_length

#: The files load_dataset reads, as the commands' help and its error name them.
DATASET_FORMATS = ("an amcee .npz, an RML22 / RadioML 2016 pickle, a SigMF recording "
                   "(amcee export-stream) or a RadioML 2018.01A HDF5 file")


def _reader(path, trusted):
    """The function that reads ``path``'s format, detected from its content:
    ``(load, frame_length)``."""
    if is_sigmf_path(path):
        return load_replay, replay_frame_length
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_MAGIC))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset file ({exc.strerror})") from exc
    if not head:
        raise DatasetError(f"{path}: empty file")
    if head.startswith(ZIP_MAGIC):
        return load_npz, npz_frame_length
    if head[:4] == HDF5_MAGIC[:4]:  # a file cut inside the signature is a truncated one
        return load_radioml2018, radioml2018_frame_length
    # Pickle protocol >= 2 starts with PROTO (0x80); protocols 0/1 with a dict opcode.
    if head[:1] in (b"\x80", b"}", b"("):
        return (lambda p: load_rml_pickle(p, trusted=trusted)), rml_pickle_frame_length
    raise DatasetError(f"{path}: unknown dataset format (expected {DATASET_FORMATS})")


def load_dataset(path, trusted=False):
    """Read any supported dataset file; the format is detected from its content."""
    path = os.fspath(path)
    load, _ = _reader(path, trusted)
    return load(path)


def dataset_frame_length(path):
    """Samples per frame of a dataset file, read from its header (npz: the
    frames' .npy header; HDF5: X's shape; SigMF: the global metadata; pickle:
    the first array), not from its frames: cheap enough for GRC to size a
    port with it on every redraw.  The file is not checked beyond that;
    load_dataset checks it."""
    path = os.fspath(path)
    if not path:
        raise DatasetError("no dataset file given")
    _, frame_length = _reader(path, trusted=False)
    return frame_length(path)
