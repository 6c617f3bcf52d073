"""The amcee.classifier block in real flowgraphs."""
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from conftest import make_frames
from gnuradio import amcee
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.exit_gating import PROBE_ROWS


def run_flowgraph(clf, frames, layout="complex", tags=()):
    """vector_source -> classifier -> vector_sink, message_debug on every port."""
    tb = gr.top_block()
    if layout == "complex":
        src = blocks.vector_source_c(frames.ravel().tolist(), False, frames.shape[1], list(tags))
        sink = blocks.vector_sink_c(frames.shape[1])
    else:
        src = blocks.vector_source_f(frames.ravel().tolist(), False, frames.shape[1], list(tags))
        sink = blocks.vector_sink_f(frames.shape[1])
    stores = {}
    tb.connect(src, clf, sink)
    for port in [f"exit{k}" for k in range(clf.num_exits())] + ["classification"]:
        stores[port] = blocks.message_debug()
        tb.msg_connect(clf, port, stores[port], "store")
    tb.run()
    return sink, stores


def amc_tags(sink):
    tags = [gr.tag_to_python(t) for t in sink.tags()]
    return [t for t in tags if t.key == "amc"]


def messages(store):
    return [pmt.to_python(store.get_message(i)) for i in range(store.num_messages())]


def test_complex_stream_passes_through_with_one_tag_and_message_per_vector(tiny_model_path):
    frames = make_frames(400, seed=11)
    clf = amcee.classifier(tiny_model_path, max_batch=64)
    sink, stores = run_flowgraph(clf, frames)
    out = np.array(sink.data(), dtype=np.complex64).reshape(frames.shape)
    np.testing.assert_array_equal(out, frames)

    tags = amc_tags(sink)
    assert [t.offset for t in tags] == list(range(len(frames)))
    per_exit = [messages(stores[f"exit{k}"]) for k in range(3)]
    assert sum(len(m) for m in per_exit) == len(frames)
    assert all(len(m) > 0 for m in per_exit)  # every exit decided some vectors
    assert clf.exit_counts() == [len(m) for m in per_exit] and clf.invalid_count() == 0
    by_offset = {m["offset"]: (k, m) for k, msgs in enumerate(per_exit) for m in msgs}
    for tag in tags:
        k, msg = by_offset[tag.offset]
        assert tag.value["exit"] == k == msg["exit"]
        for field in ("label", "class", "confidence", "entropy"):
            assert tag.value[field] == msg[field]
    assert len(messages(stores["classification"])) == len(frames)

    # The block's decisions are the engine's.
    expected = EarlyExitEngine(tiny_model_path).classify(frames)
    assert [t.value["exit"] for t in tags] == expected.exits.tolist()
    assert [t.value["label"] for t in tags] == [clf.classes()[c] for c in expected.classes]


def test_rml_float_layout(tiny_model_path):
    frames = make_frames(120, seed=12)
    rml = np.concatenate([frames.real, frames.imag], axis=1).astype(np.float32)  # I row, Q row
    clf = amcee.classifier(tiny_model_path, input_format="rml")
    sink, stores = run_flowgraph(clf, rml, layout="rml")
    np.testing.assert_array_equal(np.array(sink.data(), np.float32).reshape(rml.shape), rml)
    expected = EarlyExitEngine(tiny_model_path).classify(frames)
    assert [t.value["exit"] for t in amc_tags(sink)] == expected.exits.tolist()
    assert sum(stores[f"exit{k}"].num_messages() for k in range(3)) == 120


def test_truth_tags_are_copied_into_messages(tiny_model_path):
    frames = make_frames(10, seed=13)
    tags = []
    for i in range(10):
        tags.append(gr.python_to_tag((i, pmt.intern("snr"), pmt.from_double(2.0 * i), pmt.PMT_NIL)))
        if i % 5 == 0:  # sticky: holds until the next label tag
            tags.append(gr.python_to_tag((i, pmt.intern("label"), pmt.intern(f"L{i}"), pmt.PMT_NIL)))
    clf = amcee.classifier(tiny_model_path)
    _, stores = run_flowgraph(clf, frames, tags=tags)
    msgs = messages(stores["classification"])
    assert [m["snr"] for m in msgs] == [2.0 * i for i in range(10)]
    assert [m["true_label"] for m in msgs] == ["L0"] * 5 + ["L5"] * 5


class _GatedSource(gr.sync_block):
    """Emits frames; before frame `switch_at` it waits until the classifier has
    classified every earlier frame, then changes the classifier's threshold, as
    a GUI callback would while the flowgraph runs."""

    def __init__(self, frames, clf, switch_at, new_threshold):
        gr.sync_block.__init__(self, "gated_source", in_sig=None, out_sig=[(np.complex64, frames.shape[1])])
        self.frames, self.clf, self.switch_at, self.new = frames, clf, switch_at, new_threshold
        self.switched = False

    def work(self, input_items, output_items):
        start = self.nitems_written(0)
        if start >= len(self.frames):
            return -1
        end = min(len(self.frames), start + len(output_items[0]))
        if not self.switched and end > self.switch_at:
            if start < self.switch_at:
                end = self.switch_at
            elif sum(self.clf.exit_counts()) < self.switch_at:
                time.sleep(0.001)  # yield until the classifier caught up
                return 0
            else:
                self.clf.set_threshold(self.new)
                self.switched = True
        output_items[0][: end - start] = self.frames[start:end]
        return end - start


def test_threshold_changed_mid_run_takes_effect(tiny_model_path):
    frames = make_frames(300, seed=14)
    clf = amcee.classifier(tiny_model_path, threshold=0.0)
    tb = gr.top_block()
    sink = blocks.vector_sink_c(128)
    src = _GatedSource(frames, clf, 150, 5.0)  # keep a reference: Python blocks die with it
    tb.connect(src, clf, sink)
    tb.run()
    exits = [t.value["exit"] for t in amc_tags(sink)]
    assert exits[:150] == [2] * 150  # T = 0: every frame to the final exit
    assert exits[150:] == [0] * 150  # T = 5 > log10(10): every frame out of exit 0
    assert clf.get_threshold() == (5.0, 5.0)


def test_invalid_vectors_pass_through_tagged_and_counted(tiny_model_path):
    frames = make_frames(20, seed=15)
    frames[2] = 0
    frames[7, 3] = np.nan
    frames[9, 100] = complex(np.inf, 0)
    clf = amcee.classifier(tiny_model_path)
    sink, stores = run_flowgraph(clf, frames)
    np.testing.assert_array_equal(np.array(sink.data(), np.complex64).reshape(frames.shape), frames)
    tags = amc_tags(sink)
    invalid = [t.offset for t in tags if t.value["label"] == "invalid"]
    assert invalid == [2, 7, 9]
    assert all(tags[i].value["exit"] == -1 for i in invalid)
    assert clf.invalid_count() == 3 and sum(clf.exit_counts()) == 17
    assert sum(stores[f"exit{k}"].num_messages() for k in range(3)) == 17
    assert stores["classification"].num_messages() == 20


@pytest.mark.parametrize("kwargs, message", [
    (dict(model_path="/nonexistent/model.pt"), "not found"),
    (dict(frame_len=64), "does not match the model's frame length"),
    (dict(num_exits=2), "does not match the model"),
    (dict(threshold=float("nan")), "finite"),
    (dict(threshold=-1.0), ">= 0"),
    (dict(threshold=[0.1, 0.2, 0.3]), "early exit"),
    (dict(input_format="bytes"), "input_format"),
    (dict(device="cuda:7"), "CUDA"),
    (dict(max_batch=0), "max_batch"),
    (dict(max_latency=0), "max_latency"),
    (dict(max_latency=float("nan")), "max_latency"),
    (dict(max_latency=-5), "max_latency"),
])
def test_bad_parameters_fail_at_construction(tiny_model_path, kwargs, message):
    kwargs.setdefault("model_path", tiny_model_path)
    with pytest.raises(ValueError, match=message):
        amcee.classifier(**kwargs)


def test_give_up_parameter_and_callback(tiny_model_path):
    frames = make_frames(60, seed=16)
    clf = amcee.classifier(tiny_model_path, threshold=0.0, give_up=0.0)  # everyone gives up at exit 0
    sink, _ = run_flowgraph(clf, frames)
    assert {t.value["exit"] for t in amc_tags(sink)} == {0}
    clf.set_give_up(None)  # back to the model's default (disabled for this model)
    assert clf.get_give_up() == (float("inf"), float("inf"))
    with pytest.raises(ValueError, match="give-up"):
        clf.set_give_up(-1.0)


def test_exit_gating_parameter_and_callback(tiny_model_path):
    frames = make_frames(256, seed=17)
    ungated = EarlyExitEngine(tiny_model_path).classify(frames).exits
    assert (ungated < 2).sum() > 100
    # A share of 1: an early exit's head runs beyond its 32 probed vectors only
    # if all of them leave; with this model's thresholds they never all do.
    # One batch of the 256 vectors (a fast stream is classified in full
    # batches): at most 32 leave each early exit.
    clf = amcee.classifier(tiny_model_path, min_exit_share=1.0, max_batch=256)
    assert clf.get_min_exit_share() == (1.0, 1.0)
    sink, _ = run_flowgraph(clf, frames)
    exits = np.array([t.value["exit"] for t in amc_tags(sink)])
    assert len(exits) == len(frames)
    assert 0 < (exits == 0).sum() <= PROBE_ROWS and (exits == 1).sum() <= PROBE_ROWS
    clf.set_min_exit_share(None)  # back to the model's default (off for this model)
    assert clf.get_min_exit_share() == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clf.set_min_exit_share(2.0)
    assert clf.get_min_exit_share() == (0.0, 0.0)


def test_bad_threshold_at_the_setter_keeps_the_old_one(tiny_model_path):
    clf = amcee.classifier(tiny_model_path, threshold=[0.2, 0.3])
    for bad in (float("nan"), -0.5, [1.0]):
        with pytest.raises(ValueError):
            clf.set_threshold(bad)
    assert clf.get_threshold() == (0.2, 0.3)
    clf.set_threshold(None)  # back to the model's calibrated defaults
    assert clf.get_threshold() == clf.engine.model.default_thresholds
