"""Exit gating: when an exit head is worth running on a batch.

A head costs time for every row it sees and saves time only for the rows
that leave there.  In a stream at low SNR almost no row leaves the early
exits, and running their heads made the early-exit engine slower than the
backbone alone (measured 0.82-0.98x from -20 to -6 dB with the V0+V1 model).
The exported forward therefore probes each early exit on ``model.PROBE_ROWS``
rows spread over a batch and runs the head on the whole batch only if at least
``min_exit_share`` of the probed rows leave (model.EarlyExitNet.forward).

The break-even share of exit k weighs the head's time and the copy of the
rows that go on against the time the leaving rows save (the segments after k
and the final head), see break_even_shares: below it the head costs more
than it saves.  Times, not multiply-accumulates: on this CPU a conv
exit head took 6-9 % of the backbone's time for 3 % of its MACs.  They are
measured on the machine that calibrates, so ``amcee calibrate`` stores them
with the shares in the model file.
"""
import torch

from .bench import time_interleaved

#: Rows of the timing batch (the engine's default batch).
TIMING_BATCH = 256


def measure_block_times(module, batch, repeats=30):
    """Seconds of each block's segment, head and row gather on ``batch`` (a
    normalised [B, 2, L] tensor): (segment times, head times, gather times).

    Segments and heads are differences of prefixes timed from the frames as
    the engine runs them (segments 0..k, then with head k), medians of
    interleaved repeats: a head timed alone on stored features ran up to 2x
    slower here, its input no longer in the cache.  The gather is the copy
    of the features of the rows that go on after one row in eight left."""
    # A scripted ModuleList cannot be iterated from Python; its children can.
    blocks = [block for _, block in module.blocks.named_children()]

    def prefix(k, with_head):
        def run():
            x = batch
            for block in blocks[:k + 1]:
                x = block.segment(x)
            if with_head:
                blocks[k].head(x)
        return run

    features = []
    x = batch
    with torch.inference_mode():
        for block in blocks:
            x = block.segment(x)
            features.append(x)
    keep = torch.tensor([i for i in range(len(batch)) if i % 8], dtype=torch.long, device=batch.device)
    candidates = {}
    for k in range(len(blocks)):
        candidates[(k, "segments")] = prefix(k, False)
        candidates[(k, "head")] = prefix(k, True)
        candidates[(k, "gather")] = lambda f=features[k]: f.index_select(0, keep)
    with torch.inference_mode():
        t = time_interleaved(candidates, repeats=repeats, warmup=3)
    n = len(blocks)
    segments = [t[(k, "segments")] - (t[(k - 1, "segments")] if k else 0.0) for k in range(n)]
    heads = [max(0.0, t[(k, "head")] - t[(k, "segments")]) for k in range(n)]
    gathers = [t[(k, "gather")] for k in range(n)]
    return segments, heads, gathers


def break_even_shares(segment_times, head_times, gather_times=None):
    """Per early exit: the share f of rows leaving at which running the head
    on a batch pays, capped at 1.  Running it costs h; the f that leave save
    f * S (the segments after the exit and the final head); the rows that go
    on are then copied, (1 - f) * G.  So f >= (h + G) / (S + G), and at
    least model.MIN_SHARE_TO_GATHER (below it leaving rows are not removed
    and save nothing).  Times are per batch."""
    from .model import MIN_SHARE_TO_GATHER

    gather_times = gather_times or [0.0] * len(segment_times)
    shares = []
    last = len(segment_times) - 1
    for k in range(last):
        saved = sum(segment_times[k + 1:]) + head_times[last]
        if saved <= 0:
            shares.append(1.0)
            continue
        g = gather_times[k]
        shares.append(min(1.0, max(MIN_SHARE_TO_GATHER, (head_times[k] + g) / (saved + g))))
    return shares


def measure_engine_block_times(engine, frames, repeats=30):
    """measure_block_times of ``engine``'s model on the valid frames among the
    first TIMING_BATCH of ``frames``, normalised as the engine does, with the
    current torch threads: (segments, heads, gathers, rows timed)."""
    x, _ = engine._prepare(frames[:TIMING_BATCH])
    if len(x) == 0:
        raise ValueError("no valid frame to time the exits on")
    return (*measure_block_times(engine.model.module, torch.from_numpy(x).to(engine.device), repeats), len(x))


def measured_min_exit_share(engine, frames, repeats=30, threads=1):
    """(break-even shares, record of the times) for ``engine``'s model on this
    machine, timed on the first TIMING_BATCH of ``frames`` with ``threads``
    torch threads (the block's default is 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        segments, heads, gathers, rows = measure_engine_block_times(engine, frames, repeats)
    finally:
        torch.set_num_threads(before)
    shares = break_even_shares(segments, heads, gathers)
    record = {"batch": int(rows), "threads": threads, "repeats": repeats, "segment_seconds": segments,
              "head_seconds": heads, "gather_seconds": gathers, "break_even_shares": shares}
    return shares, record
