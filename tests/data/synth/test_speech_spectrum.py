"""The synthetic speech's long-term spectrum and high-frequency frames against
published speech statistics (audio.LTASS_BANDS, audio.HIGH_FREQUENCY_PHONEME_SHARE)."""
import json

import numpy as np
import pytest

from gnuradio.amcee.data.synth import audio

SECONDS = 10
SPEAKERS = 3
#: Largest band deviation (dB) from the published LTASS, 63 Hz - 16 kHz.
BAND_TOLERANCE_DB = 3.0
#: Largest deviation of the high-frequency frame share from its target.
SHARE_TOLERANCE = 0.03


def _statistics(generator):
    n = SECONDS * audio.AUDIO_RATE
    return audio.speech_statistics(
        np.concatenate([generator(n, np.random.default_rng(seed)) for seed in range(SPEAKERS)]))


@pytest.fixture(scope="module")
def new():
    return _statistics(audio.speech_like)


@pytest.fixture(scope="module")
def first():
    return _statistics(audio.speech_like_v1)


def _deviation(stats):
    hz = np.array([c for c, _ in audio.LTASS_BANDS])
    return hz, np.array(stats["band_db"]) - audio.ltass_reference_db()


def test_ltass_matches_the_published_one_below_and_above_4khz(new):
    hz, dev = _deviation(new)
    for part, sel in (("below", hz < 4000), ("from", hz >= 4000)):
        worst = np.argmax(np.abs(dev[sel]))
        assert np.abs(dev[sel]).max() < BAND_TOLERANCE_DB, \
            f"{part} 4 kHz: band {hz[sel][worst]} Hz is {dev[sel][worst]:+.1f} dB off the published LTASS"


def test_high_frequency_frame_share_is_the_fricative_share(new):
    share = new["high_frequency_frame_share"]
    assert abs(share - audio.HIGH_FREQUENCY_PHONEME_SHARE) < SHARE_TOLERANCE, share
    assert new["active_frames"] > 0.4 * SPEAKERS * SECONDS / audio.ANALYSIS_FRAME_S


def test_the_check_rejects_the_first_generator(first):
    # The first generator lacks the 1.6-5 kHz band (about -10 to -18 dB): the
    # tolerance above separates the two.
    hz, dev = _deviation(first)
    mid = (hz >= 1600) & (hz <= 4000)
    assert dev[mid].max() < -BAND_TOLERANCE_DB


def test_speech_statistics_of_known_signals():
    rate, n = audio.AUDIO_RATE, audio.AUDIO_RATE * 2
    t = np.arange(n) / rate
    low = audio.SPEECH_RMS * np.sqrt(2) * np.sin(2 * np.pi * 1000 * t)
    high = audio.SPEECH_RMS * np.sqrt(2) * np.sin(2 * np.pi * 6300 * t)
    quiet = np.zeros(n)
    stats = audio.speech_statistics(np.concatenate([low, high, high, high, quiet]))
    assert stats["active_frames"] == 4 * n // int(audio.ANALYSIS_FRAME_S * rate)
    assert stats["high_frequency_frame_share"] == pytest.approx(0.75, abs=0.01)
    bands = np.array(stats["band_db"])
    hz = [c for c, _ in audio.LTASS_BANDS]
    # 1 : 3 power split between the 1 kHz and 6.3 kHz bands.
    assert bands[hz.index(1000)] == pytest.approx(10 * np.log10(0.25), abs=0.2)
    assert bands[hz.index(6300)] == pytest.approx(10 * np.log10(0.75), abs=0.2)


def test_speech_is_deterministic_and_every_generator_keeps_its_level():
    n = 4 * audio.AUDIO_RATE
    for generator in (audio.speech_like, audio.speech_like_v1):
        a, b = generator(n, np.random.default_rng(5)), generator(n, np.random.default_rng(5))
        assert np.array_equal(a, b) and a.dtype == np.float32
        assert not np.array_equal(a, generator(n, np.random.default_rng(6)))
    with pytest.raises(ValueError, match="audio rate"):
        audio.speech_like(1000, 0, rate=16000)


def test_report_shows_both_spectra(tmp_path):
    from gnuradio.amcee.cli import main

    rep = tmp_path / "rep"
    assert main(["report", "--out", str(rep), "--variant", "clean", "--frames-per-key", "2",
                 "--snrs", "10", "--classes", "WBFM", "--workers", "1", "--quiet"]) == 0
    speech = json.loads((rep / "fidelity.json").read_text())["speech"]
    assert len(speech["published_db"]) == len(speech["band_hz"]) == len(audio.LTASS_BANDS)
    for key in ("synthetic", "synthetic_v1"):
        assert len(speech[key]["band_db"]) == len(audio.LTASS_BANDS)
        assert 0 < speech[key]["high_frequency_frame_share"] < 1
    assert (rep / "speech.png").stat().st_size > 10000
    assert "![speech spectrum](speech.png)" in (rep / "fidelity.md").read_text()
