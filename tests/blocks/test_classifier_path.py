"""The classifier's per-frame path (C++: frame_prep.cc, decision_publisher.cc),
its batching with a latency bound, and what it does when the model fails."""
import os
import subprocess
import sys
import time

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr

from conftest import make_frames
from gnuradio import amcee
from gnuradio.amcee.blocks.batching import LatencyBoundBatching
from gnuradio.amcee.frames import as_float_frames, l1_normalize_frames, valid_mask
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import ModelFileError
from test_classifier import amc_tags, messages, run_flowgraph

TRUTH_FIELDS = {"snr": "snr", "label": "true_label", "frame_index": "frame_index"}


def reference_decisions(engine, frames, tags):
    """The tag values and messages the block must produce, built in plain
    Python from the engine's results (the block's former Python path)."""
    result = engine.classify(frames)
    truth, expected_tags, expected_msgs = {}, [], []
    by_offset = sorted(tags, key=lambda t: t.offset)
    j = 0
    for i in range(len(frames)):
        while j < len(by_offset) and by_offset[j].offset <= i:
            field = TRUTH_FIELDS.get(by_offset[j].key)
            if field:
                truth[field] = by_offset[j].value
            j += 1
        valid = bool(result.valid[i])
        cls = int(result.classes[i])
        info = {"label": engine.classes[cls] if valid else "invalid", "class": cls,
                "confidence": float(result.confidence[i]), "entropy": float(result.entropy[i]),
                "exit": int(result.exits[i]), "probs": result.probs[i]}
        expected_tags.append(info)
        expected_msgs.append(({**info, "offset": i, **truth}, int(result.exits[i]) if valid else None))
    return expected_tags, expected_msgs


def same_fields(got, want):
    """Decisions equal; numbers equal up to float rounding (oneDNN's sums
    depend on the batch size, and the block batches differently)."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    for key, value in want.items():
        if key == "probs":
            np.testing.assert_allclose(np.asarray(got[key], np.float32), value, rtol=1e-5, atol=1e-7)
        elif isinstance(value, float) and np.isnan(value):
            assert np.isnan(got[key])
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
        else:
            assert got[key] == value, key


def test_tags_and_messages_equal_the_python_reference_frame_for_frame(tiny_model_path):
    frames = make_frames(300, seed=31)
    frames[5] = 0
    frames[40, 7] = np.nan
    tags = []
    for i in range(0, 300, 7):
        tags.append(gr.python_to_tag((i, pmt.intern("snr"), pmt.from_double(float(i % 21)), pmt.PMT_NIL)))
        tags.append(gr.python_to_tag((i, pmt.intern("frame_index"), pmt.from_uint64(1000 + i), pmt.PMT_NIL)))
    for i in range(0, 300, 50):
        tags.append(gr.python_to_tag((i, pmt.intern("label"), pmt.intern(f"C{i}"), pmt.PMT_NIL)))
    clf = amcee.classifier(tiny_model_path, max_batch=64)
    sink, stores = run_flowgraph(clf, frames, tags=tags)
    engine = EarlyExitEngine(tiny_model_path, max_batch=64)
    want_tags, want_msgs = reference_decisions(engine, frames, [gr.tag_to_python(t) for t in tags])

    got_tags = amc_tags(sink)
    assert [t.offset for t in got_tags] == list(range(len(frames)))
    for tag, want in zip(got_tags, want_tags):
        same_fields(tag.value, want)

    all_msgs = messages(stores["classification"])
    assert len(all_msgs) == len(frames)
    for msg, (want, _) in zip(all_msgs, want_msgs):
        same_fields(msg, want)
    for k in range(clf.num_exits()):
        got = messages(stores[f"exit{k}"])
        want = [m for m, exit_k in want_msgs if exit_k == k]
        assert len(got) == len(want) > 0  # every exit decided some frames
        for msg, w in zip(got, want):
            same_fields(msg, w)

    probs = np.array([t.value["probs"] for t in got_tags if t.value["exit"] >= 0])
    classes = [t.value["class"] for t in got_tags if t.value["exit"] >= 0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs.argmax(axis=1).tolist() == classes


def test_frame_preparation_equals_the_numpy_reference():
    frames = make_frames(50, seed=32) * np.float32(3.7)
    frames[3] = 0
    frames[9, 1] = complex(np.inf, 0)
    out, valid = amcee.amcee_python.prepare_complex_frames(frames, 128)
    x = as_float_frames(frames, 128)
    assert valid.tolist() == valid_mask(x).tolist()
    np.testing.assert_allclose(out, l1_normalize_frames(x[valid]), rtol=1e-6, atol=0)
    rml_out, rml_valid = amcee.amcee_python.prepare_rml_frames(x, 128)
    np.testing.assert_array_equal(rml_out, out)
    np.testing.assert_array_equal(rml_valid, valid)
    with pytest.raises(ValueError, match=r"\[N, 128\]"):
        amcee.amcee_python.prepare_complex_frames(frames[:, :64], 128)


def test_subnormal_samples_are_flushed_and_normal_frames_untouched():
    frames = np.full((2, 128), 1e-42, np.complex64)
    frames[:, 0] = 1.0
    out, valid = amcee.amcee_python.prepare_complex_frames(frames, 128)
    assert valid.all() and out[:, 0, 0].tolist() == [1.0, 1.0]
    assert np.count_nonzero(out) == 2  # the 1e-42 samples are zero, not subnormal


# -- batching ---------------------------------------------------------------------

def _recording(clf):
    """Record how many frames each engine call saw."""
    sizes = []
    classify = clf.engine.classify

    def recorded(frames, *args, **kwargs):
        sizes.append(len(frames))
        return classify(frames, *args, **kwargs)
    clf.engine.classify = recorded
    return sizes


def test_fast_stream_is_classified_in_full_batches_and_the_tail_is_not_lost(tiny_model_path):
    frames = make_frames(64 * 7 + 13, seed=33)
    clf = amcee.classifier(tiny_model_path, max_batch=64)
    sizes = _recording(clf)
    sink, stores = run_flowgraph(clf, frames)
    assert sum(sizes) == len(frames)
    # Full batches; at the end of the stream the scheduler hands over the
    # tail in halving pieces (8, 4, 1).
    assert sizes.count(64) == 7 and all(s < 13 for s in sizes if s != 64), sizes
    assert [t.offset for t in amc_tags(sink)] == list(range(len(frames)))
    assert stores["classification"].num_messages() == len(frames)


class _SlowSource(gr.sync_block):
    """One frame per call, ``period`` seconds apart: a slow live stream."""

    def __init__(self, frames, period):
        gr.sync_block.__init__(self, "slow_source", in_sig=None, out_sig=[(np.complex64, frames.shape[1])])
        self.frames, self.period = frames, period

    def work(self, input_items, output_items):
        i = self.nitems_written(0)
        if i >= len(self.frames):
            return -1
        time.sleep(self.period)
        output_items[0][0] = self.frames[i]
        return 1


def test_slow_stream_is_classified_before_a_batch_fills(tiny_model_path):
    # 60 frames 2 ms apart; a batch of 64 would never fill before the end.
    frames = make_frames(60, seed=34)
    clf = amcee.classifier(tiny_model_path, max_batch=64, max_latency=20)
    sizes = _recording(clf)
    tb = gr.top_block()
    src = _SlowSource(frames, 0.002)
    sink = blocks.vector_sink_c(128)
    tb.connect(src, clf, sink)
    tb.run()
    assert sum(sizes) == len(frames)
    assert len(sizes) >= 3 and max(sizes) < len(frames), sizes
    assert [t.offset for t in amc_tags(sink)] == list(range(len(frames)))


def test_batching_rule_by_counts():
    now = [0.0]
    rule = LatencyBoundBatching(max_batch=256, max_latency_ms=100, clock=lambda: now[0])
    rule.reset(capacity=511)                  # a buffer of 512 items holds two batches
    assert rule.batch == 256
    assert rule.inputs_required(512, 300, False) == 512         # a full batch waits: go
    assert rule.inputs_required(512, 10, False) == 512          # ask for more than is there: hold
    assert rule.inputs_required(100, 10, False) == 256          # hold for a full batch
    assert rule.timer_ms == 10                                  # checks at least every 10 ms
    now[0] = 0.05
    assert rule.inputs_required(100, 20, False) == 256          # 50 ms of 100: still hold
    now[0] = 0.091
    assert rule.inputs_required(100, 25, False) == 100          # 91 ms + one check's 10 ms: go
    rule.call_done(0.09, 0.1)                                   # work() took 16 of them
    assert rule.inputs_required(100, 9, False) == 100           # the other 9 follow at once
    rule.call_done(0.1, 0.11)
    assert rule.inputs_required(100, 0, False) == 100           # nothing waits: blocked on input
    now[0] = 0.5                                                # a new frame long after that call
    assert rule.inputs_required(100, 1, False) == 256
    now[0] = 0.575
    assert rule.inputs_required(100, 1, False) == 256           # 75 ms + a check + a call's 2 ms: not yet
    now[0] = 0.591
    assert rule.inputs_required(100, 1, False) == 100
    rule.reset(capacity=1)
    assert rule.inputs_required(100, 1, True) == 100            # upstream finished: take the tail
    rule.reset(capacity=63)                                      # a small buffer: never wait for more than half
    assert rule.batch == 32
    with pytest.raises(ValueError, match="max_latency"):
        rule.set_max_latency(0)


# -- failures -----------------------------------------------------------------------

def _classifier_failing_on_full_batches(model_path):
    """A classifier (max_batch 64) whose network calls on 64 frames raise."""
    clf = amcee.classifier(model_path, max_batch=64)
    classify = clf.engine.classify

    def fails_on_large_batches(batch, *args, **kwargs):
        if len(batch) >= 64:
            raise RuntimeError("out of memory in a made-up kernel")
        return classify(batch, *args, **kwargs)
    clf.engine.classify = fails_on_large_batches
    return clf


def test_a_failing_network_call_tags_its_frames_error_and_the_flowgraph_goes_on(tiny_model_path):
    frames = make_frames(200, seed=35)
    clf = _classifier_failing_on_full_batches(tiny_model_path)
    sink, stores = run_flowgraph(clf, frames)
    tags = amc_tags(sink)
    assert [t.offset for t in tags] == list(range(len(frames)))
    errors = [t for t in tags if t.value["label"] == "error"]
    assert len(errors) == clf.error_count() >= 64 * 3
    assert all(t.value["exit"] == -1 and t.value["class"] == -1 for t in errors)
    assert stores["classification"].num_messages() == len(frames)
    assert sum(clf.exit_counts()) + clf.error_count() == len(frames)


class _FailsOnLargeBatches(torch.nn.Module):
    """A model file that runs one frame but raises on batches of 64 or more."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, thresholds: torch.Tensor, give_up: torch.Tensor):
        if x.size(0) >= 64:
            raise RuntimeError("fails on large batches")
        return self.inner(x, thresholds, give_up)

    @torch.jit.export
    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.backbone(x)

    @torch.jit.export
    def exit_logits(self, x: torch.Tensor):
        return self.inner.exit_logits(x)


def test_a_model_that_fails_on_a_full_batch_is_refused_at_load(tiny_model_path, tmp_path):
    from gnuradio.amcee.inference.model_file import METADATA_FILE

    extra = {METADATA_FILE: ""}
    inner = torch.jit.load(tiny_model_path, _extra_files=extra)
    path = tmp_path / "fails.pt"
    torch.jit.save(torch.jit.script(_FailsOnLargeBatches(inner)), str(path), _extra_files=extra)
    # The file carries code of its own: only a user who trusts it can load it.
    with pytest.raises(ModelFileError, match="did not write"):
        amcee.classifier(str(path))
    EarlyExitEngine(str(path), max_batch=32, trust_model_code=True)  # passes where it runs
    with pytest.raises(ModelFileError, match="batch of 256"):
        amcee.classifier(str(path), trust_model_code=True)


def test_the_compiled_part_imports_from_the_installed_module():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "from gnuradio.amcee import amcee_python as m; print(m.__file__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pytest-pkgroot" not in result.stdout and "amcee_python" in result.stdout


# -- the batch port and the stream-tag switch -----------------------------------------

def _batch_rows(store, num_classes):
    """The per-frame fields of every batch message, row by row, as the
    per-frame messages carry them (label left out: the batch has class codes)."""
    rows = []
    for msg in messages(store):
        n = len(msg["class"])
        probs = np.asarray(msg["probs"], np.float32).reshape(n, num_classes)
        for i in range(n):
            row = {"offset": msg["offset"] + i, "class": int(msg["class"][i]), "exit": int(msg["exit"][i]),
                   "confidence": float(msg["confidence"][i]), "entropy": float(msg["entropy"][i]),
                   "probs": probs[i]}
            if "snr" in msg and not np.isnan(msg["snr"][i]):
                row["snr"] = float(msg["snr"][i])
            if "true_label" in msg and msg["true_label"][i] is not None:
                row["true_label"] = msg["true_label"][i]
            if "frame_index" in msg and msg["frame_index"][i] is not None:
                row["frame_index"] = msg["frame_index"][i]
            rows.append(row)
    return rows


def test_batch_messages_carry_the_per_frame_decisions_and_tags_can_be_switched_off(tiny_model_path):
    frames = make_frames(300, seed=32)
    frames[5] = 0
    tags = [gr.python_to_tag((i, pmt.intern("snr"), pmt.from_double(float(i % 21)), pmt.PMT_NIL))
            for i in range(20, 300, 9)]
    tags += [gr.python_to_tag((i, pmt.intern("frame_index"), pmt.from_uint64(1000 + i), pmt.PMT_NIL))
             for i in range(0, 300, 13)]
    tags.append(gr.python_to_tag((100, pmt.intern("label"), pmt.intern("C100"), pmt.PMT_NIL)))
    clf = amcee.classifier(tiny_model_path, max_batch=64, stream_tags=False)
    assert clf.stream_tags() is False
    batch = blocks.message_debug()
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel().tolist(), False, frames.shape[1], tags)
    sink = blocks.vector_sink_c(frames.shape[1])
    per_frame = blocks.message_debug()
    tb.connect(src, clf, sink)
    tb.msg_connect(clf, "classification", per_frame, "store")
    tb.msg_connect(clf, "batch", batch, "store")
    tb.run()

    assert amc_tags(sink) == []  # no amc tags; the input's own tags still pass
    assert {t.key for t in (gr.tag_to_python(t) for t in sink.tags())} == {"snr", "frame_index", "label"}
    want = messages(per_frame)
    assert len(want) == len(frames) and batch.num_messages() < len(frames)
    got = _batch_rows(batch, len(clf.classes()))
    assert [r["offset"] for r in got] == list(range(len(frames)))
    for row, msg in zip(got, want):
        msg = dict(msg)
        del msg["label"]
        same_fields(row, msg)
    assert got[5]["class"] == -1 and got[5]["exit"] == -1  # the all-zero frame: invalid

    clf.set_stream_tags(True)
    assert clf.stream_tags() is True


def test_batch_messages_mark_failed_calls_error(tiny_model_path):
    frames = make_frames(130, seed=36)
    clf = _classifier_failing_on_full_batches(tiny_model_path)
    tb = gr.top_block()
    store = blocks.message_debug()
    tb.connect(blocks.vector_source_c(frames.ravel().tolist(), False, 128), clf, blocks.null_sink(8 * 128))
    tb.msg_connect(clf, "batch", store, "store")
    tb.run()
    rows = _batch_rows(store, len(clf.classes()))
    assert len(rows) == len(frames)
    errors = [r for r in rows if r["class"] == -2]
    assert len(errors) == clf.error_count() >= 64 and all(r["exit"] == -1 for r in errors)
