"""amcee.classification_sink: the C++ recorder of the classifier's messages."""
import math

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from conftest import make_frames
from gnuradio import amcee


def _message(**fields):
    msg = pmt.make_dict()
    for key, value in fields.items():
        if isinstance(value, str):
            value = pmt.intern(value)
        elif isinstance(value, float):
            value = pmt.from_double(value)
        else:
            value = pmt.from_long(value) if key != "offset" else pmt.from_uint64(value)
        msg = pmt.dict_add(msg, pmt.intern(key), value)
    return msg


class _MessageSource(gr.sync_block):
    """Publishes the given messages, then ends the stream."""

    def __init__(self, msgs):
        gr.sync_block.__init__(self, "message_source", in_sig=None, out_sig=[np.uint8])
        self.message_port_register_out(pmt.intern("out"))
        self.msgs = msgs

    def work(self, input_items, output_items):
        for msg in self.msgs:
            self.message_port_pub(pmt.intern("out"), msg)
        return -1


def _recorded(sink, msgs, port):
    """The sink's records after ``msgs`` reached its ``port``."""
    tb = gr.top_block()
    src = _MessageSource(msgs)
    tb.connect(src, blocks.null_sink(gr.sizeof_char))
    tb.msg_connect(src, "out", sink, port)
    tb.run()
    return sink.records()


def test_rows_from_messages_truth_changes_and_reset():
    sink = amcee.classification_sink(["A", "B"])
    msgs = [_message(offset=0, **{"class": 1}, exit=0, entropy=0.1, confidence=0.9, true_label="B", snr=10.0),
            _message(offset=1, **{"class": 0}, exit=2, entropy=0.5, confidence=0.6, true_label="B", snr=10.0),
            _message(offset=2, **{"class": 0}, exit=1, entropy=0.2, confidence=0.8, true_label="C", snr=10.0),
            _message(offset=3, **{"class": -1}, exit=-1, entropy=math.nan, confidence=0.0),
            pmt.intern("not a dict")]
    rec = _recorded(sink, msgs, "in")
    assert sink.count() == 4
    assert rec["offset"].tolist() == [0, 1, 2, 3] and rec["cls"].tolist() == [1, 0, 0, -1]
    assert rec["exit"].tolist() == [0, 2, 1, -1]
    assert rec["true_cls"].tolist() == [1, 1, -1, -1]  # "C" is no class of the sink's
    assert rec["snr"][:3].tolist() == [10.0, 10.0, 10.0] and math.isnan(rec["snr"][3])
    assert rec["frame_index"].tolist() == [-1] * 4
    assert rec["truth_changed"].tolist() == [False, False, True, True]
    assert rec["truth_changed"].dtype == bool and rec["entropy"].dtype == np.float32
    sink.reset()
    assert sink.count() == 0 and len(sink.records()["offset"]) == 0


def test_records_every_decision_of_a_flowgraph(tiny_model_path):
    frames = make_frames(500, seed=41)
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel(), False, 128)
    clf = amcee.classifier(tiny_model_path)
    sink = amcee.classification_sink(clf.classes())
    tb.connect(src, clf, blocks.null_sink(8 * 128))
    tb.msg_connect(clf, "classification", sink, "in")
    tb.run()
    rec = sink.records()
    assert rec["offset"].tolist() == list(range(500))
    assert np.bincount(rec["exit"], minlength=3).tolist() == clf.exit_counts()


def test_batch_port_records_the_same_rows_as_the_per_frame_port(tiny_model_path):
    frames = make_frames(300, seed=42)
    frames[7] = 0
    tags = [gr.python_to_tag((i, pmt.intern("snr"), pmt.from_double(float(i % 5)), pmt.PMT_NIL))
            for i in range(0, 300, 11)]
    tags += [gr.python_to_tag((i, pmt.intern("label"), pmt.intern(name), pmt.PMT_NIL))
             for i, name in ((0, "QPSK"), (150, "BPSK"))]
    tags += [gr.python_to_tag((i, pmt.intern("frame_index"), pmt.from_uint64(i), pmt.PMT_NIL))
             for i in range(0, 300, 3)]
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel().tolist(), False, 128, tags)
    clf = amcee.classifier(tiny_model_path, max_batch=64)
    per_frame, batch = amcee.classification_sink(clf.classes()), amcee.classification_sink(clf.classes())
    tb.connect(src, clf, blocks.null_sink(8 * 128))
    tb.msg_connect(clf, "classification", per_frame, "in")
    tb.msg_connect(clf, "batch", batch, "batch")
    tb.run()
    want, got = per_frame.records(), batch.records()
    assert len(got["offset"]) == 300
    for column in want:
        np.testing.assert_allclose(got[column], want[column], rtol=1e-6, err_msg=column)
    assert got["true_cls"][0] == clf.classes().index("QPSK") and got["true_cls"][-1] == clf.classes().index("BPSK")
    assert got["cls"][7] == -1 and got["truth_changed"].sum() > 0


def test_batch_messages_that_are_not_the_classifiers_are_ignored_and_short_columns_left_out():
    sink = amcee.classification_sink(["A", "B"])
    good = pmt.make_dict()
    for key, value in (("offset", pmt.from_uint64(10)), ("class", pmt.init_s32vector(2, [1, -2])),
                       ("exit", pmt.init_s32vector(2, [0, -1])),
                       ("entropy", pmt.init_f32vector(3, [0.1, 0.2, 0.3])),  # one item too many: left out
                       ("confidence", pmt.init_f32vector(2, [0.9, 0.0])),
                       ("true_label", pmt.to_pmt(["B", None]))):
        good = pmt.dict_add(good, pmt.intern(key), value)
    msgs = [pmt.intern("not a dict"), _message(offset=0, **{"class": 1}),  # class not a vector
            good]
    rec = _recorded(sink, msgs, "batch")
    assert rec["offset"].tolist() == [10, 11] and rec["cls"].tolist() == [1, -1]  # error counts as -1
    assert rec["exit"].tolist() == [0, -1] and rec["true_cls"].tolist() == [1, -1]
    assert np.isnan(rec["entropy"]).all() and rec["confidence"].tolist() == pytest.approx([0.9, 0.0])
    assert np.isnan(rec["snr"]).all() and rec["frame_index"].tolist() == [-1, -1]
