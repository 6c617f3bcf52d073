"""amcee eval: files written and numbers consistent with each other and with the engine."""
import json

import numpy as np
import pytest

from tiny_data import make_tiny_dataset, train_tiny_model


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from gnuradio.amcee.training.evaluate import evaluate_model, write_outputs

    base = tmp_path_factory.mktemp("eval")
    data = base / "tiny.npz"
    make_tiny_dataset(data, frames_per_key=60)
    model = train_tiny_model(data, base / "run", epochs=2)
    report, predictions = evaluate_model(model, str(data), repeats=1, max_batch=64,
                                         sweep=(0.0, 0.2, 0.5, 1.0), progress=False)
    out = base / "out"
    write_outputs(report, predictions, str(out))
    return str(data), model, out


def test_writes_report_figures_predictions(evaluated):
    _, _, out = evaluated
    for name in ("eval.json", "summary.md", "predictions.npz", "fig4a_accuracy.png", "fig4b_exit_shares.png",
                 "fig4c_time.png", "fig5_exit_accuracy.png", "fig6_thresholds.png", "confusion.png",
                 "frontier.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "| accuracy, all SNRs |" in (out / "summary.md").read_text()


def test_a_model_without_early_exits_is_evaluated_without_the_threshold_figures(evaluated, tmp_path):
    from gnuradio.amcee.inference.model_file import reference_model_path
    from gnuradio.amcee.training.evaluate import evaluate_model, write_outputs

    data, _, _ = evaluated
    report, predictions = evaluate_model(reference_model_path(), data, repeats=1, progress=False)
    write_outputs(report, predictions, str(tmp_path))
    assert report["sweep"] == [] and report["overall"]["exit_shares"] == [1.0]
    assert report["overall"]["accuracy_early_exit"] == report["overall"]["accuracy_backbone"]
    written = {p.name for p in tmp_path.iterdir()}
    assert {"summary.md", "fig4a_accuracy.png", "confusion.png"} <= written
    assert not written & {"fig5_exit_accuracy.png", "fig6_thresholds.png", "frontier.png"}
    assert "thresholds none (no early exit)" in (tmp_path / "summary.md").read_text()


def test_numbers_are_consistent(evaluated):
    data, _, out = evaluated
    r = json.load(open(out / "eval.json"))
    pred = np.load(out / "predictions.npz")
    k = len(r["exit_names"])
    assert sum(row["frames"] for row in r["per_snr"]) == r["frames"] == len(pred["index"])
    for row in r["per_snr"]:
        assert abs(sum(row["exit_shares"]) - 1) < 1e-9
        assert row["speedup"] > 0 and row["compute_ceiling"] > 0
        low, high = row["speedup_quartiles"]
        assert 0 < low <= row["speedup"] <= high  # the median of the same per-round ratios
        assert abs(row["speedup_over_ceiling"] - row["speedup"] / row["compute_ceiling"]) < 1e-9
        m = pred["snr"] == row["snr"]
        assert abs(row["accuracy_early_exit"] - (pred["class"][m] == pred["label"][m]).mean()) < 1e-12
        assert abs(row["accuracy_backbone"] - (pred["backbone_class"][m] == pred["label"][m]).mean()) < 1e-12
        shares = np.bincount(pred["exit"][m], minlength=k) / m.sum()
        assert np.allclose(shares, row["exit_shares"])
    o = r["overall"]
    assert abs(o["accuracy_early_exit"] - (pred["class"] == pred["label"]).mean()) < 1e-12
    assert abs(o["accuracy_loss_pp"] - 100 * (o["accuracy_backbone"] - o["accuracy_early_exit"])) < 1e-9
    assert r["simulation_agreement"] > 0.99
    # A sweep point at the model's own threshold reproduces the engine's shares.
    same = [p for p in r["sweep"] if p["thresholds"] == r["thresholds"]]
    if same:
        assert np.allclose(same[0]["exit_shares"], o["exit_shares"], atol=0.01)
    # The confusion matrices count every frame once.
    assert np.array(r["confusion"]["early_exit"]).sum() == r["frames"]
    assert np.array(r["confusion"]["backbone"]).trace() == round(o["accuracy_backbone"] * r["frames"])
    for t in ("0.05", "0.35", "0.6"):
        assert abs(sum(r["paper_thresholds"][t]["exit_shares"]) - 1) < 1e-9


def test_time_ceiling_is_the_mac_accounting_with_measured_seconds(evaluated):
    from gnuradio.amcee.training.time_costs import ExitTimeCosts

    # Segments 2, 3, 5 s and heads 1, 1, 0.5 s: leaving at exit 0 costs 3 s, at exit 1 7 s,
    # at the final exit 12.5 s; the backbone alone (no early head) 10.5 s.
    t = ExitTimeCosts(exit_seconds=[3.0, 7.0, 12.5], backbone_seconds=10.5,
                      segment_seconds=[2.0, 3.0, 5.0], head_seconds=[1.0, 1.0, 0.5])
    assert t.ceiling([1.0, 0.0, 0.0]) == pytest.approx(3.5)
    assert t.ceiling([0.5, 0.0, 0.5]) == pytest.approx(10.5 / 7.75)
    assert t.relative == pytest.approx([3 / 10.5, 7 / 10.5, 12.5 / 10.5])

    _, _, out = evaluated
    r = json.load(open(out / "eval.json"))
    costs = r["exit_time_costs"]
    assert costs["backbone_seconds"] > 0 and len(costs["exit_seconds"]) == len(r["exit_names"])
    assert costs["exit_seconds"] == sorted(costs["exit_seconds"])  # a later exit never costs less
    assert costs["exit_seconds"][-1] >= costs["backbone_seconds"]  # the final exit ran the early heads too
    for row in r["per_snr"] + [r["overall"]]:
        assert row["time_ceiling"] == pytest.approx(
            costs["backbone_seconds"] / sum(s * c for s, c in zip(row["exit_shares"], costs["exit_seconds"])))
        assert row["speedup_over_time_ceiling"] == pytest.approx(row["speedup"] / row["time_ceiling"])
    assert "| time ceiling |" in (out / "summary.md").read_text()
    assert r["timing"]["host"]["cores"] >= 1 and r["timing"]["host"]["torch_cpu_capability"]


def test_predictions_match_the_engine_frame_for_frame(evaluated):
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    data, model, out = evaluated
    pred = np.load(out / "predictions.npz")
    ds = load_dataset(data)
    result = EarlyExitEngine(model, max_batch=7).classify(ds.frames[pred["index"]])
    assert np.array_equal(result.exits, pred["exit"]) and np.array_equal(result.classes, pred["class"])


def test_bench_reports_every_section(evaluated):
    from gnuradio.amcee.tools.bench import run_bench

    data, model, _ = evaluated
    report = run_bench(model, data=data, frames=300, repeats=1, batch_sizes=(1, 64), loop_frames=20,
                       block_frames=300, latency_seconds=0.5)
    assert [b["batch"] for b in report["batch_sizes"]] == [1, 64]
    assert len(report["per_snr"]) == 3 and all(r["engine_fps"] > 0 for r in report["per_snr"])
    assert all(r["compute_ceiling"] > 0 and r["time_ceiling"] > 0 for r in report["per_snr"])
    assert report["host"]["cores"] >= 1
    assert report["per_frame_loop"]["loop_fps"] > 0 and report["peak_rss_mib"] > 0
    block = report["block_vs_engine"]
    snrs = [r["snr"] for r in report["per_snr"]]
    assert [(r["torch_threads"], r["snr"]) for r in block["throughput"]] == \
        [(t, s) for t in (1, 2) for s in (None, max(snrs), min(snrs))]
    assert all(r["block_early_exit_fps"] > 0 and r["engine_backbone_fps"] > 0 for r in block["throughput"])
    assert all(r["block_batch_early_exit_fps"] > 0 and r["block_batch_over_engine_early_exit"] > 0
               for r in block["throughput"])
    slow = block["slow_stream"]
    assert slow["frames_received"] == slow["frames"] > 0
    assert slow["wait_ms_p50"] <= slow["wait_ms_p99"] <= slow["wait_ms_max"]
    reference = report["reference"]  # the shipped paper backbone
    assert reference["reference_version"] and len(reference["per_snr"]) == 3
    assert 0 <= reference["reference_accuracy"] <= 1 and all(r["speedup"] > 0 for r in reference["per_snr"])
    with pytest.raises(ValueError, match="unknown bench section"):
        run_bench(model, sections=["nope"])


def test_bench_reference_section_scores_both_models_on_the_same_frames(evaluated):
    from gnuradio.amcee.tools.bench import run_bench

    data, model, _ = evaluated
    # The model against itself: the same answers, so the same accuracy in every row.
    section = run_bench(model, data=data, frames=300, repeats=1, sections=["reference"],
                        reference=model, block_frames=300)["reference"]
    assert section["accuracy"] == section["reference_accuracy"] and section["accuracy"] > 0.2
    assert section["accuracy_high_snr"] == section["reference_accuracy_high_snr"]
    assert [r["accuracy"] for r in section["per_snr"]] == [r["reference_accuracy"] for r in section["per_snr"]]
    assert all(r["model_fps"] > 0 and r["reference_fps"] > 0 for r in section["per_snr"])
    same = section["paired"]["all"]
    assert same["frames"] > 0 and (same["only_model"], same["only_reference"], same["difference_pp"]) == (0, 0, 0.0)
    snrs = [r["snr"] for r in section["per_snr"]]
    assert [r["snr"] for r in section["block"]] == [max(snrs), min(snrs)]
    assert all(r["model_fps"] > 0 and r["reference_fps"] > 0 for r in section["block"])
    assert run_bench(model, repeats=1, frames=64, sections=["reference"])["reference"] == {"skipped": "needs --data"}


def test_bench_reference_section_pairs_the_frames_the_two_models_disagree_on(evaluated, tmp_path):
    """Against another network: the frames only one gets right make up the
    accuracy difference exactly, over all SNRs, at >= 10 dB and per class,
    and their count gives the difference's standard error."""
    import math

    from gnuradio.amcee.inference.model_file import reference_model_path
    from gnuradio.amcee.tools.bench import run_bench

    data, model, _ = evaluated
    section = run_bench(model, data=data, frames=300, repeats=1, sections=["reference"],
                        reference=reference_model_path(), block_frames=100)["reference"]
    for key, accuracy in (("all", "accuracy"), ("high_snr", "accuracy_high_snr")):
        p = section["paired"][key]
        assert p["only_model"] + p["only_reference"] > 0  # a tiny model and the shipped backbone disagree
        assert p["difference_pp"] == pytest.approx(100 * (section[accuracy] - section["reference_" + accuracy]))
        assert p["standard_error_pp"] == pytest.approx(100 * math.sqrt(p["only_model"] + p["only_reference"])
                                                       / p["frames"])
        assert [sum(c[i] for c in p["per_class"].values()) for i in (0, 1)] == [p["only_model"], p["only_reference"]]
    assert 0 < section["paired"]["high_snr"]["frames"] < section["paired"]["all"]["frames"]


def test_bench_compares_the_plain_and_the_snr_aware_rule_in_one_run(evaluated, tmp_path):
    from gnuradio.amcee.inference.model_file import load_model
    from gnuradio.amcee.network.export import rewrite_metadata
    from gnuradio.amcee.tools.bench import run_bench

    data, model, _ = evaluated
    aware = str(tmp_path / "aware.pt")
    plain = load_model(model)
    table = {"edges_db": [0.0], "thresholds": [list(plain.meta["thresholds"])] * 2,
             "give_up": [[0.0, None], list(plain.meta["give_up"])]}  # below 0 dB: every frame at exit 0
    rewrite_metadata(model, {"snr_table": table}, out_path=aware)
    report = run_bench(aware, data=data, frames=600, repeats=1, sections=["per_snr"])
    assert report["snr_table"] is True
    for row in report["per_snr"]:
        assert row["snr_aware_fps"] > 0 and row["snr_aware_speedup"] > 0 and row["snr_aware_over_plain"] > 0
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["snr_aware_accuracy"] <= 1
        assert abs(sum(row["snr_aware_exit_shares"]) - 1) < 1e-9 and abs(sum(row["exit_shares"]) - 1) < 1e-9


def test_paired_ratio_spread_is_the_quartiles_of_per_round_ratios():
    from gnuradio.amcee.timing import paired_ratio_spread

    # Rounds 1..5: the backbone took 2, 2, 2, 2, 2 s, the engine 1, 2, 4, 1, 2 s.
    assert paired_ratio_spread([2.0] * 5, [1.0, 2.0, 4.0, 1.0, 2.0]) == [1.0, 2.0]


def test_a_speed_up_is_the_median_of_the_paired_rounds():
    from gnuradio.amcee.timing import paired_ratio_median

    # The machine slowed down 3x after round 2: the ratio of the medians (3 / 1.5 = 2) mixes
    # rounds, every round itself says 1.5x.
    assert paired_ratio_median([1.5, 1.5, 4.5, 4.5, 4.5], [1.0, 1.0, 3.0, 3.0, 3.0]) == 1.5


def test_per_snr_timing_gives_each_set_its_settings_and_snr_values():
    """The model's own settings are timed with the frames' SNR values (the
    SNR table), "plain" without them, a threshold set with its thresholds."""
    from gnuradio.amcee.inference.engine import Classification
    from gnuradio.amcee.training.evaluate import time_per_snr

    calls = []

    class Recorder:
        def classify(self, frames, thresholds=None, snr_db=None):
            calls.append(("classify", len(frames), thresholds, None if snr_db is None else list(snr_db)))
            n = len(frames)
            return Classification(probs=np.full((n, 2), 0.5, dtype=np.float32), exits=np.zeros(n, dtype=np.int64),
                                  entropy=np.zeros(n, dtype=np.float32), valid=np.ones(n, dtype=bool))

        def backbone_probs(self, frames):
            calls.append(("backbone", len(frames), None, None))

    frames, snrs = np.zeros((5, 2, 8), dtype=np.float32), np.array([0.0, 0.0, 10.0, 10.0, 10.0])
    estimated = np.array([1.0, -1.0, 9.0, 11.0, 10.0])
    time_per_snr(Recorder(), frames, snrs, {"model": None, "plain": "plain", "T": [0.3]}, repeats=2,
                 frame_snr=estimated)
    first = calls[:12]  # 0 dB: warm-up + 2 repeats, each backbone, model, plain, T (the order changes every round)
    one_round = [("backbone", 2, None, None), ("classify", 2, None, [1.0, -1.0]), ("classify", 2, None, None),
                 ("classify", 2, [0.3], None)]
    orders = [one_round, one_round[::-1], one_round[1:] + one_round[:1]]  # timing.time_interleaved_samples
    assert first == [call for order in orders for call in order]
