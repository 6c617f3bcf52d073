"""When the classifier lets GNU Radio call work(): batching with a latency bound.

GNU Radio calls a block's work() as soon as any input is there, a few dozen
vectors at a time, and the network classifies a frame markedly faster in a
batch of 256 than in one of 32 (docs/performance.md, "Engine settings").  The block therefore holds the scheduler back
through forecast(), whose answer is how many input items a call needs:

* a full batch (the engine's ``max_batch``) once that many frames wait: a fast
  stream (file replay, a busy SDR) is classified in engine-sized batches;
* whatever waits, once the oldest waiting frame has waited its budget
  (``max_latency`` less the time a call is expected to take and less the time
  to the next check): on a slow stream no frame stays in the block longer
  than ``max_latency``;
* whatever waits, once the upstream block has finished (the end of a file).

GNU Radio's scheduler has no timeouts of its own except one: a block blocked
on input tries again after its ``blkd_input_timer_value`` even when nothing
new arrives.  The classifier sets it to a fraction of the budget, so the bound
holds when a stream stops altogether too: the frames that came before the stop
are classified at most about ``max_latency`` after they arrived.  What the
block cannot see is the time a frame spent in the buffers upstream of it.

The input buffer must hold a full batch and more: GNU Radio sizes a block's
output buffer for the ``output_multiple`` of the blocks downstream, so the
classifier announces the batch as its output multiple while the flowgraph is
built and drops it to 1 once running (see classifier.start/stop).

The decision is a pure function of the counts and the clock given to it, so
that it is tested with counts, not clocks.
"""
import time

import numpy as np

from ..inference.engine import check_max_batch

#: Default latency bound (ms): a live display refreshes every 250 ms and a
#: person notices lags of a few hundred; at RML22's rate (234 frames/s) 100 ms
#: still lets the block classify batches of about 23 frames instead of one.
DEFAULT_MAX_LATENCY_MS = 100.0
#: Share of the budget between two retries while frames wait on a stopped
#: stream.  The block decides to classify at one of these checks (or when a
#: frame arrives), so a frame is released up to one period before its budget runs out.
TIMER_FRACTION = 0.1
#: Weight of the newest call in the running estimate of a call's duration.
_DURATION_WEIGHT = 0.2


class LatencyBoundBatching:
    """The forecast rule of the classifier block; see the module docstring."""

    def __init__(self, max_batch, max_latency_ms=DEFAULT_MAX_LATENCY_MS, clock=time.monotonic):
        self.max_batch = check_max_batch(max_batch)
        self.set_max_latency(max_latency_ms)
        self._clock = clock
        self.reset()

    def set_max_latency(self, max_latency_ms):
        if isinstance(max_latency_ms, (bool, np.bool_, str, bytes)):
            raise ValueError(f"max_latency must be a positive number of milliseconds, got {max_latency_ms!r}")
        value = float(max_latency_ms)
        if not value > 0 or value == float("inf"):
            raise ValueError(f"max_latency must be a positive number of milliseconds, got {max_latency_ms}")
        self.max_latency_s = value / 1000.0

    @property
    def timer_ms(self):
        """The scheduler's retry period while frames wait (whole ms, >= 1)."""
        return max(1, int(self.max_latency_s * 1000.0 * TIMER_FRACTION))

    def reset(self, capacity=None):
        """A new run; ``capacity``: the most items the input buffer can hold
        (its size less one); the block never waits for more than half of it."""
        self.batch = self.max_batch if capacity is None else max(1, min(self.max_batch, (capacity + 1) // 2))
        self._waiting_since = None
        self._draining = False          # the budget ran out: classify all that waits
        self._last_call = None          # (start, end) of the last work() call
        self._call_seconds = 0.0        # running estimate of a call's duration

    def inputs_required(self, noutput_items, available, upstream_done):
        """Input items the next work() call must have (forecast's answer).

        The answer is never below ``noutput_items``: a sync block's work() is
        handed that many input items.  When the block should run, the answer
        is ``noutput_items``, and the scheduler halves its request until the
        input has that many; when it should wait, the answer is a batch."""
        if available <= 0:
            self._waiting_since = None
            self._draining = False
            return noutput_items
        if upstream_done or available >= self.batch or self._draining:
            return noutput_items
        now = self._clock()
        if self._waiting_since is None:
            # Woken right after a call: these frames may have come during it.
            recent = self._last_call is not None and now - self._last_call[1] <= self._last_call[1] - self._last_call[0]
            self._waiting_since = self._last_call[0] if recent else now
        if now - self._waiting_since >= self.max_latency_s - self._call_seconds - self.timer_ms / 1000.0:
            # The scheduler's halving hands work() the largest power of two of
            # what waits; the rest follows in the next calls, not a budget later.
            self._draining = True
            return noutput_items
        return max(noutput_items, self.batch)

    def call_done(self, start, end):
        """Record a work() call that ran from ``start`` to ``end`` (clock seconds)."""
        if not self._draining:
            self._waiting_since = None
        self._last_call = (start, end)
        self._call_seconds += _DURATION_WEIGHT * ((end - start) - self._call_seconds)
