"""Class thresholds: one entropy threshold per early exit and predicted class
(model.leaves, export.validate_thresholds, calibrate.search_class_thresholds)."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import export_tiny_model, make_frames
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import load_model, validate_thresholds
from gnuradio.amcee.network.export import rewrite_metadata
from gnuradio.amcee.training.exit_simulation import entropy10, simulate_exits

C = 10  # the tiny model's classes (RML22)


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    return EarlyExitEngine(tiny_model_path, max_batch=256)


def _table(seed, low=0.0, high=0.6):
    return np.random.default_rng(seed).uniform(low, high, (2, C)).round(3)


def test_the_predicted_class_picks_the_threshold():
    from gnuradio.amcee.inference.exit_rule import leaves

    p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    e = torch.tensor([0.3, 0.3, 0.3])
    t = torch.tensor([0.5, 0.1])  # class 0 lenient, class 1 strict
    assert leaves(p, e, t, torch.tensor(math.inf)).tolist() == [True, False, True]
    assert leaves(p, e, torch.tensor(0.2), torch.tensor(math.inf)).tolist() == [False] * 3
    assert leaves(p, e, t, torch.tensor(0.25)).tolist() == [True] * 3  # give-up still applies


def test_engine_exits_equal_the_simulation(engine):
    frames = make_frames(300, seed=31)
    probs, _ = engine.all_exit_probs(frames)
    entropies = np.stack([entropy10(p) for p in probs])
    for thresholds in (_table(1), [0.3, list(_table(2)[1])]):
        got = engine.classify(frames, thresholds=[list(t) if np.ndim(t) else t for t in thresholds])
        want = simulate_exits(entropies, thresholds, engine.give_up, probs.argmax(2))
        np.testing.assert_array_equal(got.exits, want)
        assert 0 < (got.exits == 0).sum() and 0 < (got.exits == 2).sum()
        np.testing.assert_array_equal(got.classes, probs[want, np.arange(len(frames))].argmax(1))


def test_a_table_of_equal_rows_equals_one_threshold(engine):
    frames = make_frames(300, seed=32)
    one = engine.classify(frames, thresholds=[0.3, 0.2])
    table = engine.classify(frames, thresholds=[[0.3] * C, [0.2] * C])
    np.testing.assert_array_equal(one.exits, table.exits)
    np.testing.assert_allclose(one.probs, table.probs, atol=1e-6)


def test_scripted_and_eager_forward_agree_with_class_thresholds(tmp_path):
    model = export_tiny_model(tmp_path / "m.pt", exits=("V0", "V1"), exit_head="conv")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(200, 2, 128)
    x = x / x.abs().sum(dim=(1, 2), keepdim=True)
    t, g = torch.tensor(_table(3, 0.2, 0.8), dtype=torch.float32), torch.tensor([math.inf] * 2)
    with torch.no_grad():
        eager, scripted = model(x, t, g), loaded.module(x, t, g)
    torch.testing.assert_close(eager[1], scripted[1])
    torch.testing.assert_close(eager[0], scripted[0], atol=1e-5, rtol=1e-4)


def test_without_classes_a_list_is_not_a_threshold():
    with pytest.raises(ValueError, match="a number or a list of 2 numbers, got"):
        validate_thresholds([[0.1, 0.2], 0.3], 3)


def test_model_file_default_round_trip_and_block_callback(tmp_path, tiny_model_path):
    from gnuradio.amcee.blocks.classifier import classifier

    table = [list(_table(4)[0]), 0.25]
    out = tmp_path / "class.pt"
    meta = rewrite_metadata(tiny_model_path, {"thresholds": table}, out_path=str(out))
    assert meta["thresholds"] == table
    assert json.loads(json.dumps(meta))["thresholds"] == table
    loaded = load_model(out)
    assert loaded.default_thresholds == (tuple(table[0]), 0.25)
    block = classifier(model_path=str(out))
    assert block.get_threshold() == loaded.default_thresholds
    block.set_threshold(0.1)  # one number: every exit and class
    assert block.get_threshold() == (0.1, 0.1)
    block.set_threshold(None)  # back to the file's class thresholds
    assert block.get_threshold() == loaded.default_thresholds
    with pytest.raises(ValueError, match="10 classes"):
        rewrite_metadata(tiny_model_path, {"thresholds": [[0.1] * 3, 0.2]}, out_path=str(tmp_path / "x.pt"))


def _pair_that_no_exit_separates(n=4000, seed=0):
    """4 classes, 2 exits.  Classes 0/1 are a coin flip at both exits (the same
    guess, E about 0.30); half of the class 2/3 frames are as unsure at the
    early exit (E about 0.30) but right at the final one; the rest are sure."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    early, final = np.full((n, 4), 1e-4), np.full((n, 4), 1e-4)
    pair = labels < 2
    guess = rng.integers(0, 2, n)
    d = rng.uniform(0.0, 0.02, n)
    for rows, a, b in ((pair, guess, 1 - guess), (~pair, 2 + guess, 3 - guess)):
        early[rows, a[rows]] = 0.5 + d[rows]
        early[rows, b[rows]] = 0.5 - d[rows]
    final[pair] = early[pair]
    final[~pair, labels[~pair]] = 1.0
    sure = ~pair & (rng.random(n) < 0.5)
    early[sure] = 0.01
    early[sure, labels[sure]] = 0.97
    norm = lambda p: (p / p.sum(1, keepdims=True)).astype(np.float32)  # noqa: E731
    return np.stack([norm(early), norm(final)]), labels


def test_class_thresholds_let_a_pair_no_exit_separates_leave_early():
    from gnuradio.amcee.training.calibrate import Evaluator, search, search_class_thresholds

    probs, labels = _pair_that_no_exit_separates()
    ev = Evaluator(probs, labels, [0.1, 1.05], 1.0)
    per_exit, _ = search(ev, max_loss_pp=0.5)
    chosen = search_class_thresholds(ev, per_exit, max_loss_pp=0.5)
    assert chosen["accuracy_loss_pp"] <= 0.5 + 1e-9
    exits = simulate_exits(ev.entropies, chosen["thresholds"], None, ev.predictions)
    unsure = (labels >= 2) & (ev.entropies[0] > 0.2)
    assert (exits[labels < 2] == 0).all()  # the pair leaves at the early exit ...
    assert (exits[unsure] == 1).mean() > 0.9  # ... the unsure 2/3 frames go on (but what the budget allows)
    assert chosen["compute_fraction"] < per_exit["compute_fraction"] - 0.2
    # The point is what the simulation of the chosen table gives.
    ev.give_up = None
    assert ev.point(chosen["thresholds"])["compute_fraction"] == pytest.approx(chosen["compute_fraction"])


def test_class_thresholds_never_exceed_the_budget_and_keep_a_better_per_exit_point():
    from gnuradio.amcee.training.calibrate import Evaluator, search, search_class_thresholds

    from test_calibrate import _random_exits

    probs, labels, snrs = _random_exits()
    for budget in (1.0, 3.0):
        ev = Evaluator(probs, labels, [0.3, 1.05], 1.0, snrs=snrs, favour_snr=20)
        per_exit, _ = search(ev, max_loss_pp=budget, min_snr_ceiling=1.0)
        chosen = search_class_thresholds(ev, per_exit, budget, min_snr_ceiling=1.0)
        assert chosen["accuracy_loss_pp"] <= budget + 1e-9 and chosen["min_snr_ceiling"] >= 1.0
        assert chosen["objective_compute"] <= per_exit["objective_compute"] + 1e-12


def test_calibrate_writes_class_thresholds(tmp_path):
    from gnuradio.amcee.training.calibrate import calibrate
    from tiny_data import make_tiny_dataset, train_tiny_model

    data = tmp_path / "tiny.npz"
    make_tiny_dataset(data, frames_per_key=60)
    model = train_tiny_model(data, tmp_path / "run", epochs=2)
    out = tmp_path / "cal.pt"
    record = calibrate(model, str(data), str(out), max_loss_pp=2.0, points=10, class_thresholds=True)
    assert record["class_thresholds_searched"] and record["per_exit_choice"] is not None
    assert record["chosen"]["accuracy_loss_pp"] <= 2.0 + 1e-9
    assert record["chosen"]["objective_compute"] <= record["per_exit_choice"]["objective_compute"] + 1e-12
    engine = EarlyExitEngine(str(out))
    from gnuradio.amcee.inference.model_file import thresholds_to_json
    assert thresholds_to_json(engine.thresholds) == record["chosen"]["thresholds"]
    with pytest.raises(ValueError, match="accuracy budget"):
        calibrate(model, str(data), str(tmp_path / "x.pt"), target_compute=0.5, class_thresholds=True)


def _low_snr_frames_need_part_of_the_budget(n=2000, seed=0):
    """2 exits, 4 classes, frames at 20 and -10 dB.  At 20 dB the early exit
    predicts classes 0-2 (90 % right), at -10 dB always class 3 (25 % right,
    the final exit 30 %).  With costs 0.3 / 1.05 the -10 dB ceiling stays
    below 1 until about 7 % of those frames leave early."""
    rng = np.random.default_rng(seed)
    snrs = np.repeat([20.0, -10.0], n)
    labels = np.concatenate([rng.integers(0, 3, n), rng.integers(0, 4, n)])
    guess = labels.copy()
    wrong = rng.random(n) < 0.1
    guess[:n][wrong] = (labels[:n][wrong] + 1) % 3
    guess[n:] = 3
    top = rng.uniform(0.4, 0.99, 2 * n)
    early = np.repeat(((1 - top) / 3)[:, None], 4, axis=1)
    early[np.arange(2 * n), guess] = top
    final_guess = labels.copy()
    low_wrong = rng.random(n) < 0.7
    final_guess[n:][low_wrong] = (labels[n:][low_wrong] + 1) % 4
    final = np.full((2 * n, 4), 0.01)
    final[np.arange(2 * n), final_guess] = 0.97
    return np.stack([early, final / final.sum(1, keepdims=True)]).astype(np.float32), labels, snrs


def test_class_threshold_search_spends_budget_on_a_per_snr_bound_first():
    """A start below the per-SNR ceiling bound used to spend the whole budget
    on the favoured SNR and end under the bound (its table was then thrown
    away); the search now lifts the lowest ceiling first."""
    from gnuradio.amcee.training.calibrate import Evaluator, _grow_class_thresholds, search, search_class_thresholds

    probs, labels, snrs = _low_snr_frames_need_part_of_the_budget()
    ev = Evaluator(probs, labels, [0.3, 1.05], 1.0, snrs=snrs, favour_snr=20)
    entropies = {(0, c): np.unique(ev.entropies[0][ev.predictions[0] == c].astype(np.float64)) for c in range(4)}
    start = ev.point([np.zeros(4)])
    assert start["min_snr_ceiling"] < 1.0
    grown = _grow_class_thresholds(ev, np.zeros((1, 4)), entropies, 1.5, min_snr_ceiling=1.0)
    assert grown["min_snr_ceiling"] >= 1.0 and grown["accuracy_loss_pp"] <= 1.5 + 1e-9
    unbounded = _grow_class_thresholds(ev, np.zeros((1, 4)), entropies, 1.5)
    assert unbounded["min_snr_ceiling"] < 1.0  # what the search did before
    per_exit, _ = search(ev, max_loss_pp=1.5, min_snr_ceiling=1.0)
    chosen = search_class_thresholds(ev, per_exit, 1.5, min_snr_ceiling=1.0)
    assert chosen["min_snr_ceiling"] >= 1.0 and chosen["accuracy_loss_pp"] <= 1.5 + 1e-9
    assert chosen["objective_compute"] < per_exit["objective_compute"] - 0.03
