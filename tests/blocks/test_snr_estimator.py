"""amcee.snr_estimator (C++ sync block) and amcee.estimate_snr_db (its
estimator, bound with pybind11): accuracy on AWGN QPSK from a GNU Radio
flowgraph, one tag per vector at its offset, a frame's estimate from that frame
only, clear errors for bad input, and the GRC block compiled with grcc."""
import re
import subprocess
import sys

import numpy as np
import pmt
import pytest
import yaml

from conftest import ROOT
from gnuradio import amcee, analog, blocks, gr
from gnuradio.amcee.data.synth.transmitters import modulated_source

FRAME_LEN = 128
QPSK_SNRS_DB = tuple(range(0, 21, 2))
FRAMES_PER_SNR = 150


def pmt_double(value):
    assert pmt.is_real(value), value
    return pmt.to_double(value)


def _qpsk_through_estimator(snr_db, n_frames, seed):
    """RML22's QPSK transmitter + AWGN -> snr_estimator: (tagged frames, tags,
    per-frame true SNR in dB from the clean signal and the noise)."""
    tb = gr.top_block()
    source = modulated_source("QPSK", seed=seed)
    n = n_frames * FRAME_LEN
    head = blocks.head(gr.sizeof_gr_complex, n)
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, 10 ** (-snr_db / 20), seed + 1)
    noise_head = blocks.head(gr.sizeof_gr_complex, n)
    add = blocks.add_cc()
    to_frames = blocks.stream_to_vector(gr.sizeof_gr_complex, FRAME_LEN)
    estimator = amcee.snr_estimator(FRAME_LEN)
    out = blocks.vector_sink_c(FRAME_LEN)
    clean, noise_sink = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(source, head, (add, 0))
    tb.connect(noise, noise_head, (add, 1))
    tb.connect(add, to_frames, estimator, out)
    tb.connect(head, clean)
    tb.connect(noise_head, noise_sink)
    tb.run()
    frames = np.asarray(out.data(), np.complex64).reshape(-1, FRAME_LEN)
    signal = np.asarray(clean.data()).reshape(-1, FRAME_LEN)
    noise_frames = np.asarray(noise_sink.data()).reshape(-1, FRAME_LEN)
    true_db = 10 * np.log10(np.sum(np.abs(signal) ** 2, 1) / np.sum(np.abs(noise_frames) ** 2, 1))
    return frames, out.tags(), true_db


@pytest.mark.parametrize("snr_db", QPSK_SNRS_DB)
def test_block_estimates_awgn_qpsk_within_1_5_db(snr_db):
    frames, tags, true_db = _qpsk_through_estimator(snr_db, FRAMES_PER_SNR, seed=100 + snr_db)
    estimates = np.array([pmt_double(t.value) for t in tags])
    assert len(estimates) == len(frames) == FRAMES_PER_SNR
    error = estimates - true_db
    assert abs(error.mean()) <= 1.5, f"{snr_db} dB: mean error {error.mean():.2f} dB"
    # And against the nominal SNR the noise source was set to (unit-power QPSK).
    assert abs(estimates.mean() - snr_db) <= 1.5


def test_every_vector_is_tagged_at_its_offset_with_its_own_estimate():
    frames, tags, _ = _qpsk_through_estimator(10, 40, seed=7)
    assert [t.offset for t in tags] == list(range(len(frames)))
    assert {str(t.key) for t in tags} == {"snr_est"}
    tagged = np.array([pmt_double(t.value) for t in tags])
    # The block passes the vectors through unchanged and tags what the
    # function computes for each vector alone.
    np.testing.assert_array_equal(tagged, amcee.estimate_snr_db(frames))


def test_the_block_keeps_incoming_tags_and_copies_the_samples():
    rng = np.random.default_rng(3)
    data = (rng.standard_normal(4 * FRAME_LEN) + 1j * rng.standard_normal(4 * FRAME_LEN)).astype(np.complex64)
    label = gr.tag_utils.python_to_tag((2, pmt.intern("label"), pmt.intern("QPSK"), pmt.PMT_F))
    tb = gr.top_block()
    source = blocks.vector_source_c(data.tolist(), False, FRAME_LEN, [label])
    estimator = amcee.snr_estimator(FRAME_LEN)
    estimator.set_block_alias("front_end_snr")  # as GRC names it, after making it
    sink = blocks.vector_sink_c(FRAME_LEN)
    tb.connect(source, estimator, sink)
    tb.run()
    np.testing.assert_array_equal(np.asarray(sink.data(), np.complex64), data)
    keys = sorted((t.offset, str(t.key)) for t in sink.tags())
    assert keys == [(0, "snr_est"), (1, "snr_est"), (2, "label"), (2, "snr_est"), (3, "snr_est")]
    assert {str(t.srcid) for t in sink.tags() if str(t.key) == "snr_est"} == {"front_end_snr"}


def test_a_frames_estimate_depends_on_that_frame_only():
    rng = np.random.default_rng(5)
    scale = np.array([0.1, 1.0, 3.0, 0.5, 10.0, 1.0], np.float32)[:, None]
    frames = ((rng.standard_normal((6, FRAME_LEN)) + 1j * rng.standard_normal((6, FRAME_LEN))) * scale
              + np.exp(1j * 0.3 * np.arange(FRAME_LEN)) * 2).astype(np.complex64)
    together = amcee.estimate_snr_db(frames)
    for i in range(len(frames)):
        assert amcee.estimate_snr_db(frames[i:i + 1])[0] == together[i]
        assert amcee.estimate_snr_db(frames[::-1].copy())[len(frames) - 1 - i] == together[i]
    # Another frame length in between (the per-thread workspace is rebuilt).
    amcee.estimate_snr_db(frames[:, :64].copy())
    np.testing.assert_array_equal(amcee.estimate_snr_db(frames), together)
    # The same frame at another scale: the same estimate, up to float rounding.
    np.testing.assert_allclose(amcee.estimate_snr_db(frames * np.float32(1e3)), together, atol=1e-3)
    # A strided view is estimated like its contiguous copy.
    wide = np.zeros((6, 2 * FRAME_LEN), np.complex64)
    wide[:, ::2] = frames
    np.testing.assert_array_equal(amcee.estimate_snr_db(wide[:, ::2]), together)


def test_estimates_are_bounded_and_invalid_frames_are_nan():
    rng = np.random.default_rng(9)
    noise = (rng.standard_normal(FRAME_LEN) + 1j * rng.standard_normal(FRAME_LEN)).astype(np.complex64)
    tone = np.exp(1j * 0.4 * np.arange(FRAME_LEN)).astype(np.complex64)
    bad_nan, bad_inf = noise.copy(), noise.copy()
    bad_nan[5], bad_inf[7] = np.nan, np.inf
    zero = np.zeros(FRAME_LEN, np.complex64)
    est = amcee.estimate_snr_db(np.stack([noise, tone, tone + 1e-4 * noise, bad_nan, bad_inf, zero]))
    assert amcee.SNR_EST_FLOOR_DB <= est[0] < 0  # noise alone: no measurable signal
    assert est[1] == amcee.SNR_EST_CEILING_DB
    assert 50 >= est[2] > 30
    assert np.isnan(est[3:]).all()
    assert amcee.estimate_snr_db(np.zeros((0, FRAME_LEN), np.complex64)).shape == (0,)


@pytest.mark.parametrize("frames, error, message", [
    (np.zeros((2, FRAME_LEN), np.float32), TypeError, "must be complex64, got float32"),
    (np.zeros((2, FRAME_LEN), np.complex128), TypeError, "must be complex64, got complex128"),
    (np.zeros(FRAME_LEN, np.complex64), ValueError, r"must be 2-D \[n, L\], got 1-D"),
    (np.zeros((2, 2, FRAME_LEN), np.complex64), ValueError, "got 3-D"),
    (np.zeros((2, 8), np.complex64), ValueError, "at least 16 samples, got 8"),
])
def test_the_binding_rejects_bad_input(frames, error, message):
    with pytest.raises(error, match=message):
        amcee.estimate_snr_db(frames)


def test_the_block_rejects_a_short_vector():
    with pytest.raises(ValueError, match="vlen must be at least 16, got 8"):
        amcee.snr_estimator(8)
    assert amcee.snr_estimator().vlen() == FRAME_LEN


def test_the_grc_documentation_states_the_constants():
    block = yaml.safe_load((ROOT / "grc" / "amcee_snr_estimator.block.yml").read_text())
    doc = " ".join(block["documentation"].split())
    low, high = re.search(r"Estimates lie in (-?\d+)\.\.(\d+) dB", doc).groups()
    assert (float(low), float(high)) == (amcee.SNR_EST_FLOOR_DB, amcee.SNR_EST_CEILING_DB)
    assert float(re.search(r"takes over above (\d+) dB", doc).group(1)) == amcee.SNR_EST_M2M4_MIN_DB
    assert block["asserts"] == [f"${{ vlen >= {amcee.SNR_EST_MIN_FRAME_LEN} }}"]


FLOWGRAPH = {
    "options": {"parameters": {"id": "snr_estimator_check", "title": "snr estimator", "generate_options": "no_gui",
                               "output_language": "python", "run": "True", "run_options": "run"},
                "states": {"coordinate": [8, 8], "rotation": 0, "state": "enabled"}},
    "blocks": [
        {"name": "noise", "id": "analog_noise_source_x",
         "parameters": {"type": "complex", "noise_type": "analog.GR_GAUSSIAN", "amp": "0.1", "seed": "1"}},
        {"name": "tone", "id": "analog_sig_source_x",
         "parameters": {"type": "complex", "samp_rate": "32000", "waveform": "analog.GR_COS_WAVE",
                        "freq": "1000", "amp": "1", "offset": "0", "phase": "0"}},
        {"name": "add", "id": "blocks_add_xx", "parameters": {"type": "complex", "num_inputs": "2", "vlen": "1"}},
        {"name": "to_frames", "id": "blocks_stream_to_vector",
         "parameters": {"type": "complex", "num_items": "128", "vlen": "1"}},
        {"name": "head", "id": "blocks_head", "parameters": {"type": "complex", "num_items": "5", "vlen": "128"}},
        {"name": "snr", "id": "amcee_snr_estimator", "parameters": {"vlen": "128"}},
        {"name": "tags", "id": "blocks_tag_debug",
         "parameters": {"type": "complex", "name": "est", "filter": '"snr_est"', "num_inputs": "1",
                        "vlen": "128", "display": "True"}},
    ],
    "connections": [["noise", "0", "add", "0"], ["tone", "0", "add", "1"], ["add", "0", "to_frames", "0"],
                    ["to_frames", "0", "head", "0"], ["head", "0", "snr", "0"], ["snr", "0", "tags", "0"]],
    "metadata": {"file_format": 1},
}


def test_the_grc_block_compiles_with_grcc_and_runs(tmp_path):
    for block in FLOWGRAPH["blocks"]:
        block["states"] = {"coordinate": [8, 100], "rotation": 0, "state": "enabled"}
    path = tmp_path / "snr_estimator_check.grc"
    path.write_text(yaml.safe_dump(FLOWGRAPH))
    result = subprocess.run(["grcc", "-o", str(tmp_path), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run([sys.executable, str(tmp_path / "snr_estimator_check.py")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # A unit tone over noise of power 0.01: about 20 dB, on each of the 5 frames.
    values = [float(v) for v in re.findall(r"Key: snr_est\s+Value: (\S+)", run.stdout + run.stderr)]
    assert len(values) == 5 and all(17 < v < 23 for v in values), run.stdout
