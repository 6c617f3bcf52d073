"""amcee synth: RML22-style generation with GNU Radio (transmitters, channel, framing)."""
import json

import numpy as np
import pytest
from gnuradio import analog, blocks, filter, gr

from gnuradio.amcee.data.synth import audio as synth_audio
from gnuradio.amcee.data.synth import channel as synth_channel
from gnuradio.amcee.data.synth import generate as synth
from gnuradio.amcee.data.synth import transmitters as tx
from gnuradio.amcee.labels import RML22_CLASSES

SMALL = dict(snrs=(0, 20), frames_per_key=12, variant="all", seed=3, progress=False)


@pytest.fixture(scope="module")
def small_all():
    return synth.generate(workers=1, **SMALL)


@pytest.fixture(scope="module")
def clean_set():
    return synth.generate(snrs=(20,), frames_per_key=40, variant="clean", seed=4,
                          workers=2, progress=False)


def _complex(frames):
    return frames[:, 0].astype(np.float64) + 1j * frames[:, 1].astype(np.float64)


def _run(*chain):
    """Run source -> ... -> vector sink and return the complex output."""
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(*chain, sink)
    tb.run()
    return np.array(sink.data())


# ---------------------------------------------------------------- generate()

def test_shapes_labels_dtype_and_l1_norm(small_all):
    ds = small_all
    n = len(RML22_CLASSES) * 2 * 12
    assert ds.frames.shape == (n, 2, 128) and ds.frames.dtype == np.float32
    assert ds.labels.dtype == np.int64 and ds.snrs.dtype == np.float32
    assert ds.classes == RML22_CLASSES
    assert np.array_equal(np.bincount(ds.labels, minlength=10), np.full(10, 24))
    assert sorted(set(ds.snrs.tolist())) == [0.0, 20.0]
    # Key order: class by class, SNRs within a class.
    assert np.all(np.diff(ds.labels) >= 0)
    assert np.allclose(np.abs(_complex(ds.frames)).sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(ds.frames).all()
    meta = json.loads(json.dumps(ds.meta))
    assert meta["variant"] == "all" and meta["seed"] == 3 and meta["normalisation"] == "l1"


def test_deterministic_per_seed_and_independent_of_workers(small_all):
    again = synth.generate(workers=2, **SMALL)
    assert np.array_equal(again.frames, small_all.frames)
    assert np.array_equal(again.labels, small_all.labels)
    other = synth.generate(workers=2, **dict(SMALL, seed=4))
    assert not np.allclose(other.frames, small_all.frames)


def test_frames_within_a_run_do_not_overlap():
    rng = np.random.default_rng(0)
    starts = synth.frame_starts(6400, 128, rng)
    assert len(starts) > 10
    assert starts[0] >= 0 and starts[-1] + 128 < 6400
    gaps = np.diff(starts) - 128
    assert gaps.min() >= 0 and gaps.max() < 0.05 * 6400


def test_awgn_measured_snr_tracks_nominal():
    snrs = (0, 10, 20)
    ds, clean = synth.generate(snrs=snrs, frames_per_key=30, variant="awgn", seed=5,
                               workers=2, progress=False, return_clean=True)
    x, c = _complex(ds.frames), _complex(clean)
    for snr in snrs:
        m = ds.snrs == snr
        measured = 10 * np.log10(np.sum(abs(c[m]) ** 2) / np.sum(abs(x[m] - c[m]) ** 2))
        assert abs(measured - snr) < 1.0, (snr, measured)
        for i, name in enumerate(ds.classes):
            mi = m & (ds.labels == i)
            per_class = 10 * np.log10(np.sum(abs(c[mi]) ** 2) / np.sum(abs(x[mi] - c[mi]) ** 2))
            # PAM4's +-0.5/+-1.5 points carry 1.25x the power of PSK: +0.97 dB.
            assert abs(per_class - snr) < 1.5, (name, snr, per_class)


def test_every_variant_runs():
    for variant in synth_channel.VARIANTS:
        ds = synth.generate(classes=("QPSK", "AM-DSB"), snrs=(10,), frames_per_key=5,
                            variant=variant, seed=1, workers=1, progress=False)
        assert ds.frames.shape == (10, 2, 128)
        assert np.isfinite(ds.frames).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(classes=("QPSK", "OOK")), "OOK"),
    (dict(variant="rician"), "variant"),
    (dict(frames_per_key=0), "frames_per_key"),
    (dict(snrs=()), "snrs"),
    (dict(frame_len=4), "frame_len"),
    (dict(workers=0), "workers"),
])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        synth.generate(**dict(dict(progress=False), **kwargs))


# ------------------------------------------------- classes look like themselves

def test_clean_frames_have_each_class_signature(clean_set):
    ds = clean_set
    x = {name: _complex(ds.frames[ds.labels == i]) for i, name in enumerate(ds.classes)}
    real_valued = {"BPSK", "PAM4", "AM-DSB"}
    for name, frames in x.items():
        imag_share = np.abs(frames.imag).max() / np.abs(frames).max()
        if name in real_valued:
            assert imag_share < 1e-5, name
        else:
            assert imag_share > 0.1, name
    assert (x["AM-DSB"].real > 0).all()  # carrier + speech never over-modulates
    for name in ("GFSK", "CPFSK", "WBFM"):  # constant envelope
        mag = np.abs(x[name])
        assert (mag.std(axis=1) / mag.mean(axis=1)).max() < 0.01, name
    for name in tx.LINEAR_CLASSES:  # RRC-shaped symbols: the envelope varies
        mag = np.abs(x[name])
        assert (mag.std(axis=1) / mag.mean(axis=1)).mean() > 0.2, name
    dphase = {n: np.abs(np.angle(x[n][:, 1:] * np.conj(x[n][:, :-1]))) for n in ("GFSK", "CPFSK")}
    # CPFSK, h = 0.5 at 2 samples/symbol: exactly pi/4 per sample.
    assert np.allclose(dphase["CPFSK"], np.pi / 4, atol=0.02)
    # GFSK: Gaussian-smoothed frequency up to the sensitivity 1.57 rad/sample.
    # (BT 0.3 at 2 samples/symbol: alternating bits never reach 0; about 0.6.)
    assert 1.4 < dphase["GFSK"].max() < 1.6 and dphase["GFSK"].min() < 0.7


def _matched_symbols(name, n_symbols=3000):
    bits = n_symbols * tx.bits_per_symbol(name)
    mf = filter.fir_filter_ccf(1, filter.firdes.root_raised_cosine(1.0, 2, 1.0, 0.35, 45))
    y = _run(analog.random_uniform_source_b(0, 2, 11), blocks.head(gr.sizeof_char, bits),
             tx.make_transmitter(name), mf)[100:-100]
    return [y[phase::2] / np.mean(np.abs(y[phase::2])) for phase in (0, 1)]


def _evm_db(symbols, table):
    d = np.min(np.abs(symbols[:, None] - table[None, :]), axis=1)
    return 10 * np.log10(np.mean(d ** 2) / np.mean(np.abs(table) ** 2))


@pytest.mark.parametrize("name", tx.LINEAR_CLASSES)
def test_linear_classes_cluster_on_their_constellation(name):
    own = tx.constellation(name)
    assert abs(np.abs(own).mean() - 1) < 1e-6  # gr-mapper: mean magnitude 1
    candidates = _matched_symbols(name)
    evm = min(_evm_db(s, own) for s in candidates)
    assert evm < -30, (name, evm)  # RRC * RRC is ISI free at the symbol instants
    for other in tx.LINEAR_CLASSES:
        table = tx.constellation(other)
        if other != name and len(table) <= len(own):
            assert min(_evm_db(s, table) for s in candidates) > -15, (name, other)


def test_gr_mapper_tables():
    assert np.allclose(sorted(tx.constellation("PAM4").real), [-1.5, -0.5, 0.5, 1.5])
    assert np.allclose(np.angle(tx.constellation("QPSK")), np.pi / 4 * np.array([1, 3, -1, -3]))
    assert np.mean(np.abs(tx.constellation("QAM16")) ** 2) == pytest.approx(1.1146, abs=1e-3)  # docs/dataset-and-network.md: ~1.115
    # QPSK symbol values [0,1,3,2]: bits 10 -> base point 3 (-j rotated), 11 -> base point 2.
    assert tx.constellation("QPSK")[2] == pytest.approx(-1j * np.exp(1j * np.pi / 4), abs=1e-6)


def test_analog_transmitters_carry_the_speech():
    audio = synth_audio.speech_like(3 * synth_audio.AUDIO_RATE, np.random.default_rng(2))
    wbfm = _run(blocks.vector_source_f(audio), tx.make_transmitter("WBFM"))
    am = _run(blocks.vector_source_f(audio), tx.make_transmitter("AM-DSB"))
    assert np.allclose(np.abs(wbfm), 1, atol=1e-3)
    dphase = np.angle(wbfm[1:] * np.conj(wbfm[:-1]))
    assert dphase.std() > 0.3  # 75 kHz deviation at 44.1 kHz: wide, wrapping phase
    assert len(am) == pytest.approx(len(audio) * tx.SAMPLE_RATE / tx.AUDIO_RATE, rel=0.01)
    assert np.abs(am.imag).max() < 1e-6
    assert am.real.mean() == pytest.approx(1, abs=0.02) and am.real.std() > 0.03


def test_speech_has_pauses_and_podcast_level():
    a = synth_audio.speech_like(10 * synth_audio.AUDIO_RATE, np.random.default_rng(1))
    b = synth_audio.speech_like(10 * synth_audio.AUDIO_RATE, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.dtype == np.float32
    rms = np.sqrt((a[: len(a) // 441 * 441].reshape(-1, 441) ** 2).mean(axis=1))  # 10 ms blocks
    assert 0.1 < np.mean(rms < 0.005) < 0.7  # pauses, but mostly talk
    assert 0.05 < np.sqrt(np.mean(a ** 2)) < 0.2 and np.abs(a).max() <= 1.0


# ------------------------------------------------------------------- channel

def test_clock_impairment_applies_cfo_and_phase():
    ch = synth_channel.impairments("clock", seed=1, clock_error_hz=2.0, phase_rad=0.5)
    y = _run(analog.sig_source_c(tx.SAMPLE_RATE, analog.GR_CONST_WAVE, 0, 1),
             blocks.head(gr.sizeof_gr_complex, 4000), ch)[100:]
    assert ch.get_cfo_hz() == pytest.approx(200.0)  # 2 Hz on 10 MHz -> 200 Hz at 1 GHz
    freq = np.angle(np.mean(y[1:] * np.conj(y[:-1]))) * tx.SAMPLE_RATE / (2 * np.pi)
    assert freq == pytest.approx(200.0, rel=1e-3)
    assert np.allclose(np.abs(y), 1, atol=1e-3)


def test_crystal_walk_stays_bounded():
    walk = synth_channel.crystal_error_walk(100000, np.random.default_rng(0), step_std=0.1)
    assert np.abs(walk).max() <= synth_channel.CRYSTAL_MAX_DEV_HZ
    assert np.abs(np.diff(walk)).max() < 1.0


def test_fading_and_noise_are_seeded():
    def once(seed):
        return _run(analog.sig_source_c(tx.SAMPLE_RATE, analog.GR_CONST_WAVE, 0, 1),
                    blocks.head(gr.sizeof_gr_complex, 3000),
                    synth_channel.impairments("all", snr_db=10, seed=seed))
    a, b = once(7), once(8)
    assert np.array_equal(a, once(7))
    n = min(len(a), len(b))  # the SRO resampler's output length depends on the draw
    assert not np.allclose(a[:n], b[:n])


def test_bad_channel_variant():
    with pytest.raises(ValueError, match="variant"):
        synth_channel.impairments("rayleigh")


# ----------------------------------------------------------------------- CLI

def test_cli_synth_and_report(tmp_path, capsys):
    from gnuradio.amcee.cli import main
    from gnuradio.amcee.data.files import load_dataset

    out = tmp_path / "s.npz"
    assert main(["synth", "--out", str(out), "--frames-per-key", "6", "--snrs", "10:20:10",
                 "--classes", "BPSK,WBFM", "--workers", "1", "--quiet"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["frames"] == 24 and line["projected_rml22_seconds"] > 0
    ds = load_dataset(out)
    assert ds.frames.shape == (24, 2, 128) and ds.classes == ("BPSK", "WBFM")

    rep = tmp_path / "rep"
    assert main(["report", "--out", str(rep), "--variant", "awgn", "--frames-per-key", "8",
                 "--snrs", "0,20", "--classes", "QPSK,GFSK", "--workers", "1", "--quiet"]) == 0
    report = json.loads((rep / "fidelity.json").read_text())
    assert [r["nominal_db"] for r in report["snr"]] == [0.0, 20.0]
    assert (rep / "fidelity.png").stat().st_size > 10000 and (rep / "fidelity.md").exists()
    assert main(["synth", "--out", str(out), "--snrs", "1:x", "--quiet"]) == 2

