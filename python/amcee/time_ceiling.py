"""The speed-up exit shares allow by measured time on this machine.

The compute ceiling (model.compute_ceiling, MACs of docs/dataset-and-network.md)
says how much faster than the backbone alone the early exit could be if time
followed the MACs.  On a CPU it does not: conv1 has 2 input channels and an
8 MB output per batch of 256 and runs memory-bound, and a head's pools and
statistics are memory-bound too.  On the AVX2 machine of 2026-12-01 a frame
leaving at V0 of the shipped model cost 0.32 of the backbone's time for 0.062
of its MACs.

The time ceiling is the same accounting with the measured seconds of each
segment and head (exit_gating.measure_block_times, one batch, interleaved
repeats) in place of the MACs: what the exit shares would give with no
bookkeeping at all (no gathers, no entropies, no outputs) and every head on
the way run, as the MAC ceiling assumes.  So

    measured / MAC ceiling = (time ceiling / MAC ceiling) x (measured / time ceiling)
                             how far this CPU's    how much the engine's
                             time is from the MACs  own overhead costs

and a goal on the measured speed-up above the time ceiling cannot be met on
this machine by the engine, only by faster kernels or other exit shares.
"""
from dataclasses import asdict, dataclass
from typing import List

from .exit_gating import measure_engine_block_times
from .model import compute_ceiling


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
    ``frames`` (exit_gating.measure_engine_block_times) with the current torch threads."""
    segments, heads, _, _ = measure_engine_block_times(engine, frames, repeats)
    segments = [max(0.0, s) for s in segments]  # differences of timed prefixes: noise can dip below 0
    n = len(segments)
    exit_seconds = [sum(segments[:k + 1]) + sum(heads[:k + 1]) for k in range(n)]
    return ExitTimeCosts(exit_seconds=exit_seconds, backbone_seconds=sum(segments) + heads[-1],
                         segment_seconds=list(segments), head_seconds=list(heads))
