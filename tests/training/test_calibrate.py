"""amcee calibrate: the accuracy-loss budget holds on validation; temperatures keep argmax."""
import json
import math
import subprocess
import sys
import os

import numpy as np
import pytest

from conftest import ROOT
from tiny_data import make_tiny_dataset, train_tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cal")
    data = base / "tiny.npz"
    make_tiny_dataset(data, frames_per_key=60)
    return str(data), train_tiny_model(data, base / "run", epochs=3)


def _val_accuracy_loss_pp(model_path, data):
    """Loss of the engine's early exit against the final exit on the validation
    split, at the written thresholds."""
    from gnuradio.amcee.data.dataset import split_indices
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    ds = load_dataset(data)
    idx = split_indices(ds, "val")
    engine = EarlyExitEngine(model_path)
    ee = engine.classify(ds.frames[idx]).classes
    final = engine.all_exit_probs(ds.frames[idx])[0][-1].argmax(1)
    labels = ds.labels[idx]
    return 100 * ((final == labels).mean() - (ee == labels).mean()), engine


@pytest.mark.parametrize("max_loss", [0.0, 0.5, 3.0, 20.0])
def test_never_exceeds_the_accuracy_budget(trained, tmp_path, max_loss):
    from gnuradio.amcee.training.calibrate import calibrate

    data, model = trained
    out = tmp_path / "cal.pt"
    record = calibrate(model, data, str(out), max_loss_pp=max_loss)
    assert record["chosen"]["accuracy_loss_pp"] <= max_loss + 1e-9
    loss, engine = _val_accuracy_loss_pp(str(out), data)  # what the written model really does
    assert loss <= max_loss + 1e-9
    assert engine.thresholds == tuple(record["chosen"]["thresholds"])
    assert engine.meta["calibration"]["constraint"] == {"max_loss_pp": max_loss}
    # Every other evaluated point that saves more compute breaks the budget.
    for p in record["frontier"]:
        if p["compute_fraction"] < record["chosen"]["compute_fraction"] - 1e-12:
            assert 100 * (record["final_exit_accuracy"] - p["accuracy"]) > max_loss


def test_give_up_search_keeps_the_budget(trained, tmp_path):
    from gnuradio.amcee.training.calibrate import calibrate

    data, model = trained
    out = tmp_path / "g.pt"
    record = calibrate(model, data, str(out), max_loss_pp=1.0, give_up=True)
    assert record["give_up_searched"] and len(record["chosen"]["give_up"]) == 2
    loss, engine = _val_accuracy_loss_pp(str(out), data)  # the engine applies thresholds and give-up
    assert loss <= 1.0 + 1e-9
    assert [None if g == float("inf") else g for g in engine.give_up] == record["chosen"]["give_up"]
    # Searching give-up values too can only save at least as much compute.
    plain = calibrate(model, data, str(tmp_path / "p.pt"), max_loss_pp=1.0, points=20)
    assert record["chosen"]["compute_fraction"] <= plain["chosen"]["compute_fraction"] + 1e-12


def test_target_compute(trained, tmp_path):
    from gnuradio.amcee.training.calibrate import calibrate

    data, model = trained
    record = calibrate(model, data, str(tmp_path / "c.pt"), target_compute=0.6)
    assert record["chosen"]["compute_fraction"] <= 0.6
    with pytest.raises(ValueError, match="target_compute"):
        calibrate(model, data, str(tmp_path / "d.pt"), target_compute=1.5)


def test_temperature_keeps_argmax_and_lowers_nll(trained, tmp_path):
    from gnuradio.amcee.data.dataset import split_indices
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.training.calibrate import calibrate, nll

    data, model = trained
    out = tmp_path / "t.pt"
    record = calibrate(model, data, str(out), max_loss_pp=0.5, temperature=True)
    temps = record["temperatures"]
    assert len(temps) == 3 and all(t > 0 for t in temps)
    ds = load_dataset(data)
    idx = split_indices(ds, "val")
    before, _ = EarlyExitEngine(model).all_exit_probs(ds.frames[idx])
    after, _ = EarlyExitEngine(str(out)).all_exit_probs(ds.frames[idx])
    assert np.array_equal(before.argmax(2), after.argmax(2))
    labels = ds.labels[idx]
    for k in range(3):  # the scaled heads are at least as well calibrated on validation
        lb = np.log(np.clip(before[k].astype(np.float64), 1e-38, None))
        la = np.log(np.clip(after[k].astype(np.float64), 1e-38, None))
        assert nll(la, labels, 1.0) <= nll(lb, labels, 1.0) + 1e-4


def test_cli_prints_the_chosen_point(trained, tmp_path):
    data, model = trained
    out = tmp_path / "cli.pt"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "apps", "amcee"), "calibrate", model,
                           "--data", data, "--out", str(out), "--max-loss", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    point = json.loads(proc.stdout)
    assert point["accuracy_loss_pp"] <= 1 and len(point["thresholds"]) == 2 and out.is_file()


def _random_exits(n=3000, seed=0):
    """Probabilities of 2 exits for frames at 3 SNRs: the early exit is sure
    mostly at high SNR, and right when sure."""
    rng = np.random.default_rng(seed)
    snrs = rng.choice([-10.0, 0.0, 20.0], n)
    labels = rng.integers(0, 4, n)
    sharp = np.where(snrs > 0, 6.0, 0.5)[:, None]
    probs = []
    for noise in (1.5, 0.5):
        logits = rng.normal(0, noise, (n, 4)) + sharp * np.eye(4)[labels]
        p = np.exp(logits - logits.max(1, keepdims=True))
        probs.append(p / p.sum(1, keepdims=True))
    return np.stack(probs).astype(np.float32), labels, snrs


def test_favoured_snr_and_per_snr_floor():
    from gnuradio.amcee.training.calibrate import Evaluator, search

    probs, labels, snrs = _random_exits()
    costs, backbone = [0.3, 1.05], 1.0
    plain, _ = search(Evaluator(probs, labels, costs, backbone, snrs=snrs), max_loss_pp=2.0, give_up=True)
    ev = Evaluator(probs, labels, costs, backbone, snrs=snrs, favour_snr=20)
    favoured, points = search(ev, max_loss_pp=2.0, give_up=True, min_snr_ceiling=1.0)
    assert favoured["accuracy_loss_pp"] <= 2.0 + 1e-9 and favoured["min_snr_ceiling"] >= 1.0
    # Favouring 20 dB saves at least as much there as the all-SNR choice (when that one is feasible).
    ev.give_up = plain["give_up"]
    at_20 = ev.point(plain["thresholds"])
    if at_20["min_snr_ceiling"] >= 1.0:
        assert favoured["objective_compute"] <= at_20["objective_compute"] + 1e-12
    # Every point's per-SNR ceiling, recomputed by hand on 40 of them; the
    # chosen point saves the most at 20 dB among those meeting both bounds.
    for p in points[::max(1, len(points) // 40)]:
        ceilings = []
        for s in np.unique(snrs):
            m = snrs == s
            ev_s = Evaluator(probs[:, m], labels[m], costs, backbone, give_up=p["give_up"])
            ceilings.append(ev_s.point(p["thresholds"])["compute_ceiling"])
        assert p["min_snr_ceiling"] == pytest.approx(min(ceilings))
        if p["accuracy_loss_pp"] <= 2.0 + 1e-9 and min(ceilings) >= 1.0:
            assert p["objective_compute"] >= favoured["objective_compute"] - 1e-12
    with pytest.raises(ValueError, match="no frame at SNR >= 30"):
        Evaluator(probs, labels, costs, backbone, snrs=snrs, favour_snr=30)
    with pytest.raises(ValueError, match="min_snr_ceiling must be > 0"):
        search(ev, max_loss_pp=2.0, min_snr_ceiling=0)
    with pytest.raises(ValueError, match="per-SNR ceiling out of reach"):
        search(ev, max_loss_pp=2.0, min_snr_ceiling=50.0)


def test_calibrate_records_favour_and_floor(trained, tmp_path):
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.training.calibrate import calibrate

    data, model = trained
    top = float(load_dataset(data).snrs.max())
    record = calibrate(model, data, str(tmp_path / "f.pt"), max_loss_pp=3.0, favour_snr=top, min_snr_ceiling=0.5)
    assert record["favour_snr"] == top and record["min_snr_ceiling"] == 0.5
    assert record["chosen"]["min_snr_ceiling"] >= 0.5 and record["chosen"]["accuracy_loss_pp"] <= 3.0
    loss, _ = _val_accuracy_loss_pp(str(tmp_path / "f.pt"), data)
    assert loss <= 3.0 + 1e-9


def test_snr_aware_calibration_writes_a_table_that_loads_and_is_used(trained, tmp_path, capsys):
    """--snr-aware fits the SNR table on the estimator's SNR of the validation
    frames within the budget (or the plain rule's accuracy), no bin slower
    than the plain rule by the measured exit times; the engine then holds
    each frame to its bin; the thresholds stay; a plain calibration drops it."""
    from gnuradio.amcee.cli import main
    from gnuradio.amcee.data.dataset import split_indices
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.inference.snr_table import estimate_snr_db
    from gnuradio.amcee.training.calibrate import calibrate
    from gnuradio.amcee.training.exit_simulation import entropy10, simulate_exits_by_snr

    data, model = trained
    out = tmp_path / "snr.pt"
    assert main(["calibrate", model, "--data", data, "--out", str(out), "--snr-aware", "--max-loss", "3",
                 "--snr-edges", "-10", "0", "10", "--min-speedup", "0.5", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    before, engine = EarlyExitEngine(model), EarlyExitEngine(str(out))
    assert engine.uses_snr_table and engine.snr_table.edges_db == (-10.0, 0.0, 10.0)
    assert engine.thresholds == before.thresholds and engine.give_up == before.give_up
    record = engine.meta["calibration"]["snr_table"]
    assert record["accuracy"] >= min(record["final_exit_accuracy"] - 0.03, record["plain_accuracy"]) - 1e-9
    assert record["time_fraction"] <= record["plain_time_fraction"] + 1e-9 and record["min_speedup"] == 0.5
    assert printed["accuracy"] == pytest.approx(record["accuracy"], abs=1e-4) and printed["model"] == str(out)
    # What the written model does with the estimator's SNR is what the record says.
    ds = load_dataset(data)
    idx = split_indices(ds, "val")
    frames, labels = ds.frames[idx], ds.labels[idx]
    snr = estimate_snr_db(frames)
    result = engine.classify(frames, snr_db=snr)
    assert (result.classes == labels).mean() == pytest.approx(record["accuracy"])
    probs, _ = engine.all_exit_probs(frames)
    ent = np.stack([entropy10(p) for p in probs])
    np.testing.assert_array_equal(result.exits, simulate_exits_by_snr(
        ent, probs.argmax(2), engine.snr_table, snr, engine.thresholds, engine.give_up))
    # A plain calibration chooses other thresholds: the table fitted to the old ones goes.
    calibrate(str(out), data, str(tmp_path / "plain.pt"), max_loss_pp=1.0, points=10)
    assert EarlyExitEngine(str(tmp_path / "plain.pt")).snr_table is None
    # --snr-aware fits the table only.
    assert main(["calibrate", model, "--data", data, "--out", str(tmp_path / "x.pt"), "--snr-aware",
                 "--temperature"]) == 2
    assert "--temperature belong to the plain calibration" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def _exits_wrong_when_sure_at_high_snr(n=3000, seed=1):
    """Two exits; at 20 dB the early exit is surest of all, and wrong, on a
    quarter of the frames of class 3 (as V0 takes WBFM for another class),
    the final exit right: a budget over all SNRs can be spent there."""
    probs, labels, snrs = _random_exits(n, seed)
    fooled = (snrs == 20.0) & (labels == 3) & (np.random.default_rng(seed).random(n) < 0.25)
    probs[0, fooled] = np.array([0.9997, 0.0001, 0.0001, 0.0001], dtype=np.float32)
    probs[1, fooled] = np.array([0.01, 0.01, 0.01, 0.97], dtype=np.float32)
    return probs, labels, snrs, fooled


def test_high_snr_budget():
    from gnuradio.amcee.training.calibrate import Evaluator, search, search_class_thresholds

    probs, labels, snrs, fooled = _exits_wrong_when_sure_at_high_snr()
    costs, backbone = [0.3, 1.05], 1.0
    ev = Evaluator(probs, labels, costs, backbone, snrs=snrs)
    overall, _ = search(ev, max_loss_pp=4.0)
    assert overall["high_snr_accuracy_loss_pp"] > 1.0  # the plain budget spends itself at 20 dB
    bounded, points = search(ev, max_loss_pp=4.0, max_loss_high_snr_pp=0.0)
    assert bounded["accuracy_loss_pp"] <= 4.0 + 1e-9 and bounded["high_snr_accuracy_loss_pp"] <= 1e-9
    assert bounded["compute_fraction"] >= overall["compute_fraction"]
    # The loss at >= 10 dB by hand, on 40 of the points.
    high = snrs >= 10
    final_right = probs[1].argmax(1) == labels
    for p in points[::max(1, len(points) // 40)]:
        exits = np.where(-(probs[0] * np.log10(probs[0])).sum(1) <= p["thresholds"][0], 0, 1)
        right = np.where(exits == 0, probs[0].argmax(1) == labels, final_right)
        assert p["high_snr_accuracy_loss_pp"] == pytest.approx(100 * (final_right[high].mean()
                                                                       - right[high].mean()), abs=1e-9)
    classes = search_class_thresholds(ev, bounded, 4.0, max_loss_high_snr_pp=0.0)
    assert classes["accuracy_loss_pp"] <= 4.0 + 1e-9 and classes["high_snr_accuracy_loss_pp"] <= 1e-9
    with pytest.raises(ValueError, match="max_loss_high_snr_pp must be >= 0"):
        search(ev, target_compute=0.5, max_loss_high_snr_pp=0.0)
    with pytest.raises(ValueError, match="needs frames with SNRs >= 10"):
        search(Evaluator(probs, labels, costs, backbone), max_loss_pp=4.0, max_loss_high_snr_pp=0.0)


def test_cli_high_snr_budget(trained, tmp_path):
    data, model = trained
    out = tmp_path / "high.pt"
    cmd = [sys.executable, os.path.join(ROOT, "apps", "amcee"), "calibrate", model, "--data", data,
           "--out", str(out), "--max-loss", "5", "--max-loss-high-snr", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    point = json.loads(proc.stdout)
    assert point["constraint"] == {"max_loss_pp": 5.0, "max_loss_high_snr_pp": 0.0}
    assert point["accuracy_loss_pp"] <= 5 and point["high_snr_accuracy_loss_pp"] <= 1e-9
    proc = subprocess.run(cmd[:-4] + ["--overwrite", "--snr-aware", "--max-loss-high-snr", "0"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "--max-loss-high-snr belong to the plain calibration" in proc.stderr


def test_snr_table_turns_off_the_heads_that_do_not_pay():
    """With the time of every exit path (an exit that is off costs no head),
    the table may turn an early exit off for a bin: at -10 dB, where the
    early exit is unsure, no setting that runs its head reaches the
    backbone's speed, and the table turns it off there (JSON null)."""
    from gnuradio.amcee.inference.model_file import EXIT_OFF
    from gnuradio.amcee.inference.snr_table import validate_snr_table
    from gnuradio.amcee.training.calibrate import Evaluator, fit_snr_table, setting_costs
    from gnuradio.amcee.training.exit_simulation import pick_by_exit, simulate_exits_by_snr
    from gnuradio.amcee.training.time_costs import exit_paths

    assert exit_paths(3) == [(0, ()), (1, (True,)), (1, (False,)), (2, (True, True)), (2, (True, False)),
                             (2, (False, True)), (2, (False, False))]
    probs, labels, snrs = _random_exits()
    paths = {(0, ()): 0.4, (1, (True,)): 1.25, (1, (False,)): 1.01}
    assert setting_costs(paths, [0.3], [math.inf], 2).tolist() == [0.4, 1.25]
    assert setting_costs(paths, [EXIT_OFF], [math.inf], 2).tolist() == [0.4, 1.01]
    assert setting_costs(paths, [EXIT_OFF], [0.9], 2).tolist() == [0.4, 1.25]  # a give-up value runs the head
    ev = Evaluator(probs, labels, [0.4, 1.25], 1.0)
    table, summary = fit_snr_table(ev, snrs, paths, (0.05,), (math.inf,), (-5.0, 10.0), max_loss_pp=0.5,
                                   min_speedup=0.99)
    table = validate_snr_table(table, 2, 4)
    assert table.thresholds[0] == (EXIT_OFF,)  # -10 dB: the early head costs more than it saves
    exits = simulate_exits_by_snr(ev.entropies, ev.predictions, table, snrs, (0.05,), (math.inf,))
    assert summary["accuracy"] == pytest.approx(pick_by_exit(ev.correct, exits).mean())
    times = np.empty(len(exits))
    for b in range(3):
        m = table.bins(snrs) == b
        times[m] = setting_costs(paths, table.thresholds[b], table.give_up[b], 2)[exits[m]]
        assert times[m].mean() <= 1 / 0.99 + 1e-9  # every bin at least 0.99x the backbone
    assert summary["time_fraction"] == pytest.approx(times.mean())


def test_snr_table_does_not_buy_speed_with_many_changed_answers(monkeypatch):
    """A bin's setting is scored by its frames right minus one standard error
    of the difference to the plain rule (SNR_FIT_STANDARD_ERRORS): a faster
    setting that is as accurate as the plain rule only by changing every
    answer of the bin is not taken; counted bare, it is."""
    from gnuradio.amcee.inference.model_file import EXIT_OFF
    from gnuradio.amcee.training import calibrate

    n = 200
    probs = np.zeros((2, n, 2), dtype=np.float32)
    probs[0] = (0.2, 0.8)    # the early exit says class 1, unsure (entropy 0.217 > the plain 0.05)
    probs[1] = (0.99, 0.01)  # the final exit says class 0
    labels = np.repeat([0, 1], n // 2)  # each exit is right on half the frames, on different halves
    snrs = np.zeros(n)
    paths = {(0, ()): 0.4, (1, (True,)): 1.25, (1, (False,)): 1.01}

    def fit(standard_errors):
        monkeypatch.setattr(calibrate, "SNR_FIT_STANDARD_ERRORS", standard_errors)
        ev = calibrate.Evaluator(probs, labels, [0.4, 1.25], 1.0)
        return calibrate.fit_snr_table(ev, snrs, paths, (0.05,), (math.inf,), (10.0,), max_loss_pp=0.0,
                                       min_speedup=0.5)

    table, summary = fit(1.0)  # the plain rule's answers, its head off: faster, no answer changed
    assert table["thresholds"][0] == [None] and table["give_up"][0] == [None]
    assert summary["accuracy"] == 0.5 and summary["time_fraction"] == pytest.approx(1.01)
    table, summary = fit(0.0)  # every frame out at the early exit: as many right, 200 answers changed
    assert summary["accuracy"] == 0.5 and summary["time_fraction"] == pytest.approx(0.4)
    assert EXIT_OFF not in calibrate.validate_snr_table(table, 2, 2).thresholds[0]
