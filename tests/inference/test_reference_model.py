"""The shipped reference: the paper's backbone without early exits, a model
file of one exit that the engine, the block and `amcee info` take like any other."""
import subprocess
import sys

import numpy as np
import pmt
from gnuradio import blocks, gr

from conftest import ROOT

AMCEE = [sys.executable, str(ROOT / "apps" / "amcee")]
#: MACs per frame of the paper's backbone (its layer table, docs/dataset-and-network.md).
PAPER_BACKBONE_MACS = 1655424


def test_the_reference_is_the_paper_backbone_and_every_frame_leaves_at_its_one_exit():
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.inference.model_file import reference_model_path

    engine = EarlyExitEngine(reference_model_path(), num_threads=1)
    assert list(engine.exit_names) == ["final"]
    assert engine.meta["backbone_macs"] == PAPER_BACKBONE_MACS and engine.thresholds == ()
    frames = np.random.default_rng(0).standard_normal((300, 2, engine.frame_len)).astype(np.float32)
    result = engine.classify(frames)
    assert (result.exits == 0).all()
    assert np.array_equal(result.classes, engine.backbone_probs(frames)[0].argmax(1))


def test_the_reference_runs_in_the_block_and_publishes_on_its_one_exit_port():
    from gnuradio.amcee.blocks.classifier import classifier
    from gnuradio.amcee.blocks.schema import exit_port
    from gnuradio.amcee.inference.model_file import reference_model_path

    n, frame_len = 40, 128
    frames = np.random.default_rng(1).standard_normal((n, frame_len)) * (1 + 1j)
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.astype(np.complex64).ravel(), False, frame_len)
    clf = classifier(reference_model_path(), num_threads=1)
    debug = blocks.message_debug()
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frame_len))
    tb.msg_connect(clf, exit_port(0), debug, "store")
    tb.run()
    assert debug.num_messages() == n
    assert pmt.to_long(pmt.dict_ref(debug.get_message(0), pmt.intern("exit"), pmt.PMT_NIL)) == 0


def test_info_says_a_backbone_has_no_early_exit():
    from gnuradio.amcee.inference.model_file import reference_model_path

    out = subprocess.run(AMCEE + ["info", reference_model_path()], capture_output=True, text=True, check=True).stdout
    assert "thresholds    none (no early exit)" in out and "give-up" not in out
