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
import codecs
import hashlib
import json
import math
import os
import re

import numpy as np

from ..atomic import atomic_path, refuse_existing
from ..frames import LAYOUTS, check_layout, frames_to_vectors, vectors_to_frames
from .dataset import Dataset, DatasetError

#: RML22 runs 2 samples per 66.67 us LTE symbol: about 30 kHz.
DEFAULT_SAMPLE_RATE = 30e3

#: The SigMF datatype of the data file of each frame layout (frames.LAYOUTS).
SIGMF_DATATYPES = {"complex": "cf32_le", "rml": "rf32_le"}

#: The two files of a recording.
SUFFIXES = (".sigmf-data", ".sigmf-meta")

#: Frames save_replay converts and writes per step: bounded memory (32 MB
#: of frames at 1024 samples) whatever the dataset's size.
WRITE_CHUNK_FRAMES = 4096

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
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DatasetError(f"{meta_path}: unreadable SigMF metadata ({exc})") from exc
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise DatasetError(f"{meta_path}: amcee:layout {layout!r} is none of {', '.join(LAYOUTS)}")
    return layout


def _json_block(value, indent):
    """``value`` as pretty JSON nested ``indent`` spaces deep (sigmf's key order: sorted)."""
    return json.dumps(value, indent=4, sort_keys=True).replace("\n", "\n" + " " * indent)


def save_replay(prefix, ds, layout="complex", sample_rate=None, overwrite=False, rows=None,
                chunk_frames=None):
    """Write the frames ``rows`` of ``ds`` (default: all, in order) as a SigMF
    pair; returns ``(data_path, meta_path)``.

    Frames are converted and written WRITE_CHUNK_FRAMES (``chunk_frames``) at
    a time, and the annotations streamed into the metadata, so that memory
    stays bounded whatever the dataset's size (a file-mapped RadioML 2018
    file is never copied whole).  sigmf's SigMFFile would hold every
    annotation as a dict (gigabytes for 2.5 M frames), so the metadata is
    written here, in the layout SigMFFile writes (global, captures,
    annotations; keys sorted); the tests check it with sigmf's validator.

    An existing recording is replaced only with ``overwrite``.  Both files are
    written atomically (atomic.py); a process killed between the two renames
    leaves a new data file whose SHA-512 the old metadata refuses, never a
    recording that loads mixed."""
    from sigmf import __specification__ as sigmf_specification

    check_layout(layout)
    ds.validate()
    rows = np.arange(len(ds), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if rows.ndim != 1 or not rows.size:
        raise DatasetError("save_replay: no frames to write")
    if rows.min() < 0 or rows.max() >= len(ds):
        raise DatasetError(f"save_replay: rows must lie in 0..{len(ds) - 1}")
    chunk = int(chunk_frames or WRITE_CHUNK_FRAMES)
    datatype = SIGMF_DATATYPES[layout]
    file_dtype, per_frame = LAYOUTS[layout]
    data_path, meta_path = replay_paths(prefix)
    if not overwrite:
        for path in (data_path, meta_path):
            refuse_existing(path, "recording file")
    frame_samples = per_frame * ds.frame_length
    sample_rate = float(sample_rate or ds.meta.get("sample_rate", DEFAULT_SAMPLE_RATE))
    labels, snrs = ds.labels[rows], ds.snrs[rows]
    label_json = [json.dumps(name) for name in ds.classes]

    with atomic_path(data_path) as data_tmp, atomic_path(meta_path) as meta_tmp:
        sha512 = hashlib.sha512()
        with open(data_tmp, "wb") as f:
            for start in range(0, len(rows), chunk):
                frames = np.asarray(ds.frames[rows[start:start + chunk]])
                vectors = np.ascontiguousarray(frames_to_vectors(frames, layout), file_dtype)
                sha512.update(vectors)  # the array's own bytes, no copy
                vectors.tofile(f)
        info = {
            "core:datatype": datatype,
            "core:sample_rate": sample_rate,
            "core:num_channels": 1,
            "core:recorder": "gr-amcee export-stream",
            "core:description": f"{len(rows)} labelled frames of {ds.frame_length} samples "
                                f"({layout} layout)",
            "core:extensions": [_EXTENSION],
            "core:sha512": sha512.hexdigest(),
            "core:version": sigmf_specification,
            "amcee:classes": list(ds.classes),
            "amcee:frame_length": ds.frame_length,
            "amcee:layout": layout,
            "amcee:num_frames": len(rows),
            "amcee:dataset_meta": ds.meta,
        }
        with open(meta_tmp, "w") as f:
            f.write('{\n    "global": ' + _json_block(info, 4) + ',\n    "captures": '
                    + _json_block([{"core:sample_start": 0}], 4) + ',\n    "annotations": [')
            # One annotation a line, keys sorted as sigmf writes them; floats as json.dumps writes them.
            for start in range(0, len(rows), chunk):
                f.write(",".join(
                    f'\n        {{"amcee:snr_db": {float(snr)!r}, "core:label": {label_json[label]}, '
                    f'"core:sample_count": {frame_samples}, "core:sample_start": {(start + i) * frame_samples}}}'
                    for i, (label, snr) in enumerate(zip(labels[start:start + chunk].tolist(),
                                                         snrs[start:start + chunk].tolist())))
                        + ("," if start + chunk < len(rows) else ""))
            f.write("\n    ]\n}")
    return data_path, meta_path


def _field(mapping, key, types, where, required=True):
    """``mapping[key]`` if it has one of ``types`` (bool is no number here)."""
    if key not in mapping:
        if required:
            raise DatasetError(f"{where} lacks {key}")
        return None
    value = mapping[key]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise DatasetError(f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, "
                           f"got {type(value).__name__}")
    return value


#: Bytes replay_frame_length reads at a time looking for the metadata's global object.
_GLOBAL_READ_BYTES = 1 << 16
_GLOBAL_FIRST = re.compile(r'\s*\{\s*"global"\s*:\s*')


def replay_frame_length(path):
    """Samples per frame of a recording (amcee:frame_length), read from the
    metadata's global object: save_replay writes it first, so only its first
    bytes are parsed, not the annotations (about 100 bytes a frame)."""
    _, meta_path = replay_paths(path)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text = ""
    try:
        with open(meta_path, "rb") as f:
            while True:
                block = f.read(_GLOBAL_READ_BYTES)
                text += utf8.decode(block, final=not block)
                start = _GLOBAL_FIRST.match(text)
                if start:
                    try:
                        info = json.JSONDecoder().raw_decode(text, start.end())[0]
                        break
                    except ValueError:
                        if not block:
                            raise
                        continue  # the object goes on in the next block
                if not block or len(text) >= _GLOBAL_READ_BYTES:
                    # Not global first (another writer's key order): parse the whole document.
                    f.seek(0)
                    info = _field(json.loads(f.read()), "global", (dict,), meta_path)
                    break
    except FileNotFoundError:
        raise DatasetError(f"{meta_path}: missing file of the SigMF pair") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise DatasetError(f"{meta_path}: unreadable SigMF recording ({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{meta_path}: unreadable SigMF recording (global is not an object)")
    frame_length = _field(info, "amcee:frame_length", (int,), meta_path)
    if frame_length < 1:
        raise DatasetError(f"{meta_path}: amcee:frame_length must be >= 1, got {frame_length}")
    return frame_length


def load_replay(path):
    """Read a SigMF pair written by :func:`save_replay` back into a Dataset.

    The metadata is read as JSON with every field's type checked; the data
    file is ``<prefix>.sigmf-data`` (a ``core:dataset`` naming another file
    is refused), its size is checked against the annotations before it is
    read, and its SHA-512 is computed over the very bytes that become frames."""
    data_path, meta_path = replay_paths(path)
    for p in (meta_path, data_path):
        if not os.path.exists(p):
            raise DatasetError(f"{p}: missing file of the SigMF pair")
    try:
        with open(meta_path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError, RecursionError) as exc:
        raise DatasetError(f"{meta_path}: unreadable SigMF recording ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{meta_path}: unreadable SigMF recording (not a JSON object)")
    info = _field(doc, "global", (dict,), meta_path)
    annotations = _field(doc, "annotations", (list,), meta_path)
    layout = info.get("amcee:layout")
    if not isinstance(layout, str) or layout not in LAYOUTS or info.get("core:datatype") != SIGMF_DATATYPES[layout]:
        raise DatasetError(f"{meta_path}: not an amcee replay recording "
                           f"(layout {layout!r}, datatype {info.get('core:datatype')!r})")
    dataset = _field(info, "core:dataset", (str,), meta_path, required=False)
    if dataset is not None and dataset != os.path.basename(data_path):
        raise DatasetError(f"{meta_path}: core:dataset names {dataset!r}; an amcee recording's data is "
                           f"{os.path.basename(data_path)} next to its metadata")
    sha512 = _field(info, "core:sha512", (str,), meta_path)
    classes = _field(info, "amcee:classes", (list,), meta_path)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f"{meta_path}: amcee:classes must be a list of names")
    classes = tuple(classes)
    frame_length = _field(info, "amcee:frame_length", (int,), meta_path)
    sample_rate = _field(info, "core:sample_rate", (int, float), meta_path, required=False)
    dataset_meta = _field(info, "amcee:dataset_meta", (dict,), meta_path, required=False) or {}
    file_dtype, per_frame = LAYOUTS[layout]
    if frame_length < 1:
        raise DatasetError(f"{meta_path}: amcee:frame_length must be >= 1, got {frame_length}")
    names, snrs, starts = [], [], []
    for i, a in enumerate(annotations):
        where = f"{meta_path}: annotation {i}"
        if not isinstance(a, dict):
            raise DatasetError(f"{where} is not an object")
        starts.append(_field(a, "core:sample_start", (int,), where))
        names.append(_field(a, "core:label", (str,), where))
        snrs.append(_field(a, "amcee:snr_db", (int, float), where))
    frame_bytes = per_frame * frame_length * np.dtype(file_dtype).itemsize
    expected = len(annotations) * frame_bytes
    size = os.path.getsize(data_path)
    if size != expected:
        raise DatasetError(f"{meta_path}: unreadable SigMF recording ({data_path} holds {size} bytes, "
                           f"expected {len(annotations)} frames x {per_frame} x {frame_length} values)")
    with open(data_path, "rb") as f:
        raw = f.read()
    if hashlib.sha512(raw).hexdigest() != sha512.lower():
        raise DatasetError(f"{meta_path}: unreadable SigMF recording (the SHA-512 of {data_path} "
                           "does not match its metadata: corrupt or changed data)")
    vectors = np.frombuffer(raw, dtype=file_dtype)
    if not all(math.isfinite(v) and abs(v) < 1e6 for v in snrs):
        raise DatasetError(f"{meta_path}: an annotation's amcee:snr_db is not a finite SNR in dB")
    snrs = np.array(snrs, np.float32)
    if starts != list(range(0, len(starts) * per_frame * frame_length, per_frame * frame_length)):
        raise DatasetError(f"{meta_path}: annotations are not one per consecutive frame")
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise DatasetError(f"{meta_path}: unknown label(s) {', '.join(unknown)}; "
                           f"valid names are {', '.join(classes)}")
    index = {name: i for i, name in enumerate(classes)}
    meta = dict(dataset_meta)
    meta.update(source=os.fspath(meta_path), sample_rate=sample_rate)
    ds = Dataset(
        frames=vectors_to_frames(vectors.reshape(len(annotations), -1), layout),
        labels=np.array([index[n] for n in names], np.int64),
        snrs=snrs, classes=classes, meta=meta,
    )
    ds.validate()
    return ds
