"""`amcee snr-accuracy`: the estimator's error per channel, class and SNR bin,
against each frame's realised SNR (generated frames) or the file's labels."""
import json

import numpy as np
import pytest

from tiny_data import make_tiny_dataset
from gnuradio.amcee.tools.snr_accuracy import markdown, measure, measure_file, realised_snr_db


def test_generated_frames_are_measured_against_their_realised_snr():
    report = measure(classes=("QPSK", "AM-DSB"), snrs=(0.0, 10.0), frames_per_key=4, seed=3, workers=1,
                     progress=False)
    assert list(report["variants"]) == ["all", "awgn"]
    for variant, rep in report["variants"].items():
        assert rep["reference"].startswith("realised SNR") and rep["frames"] == 16
        assert list(rep["pooled"]) == ["0", "10"] and list(rep["per_class"]) == ["QPSK", "AM-DSB"]
        for snr, stats in rep["pooled"].items():
            assert stats["frames"] == 8 and stats["invalid"] == 0
            assert stats["q10"] <= stats["q50"] <= stats["q90"] and stats["std"] >= 0
            assert stats["estimate_mean"] - stats["reference_mean"] == pytest.approx(stats["mean"])
            # AWGN frames are at their nominal SNR; the estimator is a few dB off at worst here.
            if variant == "awgn":
                assert abs(stats["reference_mean"] - float(snr)) < 1.0
            assert abs(stats["mean"]) < 3.0
    text = markdown(report, "amcee snr-accuracy --frames-per-key 4")
    assert "## all" in text and "## awgn" in text and "| QPSK |" in text
    assert "amcee snr-accuracy --frames-per-key 4" in text
    json.dumps(report)  # JSON-able as printed


def test_realised_snr_is_signal_over_added_noise():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3, 2, 64)).astype(np.float32)
    noise = 0.1 * rng.standard_normal((3, 2, 64)).astype(np.float32)
    expected = 10 * np.log10((clean ** 2).sum((1, 2)) / (noise ** 2).sum((1, 2)))
    np.testing.assert_allclose(realised_snr_db(clean + noise, clean), expected, rtol=1e-4)


def test_a_dataset_file_is_measured_against_its_labels(tmp_path):
    path = tmp_path / "tiny.npz"
    make_tiny_dataset(path, frames_per_key=5, snrs=(0, 20))
    report = measure_file(path)
    rep = report["variants"]["file"]
    assert rep["reference"] == "SNR label of the dataset" and rep["frames"] == 100
    assert {k: v["reference_mean"] for k, v in rep["pooled"].items()} == {"0": 0.0, "20": 20.0}
    # A tone in white noise: the estimate is close to the label.
    assert all(abs(v["mean"]) < 2.0 for v in rep["pooled"].values())


@pytest.mark.parametrize("variants, message", [(("fading",), "adds no noise"), (("rain",), "must be names"),
                                                ((), "must be names")])
def test_bad_variants_are_refused(variants, message):
    with pytest.raises(ValueError, match=message):
        measure(variants=variants, frames_per_key=1, progress=False)
