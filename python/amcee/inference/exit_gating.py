"""Exit gating: when an early exit's head runs on a batch, the whole protocol.

A head costs time for every row it sees and saves time only for the rows
that leave there.  In a stream at low SNR almost no row leaves the early
exits, and running their heads makes the early-exit engine slower than the
backbone alone (docs/performance.md, "Exit gating").

The forward (network.architecture.EarlyExitNet.forward, scripted into every
model file) therefore takes a share ``min_share[k]`` per early exit (the
model file's ``min_exit_share``; 0 = the head always runs):

* with a share in (0, 1] and at least 2 x PROBE_ROWS rows in flight
  (gating_applies; a smaller batch runs the head on every row), head k first
  runs on PROBE_ROWS rows spread evenly over the batch (every
  n // PROBE_ROWS-th row), and on all of them only if at least that share of
  the probed rows leaves; otherwise the probed rows that qualified leave and
  every other row goes on to the next exit;
* a share above 1 (SKIP; skips_head) can be met by no probe: the head does
  not run at all and every row goes on.

The engine (inference.engine.EarlyExitEngine.classify) chooses each batch's
shares from what it remembers of the stream (below).  The break-even shares
written into model files are measured by training.time_costs.

What the engine remembers along a stream: its SNR changes slowly against a
batch of 256 frames, so the last batch says much about the next one:

* a batch that met an exit's share: the next batch runs that head without a
  probe (a passed probe is a head call on PROBE_ROWS rows for nothing);
* batches that fell short of the share: from the second such batch since
  the last one that met the share, the next 1, then 2, 4 and at most
  MAX_SKIPPED batches skip the head and its probe, then it is probed again.
  One such batch alone says little (at mid SNR a batch of QAM frames leaves
  V0 rarely and the next modulation's batch leaves it often); a run of them
  says the stream is noisy, and every probe batch costs a head call on
  PROBE_ROWS rows plus the forward's bookkeeping, which a stream at low SNR
  pays for nothing.  A batch that falls short but not far counts as a
  shortfall too: its exit, near its break-even share, saves about what it
  costs anyway.  (The measurements behind these rules: docs/performance.md.)
  The frames of a skipped batch go on to later exits, which are at least as
  accurate; if the SNR rose meanwhile, only compute is lost, for at most
  MAX_SKIPPED batches.
"""
from dataclasses import dataclass, replace

#: Rows a gated exit's head probes first.
PROBE_ROWS = 32
#: Most batches in a row that skip an exit's head without a probe.
MAX_SKIPPED = 8
#: The share given to the forward for "no head, no probe": no probe can meet
#: a share above 1, so the forward does not run one.
SKIP = 2.0


def gating_applies(rows: int, probe_rows: int) -> bool:
    """Whether a gated exit probes a batch with ``rows`` in flight: only from
    2 x probe_rows rows on (the forward calls this; it is scripted with it)."""
    return rows >= 2 * probe_rows


def skips_head(share: float) -> bool:
    """Whether a share tells the forward to skip the head without a probe."""
    return share > 1.0



@dataclass(frozen=True)
class ExitMemory:
    """One early exit's memory."""

    passed: bool = False  # the last batch met the share: the next one runs the head unprobed
    misses: int = 0       # batches in a row short of the share
    skip: int = 0         # batches still to skip without a probe


def fresh(num_early_exits):
    return (ExitMemory(),) * num_early_exits


def next_shares(shares, memory):
    """The min_share values the forward gets for the next batch."""
    out = []
    for share, mem in zip(shares, memory):
        if share <= 0 or (mem.passed and mem.skip == 0):
            out.append(0.0)
        elif mem.skip > 0:
            out.append(SKIP)
        else:
            out.append(float(share))
    return out


def backoff(misses):
    """Batches to skip after the misses-th batch in a row short of the share:
    0 after the first, then 1, 2, 4, ... at most MAX_SKIPPED."""
    return 0 if misses < 2 else min(1 << (misses - 2), MAX_SKIPPED)


def after_batch(memory, shares, used, exit_counts, probe_rows):
    """The memory after a batch: ``used`` = its next_shares, ``exit_counts``
    = rows that left at each exit (the final one included)."""
    new, reached = [], sum(exit_counts)
    for k, (mem, share, value) in enumerate(zip(memory, shares, used)):
        left = exit_counts[k]
        if value == SKIP:
            new.append(replace(mem, skip=mem.skip - 1))
        elif share <= 0 or not gating_applies(reached, probe_rows):
            new.append(mem)  # the forward did not gate this exit: nothing learnt
        elif left >= share * reached:
            new.append(ExitMemory(passed=True))
        else:  # short of the share (a failed probe, or an unprobed head that saved too little)
            misses = mem.misses + 1
            new.append(ExitMemory(misses=misses, skip=backoff(misses)))
        reached -= left
    return tuple(new)
