"""SigMF recordings: datasets as raw sample files that ``blocks.file_source``
replays, with the truth in SigMF annotations.

``save_replay(prefix, ds)`` writes ``prefix.sigmf-data``, the frames back to
back, and ``prefix.sigmf-meta``, one annotation per frame (class name and SNR).
Two layouts (frames.LAYOUTS):

* ``"complex"``: ``cf32_le``, L complex64 samples per frame (I + jQ); replay with
  ``blocks.file_source(gr.sizeof_gr_complex * L, path)``;
* ``"rml"``: ``rf32_le``, 2L float32 per frame, the I row then the Q row, as in
  the RML pickles; replay with ``blocks.file_source(gr.sizeof_float * 2 * L, path)``.

``load_replay`` reads either back into a bit-identical Dataset.
"""
import json
import os

import numpy as np

from ..frames import LAYOUTS, check_layout, frames_to_vectors, vectors_to_frames
from .dataset import Dataset, DatasetError

#: RML22 runs 2 samples per 66.67 us LTE symbol: about 30 kHz.
DEFAULT_SAMPLE_RATE = 30e3

#: The SigMF datatype of the data file of each frame layout (frames.LAYOUTS).
SIGMF_DATATYPES = {"complex": "cf32_le", "rml": "rf32_le"}

#: The two files of a recording.
SUFFIXES = (".sigmf-data", ".sigmf-meta")

#: Above this many annotations the JSON is written compact (RML22 would be ~60 MB pretty).
_PRETTY_MAX_FRAMES = 10_000

_EXTENSION = {"name": "amcee", "version": "1.0.0", "optional": True}


def replay_paths(path):
    """``(data_path, meta_path)`` for a prefix or either file of the pair."""
    path = os.fspath(path)
    for suffix in SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return path + ".sigmf-data", path + ".sigmf-meta"


def is_sigmf_path(path):
    """Whether ``path`` names a recording: either of its files, or the
    prefix of a pair when no file of that name exists."""
    return path.endswith(SUFFIXES) or (
        not os.path.exists(path) and os.path.exists(path + ".sigmf-meta"))


def sigmf_layout(path):
    """The frame layout of a SigMF replay recording, or None if ``path`` is not one."""
    data_path, meta_path = replay_paths(path)
    if not os.fspath(path).endswith(SUFFIXES) and not os.path.exists(meta_path):
        return None
    try:
        with open(meta_path) as f:
            layout = json.load(f)["global"].get("amcee:layout")
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{meta_path}: unreadable SigMF metadata ({exc})") from exc
    check_layout(layout)
    return layout


def save_replay(prefix, ds, layout="complex", sample_rate=None):
    """Write ``ds`` as a SigMF pair; returns ``(data_path, meta_path)``."""
    from sigmf import SigMFFile

    check_layout(layout)
    ds.validate()
    datatype = SIGMF_DATATYPES[layout]
    file_dtype, per_frame = LAYOUTS[layout]
    data_path, meta_path = replay_paths(prefix)
    frame_samples = per_frame * ds.frame_length
    sample_rate = float(sample_rate or ds.meta.get("sample_rate", DEFAULT_SAMPLE_RATE))

    frames_to_vectors(ds.frames, layout).astype(file_dtype, copy=False).tofile(data_path)
    # Annotations go in through the metadata dict: add_annotation re-sorts on every call.
    annotations = [
        {"core:sample_start": i * frame_samples, "core:sample_count": frame_samples,
         "core:label": ds.classes[label], "amcee:snr_db": float(snr)}
        for i, (label, snr) in enumerate(zip(ds.labels.tolist(), ds.snrs.tolist()))
    ]
    meta = {
        "global": {
            "core:datatype": datatype,
            "core:sample_rate": sample_rate,
            "core:num_channels": 1,
            "core:recorder": "gr-amcee export-stream",
            "core:description": f"{len(ds)} labelled frames of {ds.frame_length} samples "
                                f"({layout} layout)",
            "core:extensions": [_EXTENSION],
            "amcee:classes": list(ds.classes),
            "amcee:frame_length": ds.frame_length,
            "amcee:layout": layout,
            "amcee:num_frames": len(ds),
            "amcee:dataset_meta": ds.meta,
        },
        "captures": [{"core:sample_start": 0}],
        "annotations": annotations,
    }
    recording = SigMFFile(metadata=meta)
    recording.set_data_file(data_path)  # records the data file's SHA-512
    recording.tofile(meta_path, pretty=len(ds) <= _PRETTY_MAX_FRAMES, overwrite=True)
    return data_path, meta_path


def load_replay(path):
    """Read a SigMF pair written by :func:`save_replay` back into a Dataset."""
    from sigmf import sigmffile
    from sigmf.error import SigMFError

    data_path, meta_path = replay_paths(path)
    for p in (meta_path, data_path):
        if not os.path.exists(p):
            raise DatasetError(f"{p}: missing file of the SigMF pair")
    try:
        # Checks the SHA-512 of the data file: a corrupt or truncated copy fails here.
        recording = sigmffile.fromfile(meta_path)
    except (SigMFError, ValueError, OSError) as exc:
        raise DatasetError(f"{meta_path}: unreadable SigMF recording ({exc})") from exc
    info = recording.get_global_info()
    layout = info.get("amcee:layout")
    if layout not in LAYOUTS or info.get("core:datatype") != SIGMF_DATATYPES[layout]:
        raise DatasetError(f"{meta_path}: not an amcee replay recording "
                           f"(layout {layout!r}, datatype {info.get('core:datatype')!r})")
    classes = tuple(info.get("amcee:classes") or ())
    frame_length = info.get("amcee:frame_length")
    file_dtype, per_frame = LAYOUTS[layout]
    annotations = recording.get_annotations()
    vectors = np.fromfile(data_path, dtype=file_dtype)
    if not isinstance(frame_length, int) or frame_length < 1 or \
            vectors.size != len(annotations) * per_frame * frame_length:
        raise DatasetError(f"{data_path}: holds {vectors.size} values, expected "
                           f"{len(annotations)} frames x {per_frame} x {frame_length}")
    try:
        names = [a["core:label"] for a in annotations]
        snrs = np.array([a["amcee:snr_db"] for a in annotations], np.float32)
        starts = [a["core:sample_start"] for a in annotations]
    except KeyError as exc:
        raise DatasetError(f"{meta_path}: annotation without {exc}") from None
    if starts != list(range(0, len(starts) * per_frame * frame_length, per_frame * frame_length)):
        raise DatasetError(f"{meta_path}: annotations are not one per consecutive frame")
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise DatasetError(f"{meta_path}: unknown label(s) {', '.join(unknown)}; "
                           f"valid names are {', '.join(classes)}")
    index = {name: i for i, name in enumerate(classes)}
    meta = dict(info.get("amcee:dataset_meta") or {})
    meta.update(source=os.fspath(meta_path), sample_rate=info.get("core:sample_rate"))
    ds = Dataset(
        frames=vectors_to_frames(vectors.reshape(len(annotations), -1), layout),
        labels=np.array([index[n] for n in names], np.int64),
        snrs=snrs, classes=classes, meta=meta,
    )
    ds.validate()
    return ds
