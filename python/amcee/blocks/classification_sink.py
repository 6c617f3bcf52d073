"""amcee.classification_sink: records the classifier's messages, one row per frame.

Connect the classifier's ``classification`` port to ``in``.  Every message
becomes a row of numpy-friendly columns (offset, class, exit, entropy,
confidence, true class, SNR, frame index); ``records()`` returns them as
arrays at any time, from any thread.  ``truth_changed`` marks a frame whose
true class or SNR differs from the previous frame's: in a live stream that
switches modulation on frame boundaries, that is the one frame that may hold
two signals (the channel's filters delay the change by a few samples).
"""
import math
import threading

import numpy as np
import pmt
from gnuradio import gr

from ..labels import RML22_CLASSES
from .schema import message_field

IN_PORT = "in"
COLUMNS = ("offset", "cls", "exit", "entropy", "confidence", "true_cls", "snr",
           "frame_index", "truth_changed")
_DTYPES = {"offset": np.int64, "cls": np.int64, "exit": np.int64, "entropy": np.float32,
           "confidence": np.float32, "true_cls": np.int64, "snr": np.float32,
           "frame_index": np.int64, "truth_changed": bool}


class classification_sink(gr.basic_block):
    """Message sink for ``amcee.classifier`` decisions; ``classes`` (None = RML22's)
    maps true labels to class indices."""

    def __init__(self, classes=None):
        gr.basic_block.__init__(self, name="amcee_classification_sink", in_sig=None, out_sig=None)
        if classes is None:
            classes = RML22_CLASSES
        self._class_index = {name: i for i, name in enumerate(classes)}
        self._lock = threading.Lock()
        self._rows = {c: [] for c in COLUMNS}
        self._previous_truth = None
        self._log = gr.logger("amcee.classification_sink")
        self.message_port_register_in(pmt.intern(IN_PORT))
        self.set_msg_handler(pmt.intern(IN_PORT), self.handle_message)

    def handle_message(self, msg):
        if not pmt.is_dict(msg):
            self._log.warn(f"ignoring a message that is not a PMT dict: {pmt.write_string(msg)[:80]}")
            return
        true_label = message_field(msg, "true_label", pmt.symbol_to_string, None)
        snr = message_field(msg, "snr", pmt.to_double, math.nan)
        truth = (true_label, snr)
        row = {
            "offset": message_field(msg, "offset", pmt.to_uint64, -1),
            "cls": message_field(msg, "class", pmt.to_long, -1),
            "exit": message_field(msg, "exit", pmt.to_long, -1),
            "entropy": message_field(msg, "entropy", pmt.to_double, math.nan),
            "confidence": message_field(msg, "confidence", pmt.to_double, math.nan),
            "true_cls": self._class_index.get(true_label, -1),
            "snr": snr,
            "frame_index": message_field(msg, "frame_index", pmt.to_uint64, -1),
        }
        with self._lock:
            # NaN != NaN: compare SNRs by value only when both exist.
            prev = self._previous_truth
            row["truth_changed"] = prev is not None and (
                prev[0] != truth[0] or not (prev[1] == truth[1] or (math.isnan(prev[1]) and math.isnan(truth[1]))))
            self._previous_truth = truth
            for column in COLUMNS:
                self._rows[column].append(row[column])

    def count(self):
        with self._lock:
            return len(self._rows["offset"])

    def records(self):
        """Every row so far as a dict of numpy arrays (copies), ordered as received."""
        with self._lock:
            return {c: np.array(self._rows[c], dtype=_DTYPES[c]) for c in COLUMNS}

    def reset(self):
        with self._lock:
            for column in COLUMNS:
                self._rows[column].clear()
            self._previous_truth = None
