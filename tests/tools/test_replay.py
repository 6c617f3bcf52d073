"""amcee replay: decisions through a GNU Radio flowgraph equal EarlyExitEngine.classify
(what amcee eval runs) frame for frame, for every source and layout."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

AMCEE = [sys.executable, str(ROOT / "apps" / "amcee")]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """300 noise-like frames: 10 classes x 3 SNRs x 10 (a non-empty test split)."""
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.data.rml_pickle import save_rml_pickle
    from gnuradio.amcee.data.sigmf_recording import save_replay
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(10), 30).astype(np.int64)
    snrs = np.tile(np.repeat(np.array([0.0, 10.0, 20.0], np.float32), 10), 10)
    frames = rng.standard_normal((300, 2, 128)).astype(np.float32)
    ds = Dataset(frames, labels, snrs, RML22_CLASSES, {})
    out = tmp_path_factory.mktemp("replay")
    save_dataset(out / "small.npz", ds)
    save_rml_pickle(out / "small.pkl", ds)
    save_replay(out / "small_c", ds, layout="complex")
    save_replay(out / "small_r", ds, layout="rml")
    return ds, out


def _engine_reference(model_path, ds, rows):
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    return EarlyExitEngine(model_path).classify(ds.frames[rows])


def _assert_same_decisions(pred, ref, ds, rows):
    assert pred["index"].tolist() == rows.tolist()
    assert np.array_equal(pred["exit"], ref.exits)
    assert np.array_equal(pred["class"], ref.classes)
    np.testing.assert_allclose(pred["entropy"], ref.entropy, rtol=1e-5, atol=1e-6)
    assert np.array_equal(pred["label"], ds.labels[rows])
    assert len(np.unique(pred["exit"])) == 3  # every exit took some frames


@pytest.mark.parametrize("name,source,layout,split", [
    ("small.npz", "dataset", "complex", "test"),
    ("small.npz", "file", "rml", "test"),
    ("small.pkl", "dataset", "rml", "all"),
    ("small_c.sigmf-meta", "auto", None, "all"),   # file_source over the SigMF data file
    ("small_r.sigmf-data", "file", None, "test"),  # SigMF, split -> temporary raw file
    ("small_r.sigmf-meta", "dataset", None, "val"),
])
def test_replay_equals_engine_frame_for_frame(small_dataset, tiny_model_path, name, source, layout, split):
    from gnuradio.amcee.data.dataset import split_indices
    from gnuradio.amcee.tools.replay import replay

    ds, folder = small_dataset
    rows = split_indices(ds, split, seed=0)
    pred, report = replay(folder / name, model_path=tiny_model_path, split=split, source=source,
                          layout=layout)
    _assert_same_decisions(pred, _engine_reference(tiny_model_path, ds, rows), ds, rows)
    assert report["source"] == ("file" if source == "auto" else source)
    assert report["frames"] == len(rows)
    assert sum(r["frames"] for r in report["per_snr"]) == len(rows)
    accuracy = float((pred["class"] == pred["label"]).mean())
    assert report["all"]["accuracy"] == pytest.approx(accuracy)


def test_replay_cli_table_json_and_predictions(small_dataset, tiny_model_path, tmp_path):
    from gnuradio.amcee.data.dataset import split_indices

    ds, folder = small_dataset
    result = subprocess.run(AMCEE + ["replay", str(folder / "small.npz"), "--model", tiny_model_path,
                                     "--split", "test", "--predictions", str(tmp_path / "p.npz"),
                                     "--out", str(tmp_path / "r.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "acc%" in result.stdout and "frames/s" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["snr"] for r in report["per_snr"]] == [0.0, 10.0, 20.0]
    rows = split_indices(ds, "test", seed=0)
    with np.load(tmp_path / "p.npz") as pred:
        _assert_same_decisions(pred, _engine_reference(tiny_model_path, ds, rows), ds, rows)

    as_json = subprocess.run(AMCEE + ["replay", str(folder / "small_c.sigmf-meta"), "--model",
                                      tiny_model_path, "--max-frames", "50", "--json"],
                             capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    assert json.loads(as_json.stdout)["frames"] == 50

    # A dataset file with --max-frames: the file source replays the first rows.
    npz = subprocess.run(AMCEE + ["replay", str(folder / "small.npz"), "--model", tiny_model_path,
                                  "--max-frames", "40", "--json"], capture_output=True, text=True, timeout=120)
    assert npz.returncode == 0, npz.stderr[-2000:]
    assert json.loads(npz.stdout)["frames"] == 40


def test_replay_rejects_unknown_source(small_dataset, tiny_model_path):
    from gnuradio.amcee.tools.replay import replay

    _, folder = small_dataset
    with pytest.raises(ValueError, match="unknown source"):
        replay(folder / "small.npz", model_path=tiny_model_path, source="tape")


@pytest.mark.parametrize("source", ["file", "dataset"])
def test_replay_equals_amcee_eval_predictions(small_dataset, tiny_model_path, source):
    """The same frames, model and thresholds: amcee eval's predictions.npz and replay agree."""
    from gnuradio.amcee.tools.replay import replay
    from gnuradio.amcee.training.evaluate import evaluate_model

    _, folder = small_dataset
    _, ev = evaluate_model(tiny_model_path, str(folder / "small.npz"), split="test", timing=False,
                           sweep=(0.5,), progress=lambda *_: None)
    pred, _ = replay(folder / "small.npz", model_path=tiny_model_path, split="test", source=source)
    for key in ("index", "exit", "class", "label"):
        assert np.array_equal(pred[key], ev[key]), key
    np.testing.assert_allclose(pred["entropy"], ev["entropy"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pred["snr"], ev["snr"])


@pytest.mark.parametrize("source, estimate, snr_source", [
    ("dataset", False, "none"), ("file", False, "none"), ("dataset", True, "estimate"), ("file", True, "estimate")])
def test_replay_equals_amcee_eval_with_an_snr_table(small_dataset, tiny_model_path, tmp_path, source, estimate,
                                                    snr_source):
    """A model with an SNR table: without --estimate-snr both use the plain
    rule (the dataset source's snr tags, the true SNR, do not feed a table
    fitted on estimates); the classifier's own estimate is --snr estimate;
    frame for frame, no flag about batches."""
    from gnuradio.amcee.inference.model_file import load_model
    from gnuradio.amcee.network.export import rewrite_metadata
    from gnuradio.amcee.tools.replay import replay
    from gnuradio.amcee.training.evaluate import evaluate_model, frame_snr_values

    _, folder = small_dataset
    aware = str(tmp_path / "aware.pt")
    plain = load_model(tiny_model_path).meta
    # Estimates (of noise: -30 to 5 dB) below -8.5 dB leave at exit 0, from
    # -8.5 to 0 dB go to the final exit, above as plain.
    table = {"edges_db": [-8.5, 0.0], "thresholds": [plain["thresholds"], [0.0, 0.0], plain["thresholds"]],
             "give_up": [[0.0, None], [None, None], plain["give_up"]]}
    rewrite_metadata(tiny_model_path, {"snr_table": table}, out_path=aware)
    report, ev = evaluate_model(aware, str(folder / "small.npz"), split="test", timing=False,
                                sweep=(0.5,), progress=lambda *_: None, snr_source=snr_source)
    pred, rep = replay(folder / "small.npz", model_path=aware, split="test", source=source, estimate_snr=estimate)
    assert report["snr_table_used"] == (snr_source != "none") and rep["snr_table_used"]
    _, plain_ev = evaluate_model(tiny_model_path, str(folder / "small.npz"), split="test", timing=False,
                                 sweep=(0.5,), progress=lambda *_: None)
    if snr_source == "none":
        assert np.array_equal(ev["exit"], plain_ev["exit"]) and np.array_equal(ev["class"], plain_ev["class"])
    else:
        from gnuradio.amcee.data.files import load_dataset
        from gnuradio.amcee.frames import to_complex

        ds = load_dataset(str(folder / "small.npz"))
        est = frame_snr_values(to_complex(ds.frames[ev["index"]]), "estimate")
        assert (est < -8.5).any() and (ev["exit"][est < -8.5] == 0).all()
        middle = (est >= -8.5) & (est < 0)
        assert middle.any() and (ev["exit"][middle] == 2).all()
    for key in ("index", "exit", "class", "label"):
        assert np.array_equal(pred[key], ev[key]), key
