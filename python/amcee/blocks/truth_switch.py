"""Sample-exact modulation/SNR schedule with truth tags (used by demo_source).

N complex inputs (one running transmitter per class) -> one output that copies
the input of the current segment, scaled so that a unit-power noise added
downstream gives the segment's SNR.  Scaling the signal instead of the noise
is what makes the SNR exact: the gain changes on the very sample where the
``label`` and ``snr`` tags are written, in the same work() call, whereas a
noise amplitude set from another thread would change somewhere near it.
"""
import numpy as np
import pmt
from gnuradio import gr

from .schema import LABEL_TAG, SNR_TAG


def segment_schedule(classes, snrs, seed=0):
    """Endless (class, snr) pairs: every class at every SNR once per cycle of
    len(classes) * len(snrs) segments; classes in a seeded random order per round
    so that the same class is rarely twice in a row, SNRs stepping every round."""
    rng = np.random.default_rng(seed)
    snr_index = 0
    while True:
        for cls in rng.permutation(len(classes)):
            yield int(cls), float(snrs[snr_index])
        snr_index = (snr_index + 1) % len(snrs)


class truth_switch(gr.sync_block):
    """Selects input ``k`` of ``len(classes)`` per segment of ``segment_samples``."""

    def __init__(self, classes, snrs, segment_samples, seed=0):
        if len(classes) < 1:
            raise ValueError("truth_switch needs at least one class")
        if len(snrs) < 1:
            raise ValueError("truth_switch needs at least one SNR")
        if int(segment_samples) < 1:
            raise ValueError(f"segment_samples must be >= 1, got {segment_samples}")
        gr.sync_block.__init__(self, name="truth_switch",
                               in_sig=[np.complex64] * len(classes), out_sig=[np.complex64])
        self.classes = tuple(classes)
        self.segment_samples = int(segment_samples)
        self._labels = [pmt.intern(c) for c in self.classes]
        self._schedule = segment_schedule(self.classes, list(snrs), seed)
        self._left = 0  # samples left in the current segment
        self._input = 0
        self._gain = 1.0

    def _next_segment(self, offset):
        self._input, snr = next(self._schedule)
        self._gain = np.float32(10 ** (snr / 20.0))
        self._left = self.segment_samples
        self.add_item_tag(0, offset, LABEL_TAG, self._labels[self._input])
        self.add_item_tag(0, offset, SNR_TAG, pmt.from_double(snr))

    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        first = self.nitems_written(0)
        done = 0
        while done < n:
            if self._left == 0:
                self._next_segment(first + done)
            take = min(self._left, n - done)
            np.multiply(input_items[self._input][done:done + take], self._gain,
                        out=out[done:done + take])
            done += take
            self._left -= take
        return n
