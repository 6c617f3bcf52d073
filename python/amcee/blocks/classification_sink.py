"""amcee.classification_sink: records the classifier's messages, one row per frame.

Connect the classifier's ``classification`` port to ``in``, or its ``batch``
port to ``batch`` (the same rows, one message per work() call: the cheaper
way for high frame rates).  Every decision becomes a row of numpy-friendly columns (offset, class, exit, entropy,
confidence, true class, SNR, frame index); ``records()`` returns them as
arrays at any time, from any thread.  ``truth_changed`` marks a frame whose
true class or SNR differs from the previous frame's: in a live stream that
switches modulation on frame boundaries, that is the one frame that may hold
two signals (the channel's filters delay the change by a few samples).

The messages are handled in C++ (lib/decision_sink_impl.cc): a Python message
handler took longer per message than the network took per frame, so a
flowgraph that recorded its decisions ran at the recorder's pace.  This
hierarchical block gives the recorder the module's Python interface.
"""
from gnuradio import gr

from ..amcee_python import decision_sink
from ..labels import RML22_CLASSES
from .schema import BATCH_PORT

IN_PORT = "in"
COLUMNS = ("offset", "cls", "exit", "entropy", "confidence", "true_cls", "snr",
           "frame_index", "truth_changed")


class classification_sink(gr.hier_block2):
    """Message sink for ``amcee.classifier`` decisions; ``classes`` (None = RML22's)
    maps true labels to class indices."""

    def __init__(self, classes=None):
        gr.hier_block2.__init__(self, "amcee_classification_sink",
                                gr.io_signature(0, 0, 0), gr.io_signature(0, 0, 0))
        self._recorder = decision_sink(list(RML22_CLASSES if classes is None else classes))
        for port in (IN_PORT, BATCH_PORT):
            self.message_port_register_hier_in(port)
            self.msg_connect(self, port, self._recorder, port)

    def count(self):
        """Rows recorded so far."""
        return self._recorder.count()

    def records(self):
        """Every row so far as a dict of numpy arrays (copies), ordered as received."""
        return self._recorder.records()

    def reset(self):
        self._recorder.reset()
