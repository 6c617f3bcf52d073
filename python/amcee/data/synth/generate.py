"""RML22-style dataset generation with GNU Radio flowgraphs.

Procedure (RML22's notebook): for every (class, SNR) key, repeat "runs": a
fresh flowgraph source -> transmitter -> channel of ``50 * frame_len + 1000``
samples with its own random channel; drop the first 1000 samples (filter and
fading transients), then cut frames of ``frame_len`` with random gaps of up to
5 % of the run, and divide each frame by the sum of its sample magnitudes
(frames.l1_normalize_frames, the normalisation the classifier applies).

Keys are split into fixed chunks of :data:`CHUNK_FRAMES` frames; every chunk
draws its randomness from ``SeedSequence((seed, crc32(class), snr, chunk))``,
so the output depends on the seed only, not on the worker count or order.
"""
import math
import multiprocessing
import os
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

from ...frames import l1_norms, to_iq
from ...labels import RML22_CLASSES, RML22_SNRS

#: Frames cut from one run (one flowgraph with one channel realisation).
RUN_FRAMES = 50
#: Samples dropped at the start of every run.
TRANSIENT_SAMPLES = 1000
#: Largest random gap between frames, as a fraction of the run.
GAP_FRACTION = 0.05
#: Frames per parallel task; fixed so that results do not depend on workers.
CHUNK_FRAMES = 500
#: Seconds of speech synthesised per task for the analog classes.
AUDIO_TRACK_SECONDS = 10.0


@dataclass(frozen=True)
class _Chunk:
    key_index: int
    class_name: str
    snr: float
    chunk: int
    n_frames: int
    variant: str
    seed: int
    frame_len: int
    return_clean: bool


def _chunk_rng(seed, class_name, snr, chunk):
    # Non-negative integers only; the SNR may be fractional or negative.
    entropy = (int(seed), zlib.crc32(class_name.encode()), int(round((snr + 1000) * 1000)), int(chunk))
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _gr_seed(rng):
    return int(rng.integers(1, 2 ** 31 - 1))  # 0 would mean "seed from the clock"


def _run_flowgraph(class_name, variant, snr, n_samples, rng, audio, with_clean):
    """One run: returns (noisy, clean or None) complex64 arrays of ``n_samples``."""
    from gnuradio import analog, blocks, gr
    from .channel import impairments
    from .transmitters import input_kind, input_length, make_transmitter

    tb = gr.top_block()
    n_in = input_length(class_name, n_samples)
    if input_kind(class_name) == "bits":
        source = [analog.random_uniform_source_b(0, 2, _gr_seed(rng)),
                  blocks.head(gr.sizeof_char, n_in)]
    else:
        start = int(rng.integers(0, len(audio) - n_in))
        source = [blocks.vector_source_f(audio[start:start + n_in], False)]
    tx = make_transmitter(class_name)
    channel = impairments(variant, snr, seed=_gr_seed(rng), clean_output=with_clean,
                          run_length=n_samples)
    noisy_sink = blocks.vector_sink_c()
    tb.connect(*source, tx, channel, noisy_sink)
    clean_sink = None
    if with_clean:
        clean_sink = blocks.vector_sink_c()
        tb.connect((channel, 1), clean_sink)
    tb.run()
    noisy = np.asarray(noisy_sink.data(), dtype=np.complex64)
    if len(noisy) < n_samples:
        raise RuntimeError(f"{class_name}: flowgraph produced {len(noisy)} of {n_samples} samples")
    clean = np.asarray(clean_sink.data(), dtype=np.complex64)[:n_samples] if with_clean else None
    return noisy[:n_samples], clean


def frame_starts(n_usable, frame_len, rng, max_frames=RUN_FRAMES):
    """Start indices of frames in ``n_usable`` samples, separated by random gaps.

    As in RML22: each frame starts after a gap drawn from [0, 5 % of the run).
    """
    max_gap = max(1, int(n_usable * GAP_FRACTION))
    gaps = rng.integers(0, max_gap, size=max_frames)
    starts = np.cumsum(gaps) + frame_len * np.arange(max_frames)
    return starts[starts + frame_len < n_usable]


def _generate_chunk(task):
    """All frames of one chunk: (key_index, chunk, frames, clean or None)."""
    from .audio import AUDIO_RATE, speech_like
    from .transmitters import input_kind

    rng = _chunk_rng(task.seed, task.class_name, task.snr, task.chunk)
    audio = None
    if input_kind(task.class_name) == "audio":
        audio = speech_like(int(AUDIO_TRACK_SECONDS * AUDIO_RATE), rng)
    run_len = RUN_FRAMES * task.frame_len + TRANSIENT_SAMPLES
    noisy_out, clean_out, have = [], [], 0
    while have < task.n_frames:
        noisy, clean = _run_flowgraph(task.class_name, task.variant, task.snr, run_len,
                                      rng, audio, task.return_clean)
        noisy, clean = noisy[TRANSIENT_SAMPLES:], (clean[TRANSIENT_SAMPLES:] if task.return_clean else None)
        starts = frame_starts(len(noisy), task.frame_len, rng)[:task.n_frames - have]
        index = starts[:, None] + np.arange(task.frame_len)
        noisy_out.append(noisy[index])
        if task.return_clean:
            clean_out.append(clean[index])
        have += len(starts)
    noisy = to_iq(np.concatenate(noisy_out))
    norm = l1_norms(noisy)[:, None, None]
    clean = None
    if task.return_clean:
        # The clean twin is scaled by the noisy frame's factor, so that
        # noisy - clean stays the noise.
        clean = (to_iq(np.concatenate(clean_out)) / norm).astype(np.float32)
    return task.key_index, task.chunk, (noisy / norm).astype(np.float32), clean


def _check_args(classes, snrs, frames_per_key, variant, frame_len, workers):
    from .channel import VARIANTS
    from .transmitters import CLASSES

    classes = tuple(classes)
    if not classes:
        raise ValueError("classes is empty")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; expected names from {', '.join(CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {classes}")
    snrs = tuple(float(s) for s in snrs)
    if not snrs or not all(math.isfinite(s) for s in snrs):
        raise ValueError(f"snrs must be a non-empty list of finite numbers, got {snrs}")
    if int(frames_per_key) < 1:
        raise ValueError(f"frames_per_key must be at least 1, got {frames_per_key}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if not 8 <= int(frame_len) <= 4096:
        raise ValueError(f"frame_len must be in 8..4096, got {frame_len}")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return classes, snrs


def _pool_context():
    # fork is cheap (no re-import of GNU Radio); spawn elsewhere.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def generate(classes=RML22_CLASSES, snrs=RML22_SNRS, frames_per_key=2000, variant="all", seed=0,
             frame_len=128, workers=None, progress=True, return_clean=False):
    """Generate an RML22-style :class:`~gnuradio.amcee.data.dataset.Dataset`.

    Frames are float32 ``(N, 2, frame_len)`` (I, Q), L1-normalised, ordered by
    class, then SNR, then generation order.  ``variant`` is one of
    ``clean|awgn|clock|fading|all`` (RML22 is ``all``; only ``awgn`` and ``all``
    add noise, the others keep the SNR as a nominal label only).

    With ``return_clean=True`` returns ``(dataset, clean)``: ``clean`` holds the
    same realisations just before the noise adder, scaled by the same per-frame
    factor as the noisy frames, so ``frames - clean`` is the added noise.
    """
    from tqdm import tqdm
    from ..dataset import Dataset

    classes, snrs = _check_args(classes, snrs, frames_per_key, variant, frame_len, workers)
    frames_per_key, frame_len = int(frames_per_key), int(frame_len)
    workers = int(workers) if workers else (os.cpu_count() or 1)
    keys = [(c, s) for c in classes for s in snrs]
    tasks = [
        _Chunk(k, c, s, i, min(CHUNK_FRAMES, frames_per_key - i * CHUNK_FRAMES),
               variant, int(seed), frame_len, bool(return_clean))
        for k, (c, s) in enumerate(keys)
        for i in range(math.ceil(frames_per_key / CHUNK_FRAMES))
    ]
    total = frames_per_key * len(keys)
    results = {}
    t0 = time.perf_counter()
    with tqdm(total=total, unit="frame", disable=not progress, desc=f"synth {variant}") as bar:
        if workers == 1 or len(tasks) == 1:
            chunks = map(_generate_chunk, tasks)
            pool = None
        else:
            pool = _pool_context().Pool(min(workers, len(tasks)))
            chunks = pool.imap_unordered(_generate_chunk, tasks)
        try:
            for key_index, chunk, frames, clean in chunks:
                results[key_index, chunk] = (frames, clean)
                bar.update(len(frames))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    seconds = time.perf_counter() - t0

    order = sorted(results)
    frames = np.concatenate([results[k][0] for k in order])
    labels = np.repeat(np.array([classes.index(keys[k][0]) for k, _ in order], dtype=np.int64),
                       [len(results[k][0]) for k in order])
    snr_col = np.repeat(np.array([keys[k][1] for k, _ in order], dtype=np.float32),
                        [len(results[k][0]) for k in order])
    if progress:
        print(f"synth: {len(frames)} frames in {seconds:.1f} s ({len(frames) / seconds:.0f} frames/s, "
              f"{workers} workers)", file=sys.stderr)
    ds = Dataset(frames=frames, labels=labels, snrs=snr_col, classes=classes,
                 meta=_meta(variant, seed, frame_len, frames_per_key, snrs, seconds, workers))
    if return_clean:
        return ds, np.concatenate([results[k][1] for k in order])
    return ds


def _meta(variant, seed, frame_len, frames_per_key, snrs, seconds, workers):
    from gnuradio import gr
    from .transmitters import SAMPLE_RATE

    return {
        "generator": "amcee synth",
        "procedure": "RML22 (GNU Radio blocks)",
        "variant": variant,
        "seed": int(seed),
        "frame_len": int(frame_len),
        "frames_per_key": int(frames_per_key),
        "snrs": [float(s) for s in snrs],
        "sample_rate": SAMPLE_RATE,
        "normalisation": "l1",
        "seconds": round(seconds, 3),
        "workers": int(workers),
        "versions": {"gnuradio": gr.version(), "numpy": np.__version__},
    }
