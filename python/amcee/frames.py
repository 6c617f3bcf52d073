"""Frames of IQ samples: their layouts, their L1 normalisation, their validity.

A frame is L complex samples.  In memory the module keeps frames as float32
[N, 2, L] ("IQ frames": row 0 = I, row 1 = Q), the layout of RML22 and of the
network's input; complex64 [N, L] is the layout of a GNU Radio stream.  A
GNU Radio vector of one frame comes in one of LAYOUTS.

The classifier's per-frame path (lib/frame_prep.cc) checks and normalises
frames in C++ by the same rules as valid_mask and l1_normalize_frames here.
"""
import numpy as np

#: Vector layouts of one frame in a GNU Radio stream: layout -> (numpy
#: dtype, values per sample).  "complex": L complex64 samples (I + jQ);
#: "rml": 2L float32, the I row then the Q row, as in the RML pickles.
LAYOUTS = {
    "complex": (np.dtype("<c8"), 1),
    "rml": (np.dtype("<f4"), 2),
}


def check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def vector_length(layout, frame_len):
    """Items of one frame's vector in ``layout``."""
    check_layout(layout)
    return LAYOUTS[layout][1] * int(frame_len)


def to_iq(frames):
    """Complex frames [N, L] as float32 IQ frames [N, 2, L]."""
    return np.stack([frames.real, frames.imag], axis=1).astype(np.float32)


def to_complex(frames, dtype=np.complex64):
    """IQ frames [N, 2, L] as complex frames [N, L] of ``dtype``."""
    out = np.empty(frames.shape[::2], dtype)
    out.real, out.imag = frames[:, 0], frames[:, 1]
    return out


def frames_to_vectors(frames, layout="complex"):
    """IQ frames [N, 2, L] as the [N, vlen] vectors of ``layout``."""
    check_layout(layout)
    if layout == "complex":
        return to_complex(frames)
    return np.ascontiguousarray(frames, np.float32).reshape(len(frames), -1)


def vectors_to_frames(vectors, layout="complex"):
    """Inverse of :func:`frames_to_vectors`."""
    check_layout(layout)
    if layout == "complex":
        return to_iq(vectors)
    return np.ascontiguousarray(vectors, np.float32).reshape(len(vectors), 2, -1)


def as_float_frames(frames, frame_len):
    """[N, 2, L] float32 view of complex64 [N, L] or float32 [N, 2, L] / [N, 2L] frames."""
    frames = np.asarray(frames)
    if np.iscomplexobj(frames):
        if frames.ndim != 2 or frames.shape[1] != frame_len:
            raise ValueError(f"complex frames must be [N, {frame_len}], got {list(frames.shape)}")
        return to_iq(frames)
    if frames.ndim == 2 and frames.shape[1] == 2 * frame_len:
        frames = frames.reshape(len(frames), 2, frame_len)
    if frames.ndim != 3 or frames.shape[1:] != (2, frame_len):
        raise ValueError(f"real frames must be [N, 2, {frame_len}] (I row, Q row), got {list(frames.shape)}")
    return np.ascontiguousarray(frames, dtype=np.float32)


def l1_norms(x):
    """The L1 norm of each IQ frame [N, 2, L]: the sum of its complex sample
    magnitudes, taken in float64 so that already normalised frames stay put;
    1 for an all-zero frame, which normalising leaves as it is."""
    norm = np.sqrt(x[:, 0].astype(np.float64) ** 2 + x[:, 1].astype(np.float64) ** 2).sum(axis=1)
    norm[norm == 0] = 1.0
    return norm


def l1_normalize_frames(x):
    """Each IQ frame [2, L] divided by its L1 norm (l1_norms), as RML22 is normalised."""
    return (x / l1_norms(x)[:, None, None]).astype(np.float32)


def valid_mask(frames):
    """Frames that may reach the network: all finite and not all zero."""
    flat = frames.reshape(len(frames), -1)
    return np.isfinite(flat).all(axis=1) & (np.abs(flat).sum(axis=1) > 0)
