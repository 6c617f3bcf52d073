"""amcee.display: rolling statistics, and the widget built offscreen and fed messages.

No sleeps: messages go through a flowgraph that runs to completion (tb.run()
returns after the display has handled every message), and the widget is
redrawn by calling refresh() and QApplication.processEvents() directly.
"""
import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from conftest import make_frames


@pytest.fixture(scope="module")
def qapp():
    from PyQt5 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["test"])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_state_counts_right_wrong_and_exits_per_period():
    from gnuradio.amcee.display import DisplayState

    clock = FakeClock()
    state = DisplayState(("A", "B", "C"), num_exits=2, window=4, history=3, clock=clock)
    state.add(0, 0, 0.9, "A", 10.0)   # right
    state.add(1, 1, 0.6, "A", 10.0)   # wrong
    clock.now = 2.0
    snap = state.tick()
    assert snap["right"].tolist() == [1, 0, 0] and snap["wrong"].tolist() == [0, 1, 0]
    assert [b.tolist() for b in snap["exit_bins"]] == [[1, 1]]
    assert snap["frames_per_second"] == pytest.approx(1.0)
    assert snap["window_accuracy"] == pytest.approx(0.5)
    assert snap["current"] == {"label": "B", "confidence": 0.6, "exit": 1, "true_label": "A", "snr": 10.0}

    for _ in range(4):  # the window keeps the last 4 decisions only
        state.add(2, 0, 0.99)
    state.add(0, -1, float("nan"))  # invalid: counted, not plotted
    snap = state.tick()
    assert snap["unknown"].tolist() == [0, 0, 4] and snap["right"].sum() == 0
    assert snap["window_accuracy"] is None and snap["invalid"] == 1 and snap["total"] == 7
    assert [b.tolist() for b in snap["exit_bins"]] == [[1, 1], [4, 0]]


def test_state_rejects_bad_sizes():
    from gnuradio.amcee.display import DisplayState

    with pytest.raises(ValueError, match="window"):
        DisplayState(("A",), 2, window=0)
    with pytest.raises(ValueError, match="num_exits"):
        DisplayState(("A",), 0)


def test_display_shows_classifier_messages_from_a_flowgraph(qapp, tiny_model_path):
    from gnuradio import amcee

    n = 64
    clf = amcee.classifier(model_path=tiny_model_path)
    view = amcee.display(classes=clf.classes(), num_exits=clf.num_exits(),
                         exit_names=clf.exit_names(), window=1000, refresh_ms=1000)
    truth = [gr.python_to_tag((0, pmt.intern("label"), pmt.intern("QPSK"))),
             gr.python_to_tag((0, pmt.intern("snr"), pmt.from_double(12.0)))]
    src = blocks.vector_source_c(make_frames(n).ravel().tolist(), False, 128, truth)
    tb = gr.top_block()
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * 128))
    tb.msg_connect(clf, "classification", view, "classification")
    tb.run()

    view.refresh()
    qapp.processEvents()
    widget = view.widget()
    snap = view.state.tick()
    assert snap["total"] == n
    assert int(snap["right"].sum() + snap["wrong"].sum()) == n
    assert snap["right"].sum() == snap["right"][clf.classes().index("QPSK")]
    assert sum(b.sum() for b in snap["exit_bins"]) == n
    assert sum(clf.exit_counts()) == n
    text = widget.decision.text()
    assert snap["current"]["label"] in text and "truth QPSK at 12 dB" in text
    assert f"{n} frames" in widget.details.text()

    widget.resize(800, 560)
    image = widget.grab().toImage()
    assert image.width() == 800 and image.height() == 560
    # Something was drawn in the histogram: a bar colour occurs.
    hist = widget.histogram.grab().toImage()
    colours = {hist.pixel(x, y) for x in range(0, hist.width(), 4) for y in range(0, hist.height(), 4)}
    assert len(colours) > 3


def test_display_rejects_mismatched_exit_names(qapp):
    from gnuradio import amcee

    with pytest.raises(ValueError, match="exit_names"):
        amcee.display(num_exits=3, exit_names=["a", "b"])
