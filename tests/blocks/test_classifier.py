"""The amcee.classifier block in real flowgraphs."""
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from conftest import make_frames
from gnuradio import amcee
from gnuradio.amcee.inference.engine import EarlyExitEngine


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
    (dict(max_batch=-1), "max_batch"),
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


@pytest.fixture(scope="module")
def table_model(tiny_model_path, tmp_path_factory):
    """The tiny model with an SNR table: below -5 dB every frame leaves at
    exit 0, from -5 to 5 dB every frame goes to the final exit, above as plain."""
    from gnuradio.amcee.inference.model_file import load_model
    from gnuradio.amcee.network.export import rewrite_metadata

    plain = load_model(tiny_model_path).meta
    path = tmp_path_factory.mktemp("snr") / "table.pt"
    rewrite_metadata(tiny_model_path, {"snr_table": {
        "edges_db": [-5.0, 5.0], "thresholds": [plain["thresholds"], [0.0, 0.0], plain["thresholds"]],
        "give_up": [[0.0, None], [None, None], plain["give_up"]]}}, out_path=str(path))
    return str(path)


def snr_tags(values, key):
    return [gr.python_to_tag((i, pmt.intern(key), pmt.from_double(float(v)), pmt.PMT_NIL))
            for i, v in enumerate(values) if not np.isnan(v)]


def test_each_frame_is_held_to_the_thresholds_of_its_snr_tag(table_model, tiny_model_path):
    """snr_est tags (the estimator) choose the thresholds; snr tags (a
    replayed dataset's true SNR) do not, so a frame without snr_est gets the
    plain rule; a frame's result is the engine's for that frame alone,
    whatever the batch and the stream before."""
    frames = make_frames(150, seed=18)
    rng = np.random.default_rng(5)
    est = rng.choice([-20.0, 0.0, 20.0, np.nan], len(frames))
    dataset = np.where(np.arange(len(frames)) % 3 == 0, -20.0, np.nan)  # every third frame: snr -20 dB
    want_snr = est
    engine = EarlyExitEngine(table_model)
    want = engine.classify(frames, snr_db=want_snr)
    assert (want.exits[want_snr == -20] == 0).all() and (want.exits[want_snr == 0] == 2).all()
    plain = EarlyExitEngine(tiny_model_path).classify(frames)
    none = np.isnan(want_snr)
    assert none.any() and np.array_equal(want.exits[none], plain.exits[none])
    for max_batch, before in ((256, 0), (16, 37)):  # other batches, after a stream history
        clf = amcee.classifier(table_model, max_batch=max_batch)
        if before:
            run_flowgraph(clf, make_frames(before, seed=19), tags=snr_tags(np.full(before, -20.0), "snr_est"))
        sink, _ = run_flowgraph(clf, frames, tags=snr_tags(dataset, "snr") + snr_tags(est, "snr_est"))
        got = amc_tags(sink)
        np.testing.assert_array_equal([t.value["exit"] for t in got], want.exits)
        np.testing.assert_array_equal([t.value["class"] for t in got], want.classes)
    # A threshold set in the block overrides the table.
    clf = amcee.classifier(table_model, threshold=0.0)
    sink, _ = run_flowgraph(clf, frames, tags=snr_tags(np.full(len(frames), -20.0), "snr_est"))
    assert {t.value["exit"] for t in amc_tags(sink)} == {2}
    clf.set_threshold(None)  # the model's thresholds and its table again
    sink, _ = run_flowgraph(clf, frames, tags=snr_tags(np.full(len(frames), -20.0), "snr_est"))
    assert {t.value["exit"] for t in amc_tags(sink)} == {0}


def test_estimate_snr_runs_the_estimator_in_the_block(table_model):
    from gnuradio.amcee.amcee_python import estimate_snr_db

    frames = make_frames(100, seed=20)
    snr = estimate_snr_db(frames)
    want = EarlyExitEngine(table_model).classify(frames, snr_db=snr)
    clf = amcee.classifier(table_model, estimate_snr=True)
    assert clf.estimate_snr()
    # Its own estimate wins over the tags.
    sink, _ = run_flowgraph(clf, frames, tags=snr_tags(np.full(len(frames), 20.0), "snr_est"))
    np.testing.assert_array_equal([t.value["exit"] for t in amc_tags(sink)], want.exits)
    rml = np.stack([frames.real, frames.imag], axis=1).astype(np.float32).reshape(len(frames), -1)
    clf = amcee.classifier(table_model, estimate_snr=True, input_format="rml")
    sink, _ = run_flowgraph(clf, rml, layout="rml")
    np.testing.assert_array_equal([t.value["exit"] for t in amc_tags(sink)], want.exits)


def test_bad_threshold_at_the_setter_keeps_the_old_one(tiny_model_path):
    clf = amcee.classifier(tiny_model_path, threshold=[0.2, 0.3])
    for bad in (float("nan"), -0.5, [1.0]):
        with pytest.raises(ValueError):
            clf.set_threshold(bad)
    assert clf.get_threshold() == (0.2, 0.3)
    clf.set_threshold(None)  # back to the model's calibrated defaults
    assert clf.get_threshold() == clf.engine.model.default_thresholds
