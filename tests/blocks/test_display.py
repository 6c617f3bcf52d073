"""amcee.display: rolling statistics, and the widget built offscreen and fed messages.

No sleeps: messages go through a flowgraph that runs to completion (tb.run()
returns after the display has handled every message), and the widget is
redrawn by calling refresh() and QApplication.processEvents() directly.
"""
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
    from gnuradio.amcee.blocks.display import DisplayState

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
    from gnuradio.amcee.blocks.display import DisplayState

    with pytest.raises(ValueError, match="window"):
        DisplayState(("A",), 2, window=0)
    with pytest.raises(ValueError, match="num_exits"):
        DisplayState(("A",), 0)


@pytest.fixture(scope="module")
def two_exit_model_path(tmp_path_factory):
    """A model with exits V1 and final, as `amcee train` makes by default."""
    from conftest import export_tiny_model

    path = tmp_path_factory.mktemp("models") / "v1.pt"
    export_tiny_model(path, exits=("V1",))
    return str(path)


@pytest.mark.parametrize("model", ["tiny", "two_exit"])
def test_display_shows_classifier_messages_from_a_flowgraph(qapp, model, tiny_model_path, two_exit_model_path):
    from gnuradio import amcee

    n = 64
    model_path = {"tiny": tiny_model_path, "two_exit": two_exit_model_path}[model]
    clf = amcee.classifier(model_path=model_path)
    # The display reads the classes and exit names from the same model file.
    view = amcee.display(model_path=model_path, window=1000, refresh_ms=1000)
    assert view.exit_names == clf.exit_names() == {"tiny": ["V0", "V1", "final"],
                                                   "two_exit": ["V1", "final"]}[model]
    assert list(view.state.classes) == clf.classes()
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
    assert f">exit {clf.exit_names()[snap['current']['exit']]}<" in text
    assert widget.exits.exit_names == clf.exit_names()  # the legend of the exit chart
    assert f"{n} frames" in widget.details.text()

    widget.resize(800, 560)
    image = widget.grab().toImage()
    assert image.width() == 800 and image.height() == 560
    # Something was drawn in the histogram: a bar colour occurs.
    hist = widget.histogram.grab().toImage()
    colours = {hist.pixel(x, y) for x in range(0, hist.width(), 4) for y in range(0, hist.height(), 4)}
    assert len(colours) > 3


def test_display_reads_the_shipped_model_by_default(qapp):
    from gnuradio import amcee
    from gnuradio.amcee.inference.model_file import default_model_path, load_model

    shipped = load_model(default_model_path())
    for view in (amcee.display(), amcee.display(model_path="")):
        assert view.exit_names == list(shipped.exit_names) == ["V0", "V1", "final"]
        assert view.state.classes == shipped.classes


def test_display_counts_messages_of_another_model_apart(qapp, two_exit_model_path):
    """A display given a 2-exit model while the classifier runs a 3-exit one:
    the third exit's messages are counted as from another model, not drawn."""
    from gnuradio import amcee

    view = amcee.display(model_path=two_exit_model_path, refresh_ms=1000)
    for exit_k in (0, 1, 2):
        msg = pmt.to_pmt({"class": 1, "exit": exit_k, "confidence": 0.9, "label": "QAM64"})
        assert view.state.add_message(msg)
    view.refresh()
    snap = view.state.tick()
    assert snap["mismatched"] == view.state.mismatched == 1
    assert sum(b.sum() for b in snap["exit_bins"]) == 2 and snap["unknown"].sum() == 2
    assert "1 from a model with other exits or classes" in view.widget().details.text()


def test_display_rejects_contradictory_arguments(qapp, tiny_model_path):
    from gnuradio import amcee

    with pytest.raises(ValueError, match="exit_names"):
        amcee.display(num_exits=3, exit_names=["a", "b"])
    with pytest.raises(ValueError, match="model_path or exit_names"):
        amcee.display(model_path=tiny_model_path, exit_names=["a", "b"])
    with pytest.raises(ValueError, match="exit_names with classes"):
        amcee.display(classes=["A", "B"])
    with pytest.raises(ValueError, match="not found"):
        amcee.display(model_path="/nonexistent/model.pt")


def test_display_without_a_model_file_takes_the_names_given(qapp):
    from gnuradio import amcee

    view = amcee.display(classes=["A", "B"], exit_names=["early", "final"])
    assert view.exit_names == ["early", "final"] and view.state.classes == ("A", "B")
