"""Exit gating: when an exit head is worth running on a batch.

A head costs time for every row it sees and saves time only for the rows
that leave there.  In a stream at low SNR almost no row leaves the early
exits, and running their heads made the early-exit engine slower than the
backbone alone (measured 0.82-0.98x from -20 to -6 dB with the V0+V1 model).
The exported forward therefore probes each early exit on ``model.PROBE_ROWS``
rows spread over a batch and runs the head on the whole batch only if at least
``min_exit_share`` of the probed rows leave (model.EarlyExitNet.forward).

The break-even share of exit k is the head's time over the time a leaving
row saves (the segments after k and the final head): below it the head costs
more than it saves.  Times, not multiply-accumulates: on this CPU a conv
exit head took 6-9 % of the backbone's time for 3 % of its MACs.  They are
measured on the machine that calibrates, so ``amcee calibrate`` stores them
with the shares in the model file.
"""
import torch

from .bench import time_interleaved

#: Rows of the timing batch (the engine's default batch).
TIMING_BATCH = 256


def measure_block_times(module, batch, repeats=30):
    """Seconds of each block's segment and head on ``batch`` (a normalised
    [B, 2, L] tensor): (segment times, head times).

    Each is a difference of prefixes timed from the frames as the engine runs
    them (segments 0..k, then with head k), medians of interleaved repeats:
    a head timed alone on stored features ran up to 2x slower here, its input
    no longer in the cache."""
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

    candidates = {}
    for k in range(len(blocks)):
        candidates[(k, False)] = prefix(k, False)
        candidates[(k, True)] = prefix(k, True)
    with torch.inference_mode():
        t = time_interleaved(candidates, repeats=repeats, warmup=3)
    segments = [t[(k, False)] - (t[(k - 1, False)] if k else 0.0) for k in range(len(blocks))]
    heads = [max(0.0, t[(k, True)] - t[(k, False)]) for k in range(len(blocks))]
    return segments, heads


def break_even_shares(segment_times, head_times):
    """Per early exit: head time / time a leaving row saves, capped at 1."""
    shares = []
    last = len(segment_times) - 1
    for k in range(last):
        saved = sum(segment_times[k + 1:]) + head_times[last]
        shares.append(min(1.0, head_times[k] / saved) if saved > 0 else 1.0)
    return shares


def measured_min_exit_share(engine, frames, repeats=30, threads=1):
    """(break-even shares, record of the times) for ``engine``'s model on this
    machine, timed on the first TIMING_BATCH of ``frames`` with ``threads``
    torch threads (the block's default is 1)."""
    x, _ = engine._prepare(frames[:TIMING_BATCH])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        segments, heads = measure_block_times(engine.model.module, torch.from_numpy(x).to(engine.device), repeats)
    finally:
        torch.set_num_threads(before)
    shares = break_even_shares(segments, heads)
    record = {"batch": int(len(x)), "threads": threads, "repeats": repeats,
              "segment_seconds": segments, "head_seconds": heads, "break_even_shares": shares}
    return shares, record
