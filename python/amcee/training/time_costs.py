"""The measured time of each exit on this machine: the costs that
``amcee calibrate --snr-aware`` weighs its SNR table with, and the time
ceiling that reports set beside the MACs.

Times, not multiply-accumulates: a head's pools and statistics are
memory-bound and cost a larger share of the time than of the MACs
(docs/performance.md, Measurements behind the code).

The compute ceiling (network.compute_costs.compute_ceiling, MACs of
docs/dataset-and-network.md) says how much faster than the backbone alone the
early exit could be if time followed the MACs.  On a CPU it does not: conv1
has 2 input channels and an 8 MB output per batch of 256 and runs
memory-bound, and a head's pools and statistics are memory-bound too
(docs/performance.md, Against the goals, gives the numbers).

The time ceiling (ExitTimeCosts) is the same accounting with the measured
seconds of each segment and head (measure_block_times, one batch,
interleaved repeats) in place of the MACs: what the exit shares would give
with no bookkeeping at all (no gathers, no entropies, no outputs) and every
head on the way run, as the MAC ceiling assumes.  So

    measured / MAC ceiling = (time ceiling / MAC ceiling) x (measured / time ceiling)
                             how far this CPU's    how much the engine's
                             time is from the MACs  own overhead costs

and a goal on the measured speed-up above the time ceiling cannot be met on
this machine by the engine, only by faster kernels or other exit shares.
"""
import itertools
from dataclasses import asdict, dataclass
from typing import List

import torch

from ..network.architecture import MIN_SHARE_TO_GATHER
from ..network.compute_costs import compute_ceiling
from ..timing import time_interleaved

#: Rows of a timing batch (the engine's default batch for the paper's network).
TIMING_BATCH = 256


def measure_block_times(module, batch, repeats=30):
    """Seconds of each block's segment, head and row gather on ``batch`` (a
    normalised [B, 2, L] tensor): (segment times, head times, gather times).

    Segments and heads are differences of prefixes timed from the frames as
    the engine runs them (segments 0..k, then with head k), medians of
    interleaved repeats: a head timed alone on stored features runs slower,
    its input no longer in the cache.  The gather is the copy
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
    """Per early exit: the share f of the frames reaching it that must leave
    there for its head to save more time than it costs, capped at 1 -- where
    an exit pays.  Running the head costs h; the f that leave save f * S (the
    segments after the exit and the final head); the rows that go on are
    then copied, (1 - f) * G.  So f >= (h + G) / (S + G), and at least
    architecture.MIN_SHARE_TO_GATHER (below it leaving rows are not removed
    and save nothing).  Times are per batch."""
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


@dataclass
class ExitTimeCosts:
    """Seconds per batch of TIMING_BATCH rows."""

    exit_seconds: List[float]   # a batch leaving at exit k: segments 0..k and heads 0..k
    backbone_seconds: float     # every segment and the final head only
    segment_seconds: List[float]
    head_seconds: List[float]

    @property
    def relative(self):
        """Cost of leaving at each exit, as a fraction of the backbone's time."""
        return [s / self.backbone_seconds for s in self.exit_seconds]

    def ceiling(self, exit_shares):
        """Speed-up over the backbone alone that ``exit_shares`` allow by time."""
        return compute_ceiling(exit_shares, self.exit_seconds, self.backbone_seconds)

    def to_json(self):
        out = asdict(self)
        out["relative"] = self.relative
        return out


def measure_exit_time_costs(engine, frames, repeats=30):
    """ExitTimeCosts of ``engine``'s model, timed on the first TIMING_BATCH of
    ``frames`` (measure_engine_block_times) with the current torch threads."""
    segments, heads, _, _ = measure_engine_block_times(engine, frames, repeats)
    segments = [max(0.0, s) for s in segments]  # differences of timed prefixes: noise can dip below 0
    n = len(segments)
    exit_seconds = [sum(segments[:k + 1]) + sum(heads[:k + 1]) for k in range(n)]
    return ExitTimeCosts(exit_seconds=exit_seconds, backbone_seconds=sum(segments) + heads[-1],
                         segment_seconds=list(segments), head_seconds=list(heads))


def exit_paths(num_exits):
    """Every way a frame can go through a model of ``num_exits`` exits: (k,
    heads) = it leaves at exit k having run the heads of the early exits
    before k that are on (``heads``, one bool per early exit before k); the
    head of exit k runs.  An early exit is off for a frame when its settings
    let no frame leave there (model_file.EXIT_OFF, no give-up value): then
    its head does not run."""
    return [(k, heads) for k in range(num_exits) for heads in itertools.product((True, False), repeat=k)]


def path_of(exit_index, exits_on):
    """The exit_paths key of a frame leaving at ``exit_index`` with the early
    exits on as in ``exits_on``."""
    return exit_index, tuple(bool(on) for on in exits_on[:exit_index])


def measure_engine_path_costs(engine, frames, repeats=15, threads=1):
    """The engine's time per frame for every exit path (exit_paths), as a
    fraction of the backbone alone's: {(k, heads): ratio}, each the median of
    per-round ratios (timing.paired_ratio_median) against the backbone timed
    in the same rounds, with ``threads`` torch threads.  Unlike the time
    ceiling's segment and head times, these include what the engine does
    besides the layers (entropies, outputs, its calls); the paired ratios
    keep a machine that slows down for a while from skewing them.  Every
    frame takes the path: it leaves exit k < K-1 through a give-up value of
    0 there; an early exit before it that is on has threshold 0 (its head
    runs), one that is off None (model_file.EXIT_OFF: its head does not)."""
    from ..timing import paired_ratio_median, time_interleaved_samples

    n_early = engine.num_exits - 1
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        candidates = {"backbone": lambda: engine.backbone_probs(frames)}
        for k, heads in exit_paths(engine.num_exits):
            thresholds = [0.0 if on else None for on in heads] + [0.0] * (n_early - k)  # None: off
            give_up = [0.0 if j == k else float("inf") for j in range(n_early)]
            candidates[(k, heads)] = (lambda t, g: lambda: engine.classify(frames, thresholds=t, give_up=g))(
                thresholds, give_up)
        with torch.inference_mode():
            samples = time_interleaved_samples(candidates, repeats)
    finally:
        torch.set_num_threads(before)
    return {path: paired_ratio_median(samples[path], samples["backbone"]) for path in exit_paths(engine.num_exits)}
