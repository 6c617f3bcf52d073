"""amcee.display: a live QT GUI view of the classifier's decisions.

Connect the classifier's ``classification`` message port to ``classification``.
The widget (``widget()``, placed by GRC's ``gui_hint``) shows

* the current decision: class, confidence, the exit that took it, and the
  truth (class, SNR) when the stream carries ``label``/``snr`` tags;
* a rolling histogram of the classes decided in the last ``window`` frames,
  split into right and wrong when the truth is known;
* the share of frames that left at each exit, over the last ``history``
  refresh periods (a stacked column per period).

The class names and exit names (e.g. V0, V1, final) come from the model file
the classifier runs (``model_path``, '' = the shipped model), so one flowgraph
variable can feed both blocks and the display follows any model; messages
carry only the exit's index.

Messages arrive on GNU Radio's message thread; they only update
:class:`DisplayState` under a lock.  The widget is redrawn from a snapshot by a
Qt timer in the GUI thread (``refresh()``, which tests call directly).
"""
import collections
import math
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from ..labels import RML22_CLASSES
from .schema import message_field

IN_PORT = "classification"


class DisplayState:
    """Thread-safe rolling statistics of classifier messages (no Qt)."""

    def __init__(self, classes, num_exits, window=500, history=60, clock=time.monotonic):
        if int(window) < 1 or int(history) < 1:
            raise ValueError(f"window and history must be >= 1, got {window} and {history}")
        if int(num_exits) < 1:
            raise ValueError(f"num_exits must be >= 1, got {num_exits}")
        self.classes = tuple(classes)
        self.num_exits = int(num_exits)
        self._index = {name: i for i, name in enumerate(self.classes)}
        self._clock = clock
        self._lock = threading.Lock()
        self._recent = collections.deque(maxlen=int(window))  # (class, true class or -1)
        self._bins = collections.deque(maxlen=int(history))   # exit counts per refresh period
        self._open_bin = np.zeros(self.num_exits, np.int64)
        self._current = None
        self._total = 0
        self._invalid = 0
        self._mismatched = 0
        self._last_tick = (clock(), 0)
        self._rate = 0.0

    def add(self, cls, exit_k, confidence, true_label=None, snr=math.nan):
        with self._lock:
            self._total += 1
            if exit_k < 0:
                self._invalid += 1
                return
            if exit_k >= self.num_exits or not 0 <= cls < len(self.classes):
                # A classifier running another model than the display was given.
                self._mismatched += 1
                return
            true_cls = self._index.get(true_label, -1)
            self._recent.append((cls, true_cls))
            self._open_bin[exit_k] += 1
            self._current = {"label": self.classes[cls], "confidence": float(confidence),
                             "exit": int(exit_k), "true_label": true_label, "snr": float(snr)}

    def add_message(self, msg):
        """Add one classifier message (PMT dict); returns False if it is not one."""
        if not pmt.is_dict(msg):
            return False
        self.add(message_field(msg, "class", pmt.to_long, -1), message_field(msg, "exit", pmt.to_long, -1),
                 message_field(msg, "confidence", pmt.to_double, math.nan),
                 message_field(msg, "true_label", pmt.symbol_to_string, None),
                 message_field(msg, "snr", pmt.to_double, math.nan))
        return True

    @property
    def mismatched(self):
        """Messages whose exit or class index the display's model does not have."""
        with self._lock:
            return self._mismatched

    def tick(self):
        """Close the current period (one column of the exit chart) and return a snapshot."""
        now = self._clock()
        with self._lock:
            self._bins.append(self._open_bin)
            self._open_bin = np.zeros(self.num_exits, np.int64)
            then, total_then = self._last_tick
            if now > then:
                self._rate = (self._total - total_then) / (now - then)
            self._last_tick = (now, self._total)
            return self._snapshot()

    def _snapshot(self):
        n_classes = len(self.classes)
        right = np.zeros(n_classes, np.int64)
        wrong = np.zeros(n_classes, np.int64)
        unknown = np.zeros(n_classes, np.int64)
        for cls, true_cls in self._recent:
            if true_cls < 0:
                unknown[cls] += 1
            elif true_cls == cls:
                right[cls] += 1
            else:
                wrong[cls] += 1
        scored = int(right.sum() + wrong.sum())
        return {
            "classes": self.classes,
            "current": dict(self._current) if self._current else None,
            "right": right, "wrong": wrong, "unknown": unknown,
            "window_accuracy": right.sum() / scored if scored else None,
            "exit_bins": [b.copy() for b in self._bins],
            "total": self._total, "invalid": self._invalid, "mismatched": self._mismatched,
            "frames_per_second": self._rate,
        }


def _classes_and_exit_names(model_path, classes, num_exits, exit_names):
    """(classes, exit names) from the model file, or from the explicit arguments."""
    if exit_names is None:
        if classes is not None or num_exits is not None:
            raise ValueError("amcee.display: give exit_names with classes/num_exits, "
                             "or only model_path to read them all from the model")
        from ..inference.model_file import default_model_path, read_model_archive

        # Only the metadata: checked (CRCs, fields), none of the file's code runs,
        # so a model the classifier was told to trust shows here too.
        _, meta = read_model_archive(model_path or default_model_path(), trust_model_code=True)
        return list(meta["classes"]), list(meta["exit_names"])
    if model_path is not None:
        raise ValueError("amcee.display: give model_path or exit_names, not both")
    if num_exits is not None and len(exit_names) != int(num_exits):
        raise ValueError(f"exit_names has {len(exit_names)} names for {num_exits} exits")
    if not exit_names:
        raise ValueError("exit_names is empty")
    return list(RML22_CLASSES if classes is None else classes), [str(name) for name in exit_names]


class display(gr.basic_block):
    """Live display of classifier messages (see the module docstring).

    ``model_path``: the classifier's model ('' or None = the shipped one); the
    display reads its class names and exit names.  Without a model file (e.g.
    for a classifier built in Python), give ``exit_names`` and ``classes``
    (None = the RML22 classes) instead; ``num_exits``, if given, must equal
    ``len(exit_names)``.
    Needs a running ``QApplication`` (a qt_gui flowgraph makes one first).
    """

    def __init__(self, model_path=None, classes=None, num_exits=None, exit_names=None, window=500,
                 history=60, refresh_ms=250, title="AMC early exit"):
        gr.basic_block.__init__(self, name="amcee_display", in_sig=None, out_sig=None)
        if int(refresh_ms) < 10:
            raise ValueError(f"refresh_ms must be >= 10, got {refresh_ms}")
        classes, exit_names = _classes_and_exit_names(model_path, classes, num_exits, exit_names)
        self.exit_names = exit_names
        self.state = DisplayState(classes, len(exit_names), window, history)
        self._log = gr.logger("amcee.display")
        self._warned_mismatch = False
        self.message_port_register_in(pmt.intern(IN_PORT))
        self.set_msg_handler(pmt.intern(IN_PORT), self.handle_classification)

        from PyQt5 import QtCore, QtWidgets  # only flowgraphs with a GUI pay for Qt

        from .display_widget import DisplayWidget

        if QtWidgets.QApplication.instance() is None:
            raise ValueError("amcee.display needs a QApplication: use it in a QT GUI flowgraph")
        self._widget = DisplayWidget(title, exit_names)
        self._timer = QtCore.QTimer(self._widget)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(int(refresh_ms))

    def handle_classification(self, msg):
        if not self.state.add_message(msg):
            self._log.warn("ignoring a message that is not a PMT dict")
        elif not self._warned_mismatch and self.state.mismatched:
            self._warned_mismatch = True
            self._log.warn(f"a message has an exit or class this display's model lacks "
                           f"(exits {self.exit_names}, {len(self.state.classes)} classes): "
                           "give the display the classifier's model file")

    def widget(self):
        """The QWidget to place in the GUI (GRC: gui_hint)."""
        return self._widget

    def refresh(self):
        """Close one period and redraw (the timer calls this in the GUI thread)."""
        self._widget.show_snapshot(self.state.tick())
