"""The per-frame exit rule and the SNR-conditioned exit table
(inference/snr_table.py, EarlyExitNet.forward's per-row thresholds): a
frame's exit and class depend only on the frame, its SNR value and the
settings."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import export_tiny_model, make_frames
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import FORMAT_VERSION, METADATA_FILE, ModelFileError, load_model
from gnuradio.amcee.inference.snr_table import SnrTableError, validate_snr_table
from gnuradio.amcee.network.export import rewrite_metadata
from gnuradio.amcee.training.exit_simulation import entropy10, simulate_exits_by_snr

C = 10


def table_json(plain_thresholds):
    """Bins (-inf, -5), [-5, 5), [5, inf): the floor (every frame out of
    exit 0), every frame to the final exit, class thresholds at exit 0."""
    return {"edges_db": [-5.0, 5.0],
            "thresholds": [list(plain_thresholds), [0.0, 0.0], [[0.6] * 5 + [0.05] * 5, 0.3]],
            "give_up": [[0.0, None], [None, None], [None, None]]}


@pytest.fixture(scope="module")
def table_model(tiny_model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("snr") / "table.pt"
    plain = load_model(tiny_model_path).default_thresholds
    rewrite_metadata(tiny_model_path, {"snr_table": table_json(plain)}, out_path=str(path))
    return str(path)


@pytest.fixture(scope="module")
def engine(table_model):
    return EarlyExitEngine(table_model, max_batch=64)


def same(a, b):
    """Bit for bit: exits, classes, probabilities and entropies."""
    np.testing.assert_array_equal(a.exits, b.exits)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_array_equal(a.entropy, b.entropy)


def test_the_table_loads_and_sends_each_frame_by_its_snr(engine):
    assert engine.uses_snr_table and engine.snr_table.num_bins == 3 and engine.snr_table.floor_db == -5.0
    frames = make_frames(150, seed=40)
    snr = np.repeat([-20.0, 0.0, 20.0], 50)
    result = engine.classify(frames, snr_db=snr)
    assert (result.exits[:50] == 0).all()   # below the floor: the first exit
    assert (result.exits[50:100] == 2).all()  # threshold 0, no give-up: the final exit
    probs, _ = engine.all_exit_probs(frames)
    e0 = entropy10(probs[0][100:])
    cut = np.where(probs[0][100:].argmax(1) < 5, np.float32(0.6), np.float32(0.05))
    np.testing.assert_array_equal(result.exits[100:] == 0, e0 <= cut)  # class thresholds per frame
    # The numpy twin of the rule agrees.
    ent = np.stack([entropy10(p) for p in probs])
    pred = probs.argmax(2)
    sim = simulate_exits_by_snr(ent, pred, engine.snr_table, snr, engine.thresholds, engine.give_up)
    np.testing.assert_array_equal(sim, result.exits)


def test_without_snr_values_the_plain_rule_bit_for_bit(engine, tiny_model_path):
    frames = make_frames(200, seed=41)
    plain = EarlyExitEngine(tiny_model_path, max_batch=64).classify(frames)
    assert (plain.exits == 0).any() and (plain.exits == 1).any() and (plain.exits == 2).any()
    same(engine.classify(frames), plain)
    same(engine.classify(frames, snr_db=np.full(len(frames), np.nan)), plain)  # the per-row path
    mixed = np.where(np.arange(len(frames)) % 2, np.nan, -20.0)
    half = engine.classify(frames, snr_db=mixed)
    odd = np.arange(len(frames)) % 2 == 1
    np.testing.assert_array_equal(half.exits[odd], plain.exits[odd])
    assert (half.exits[~odd] == 0).all()


def test_a_frame_alone_in_any_batch_after_any_history(engine):
    rng = np.random.default_rng(3)
    frames = make_frames(100, seed=42)
    snr = rng.choice([-20.0, 0.0, 20.0, np.nan], len(frames))
    whole = engine.classify(frames, snr_db=snr)
    engine.classify(make_frames(128, seed=43), snr_db=np.full(128, -20.0))  # a noisy stretch before
    for max_batch in (7, 64, 256):
        engine.max_batch = max_batch
        order = rng.permutation(len(frames))
        shuffled = engine.classify(frames[order], snr_db=snr[order])
        np.testing.assert_array_equal(shuffled.exits, whole.exits[order])
        np.testing.assert_array_equal(shuffled.classes, whole.classes[order])
        np.testing.assert_allclose(shuffled.probs, whole.probs[order], atol=1e-6)
    engine.max_batch = 64
    for i in (0, 57, 99):
        alone = engine.classify(frames[i:i + 1], snr_db=snr[i:i + 1])
        assert alone.exits[0] == whole.exits[i] and alone.classes[0] == whole.classes[i]


def test_a_threshold_set_by_the_user_overrides_the_table(table_model):
    frames = make_frames(60, seed=44)
    low = np.full(len(frames), -20.0)
    engine = EarlyExitEngine(table_model, thresholds=0.0)
    assert not engine.uses_snr_table
    assert (engine.classify(frames, snr_db=low).exits == 2).all()
    engine.set_thresholds(None)  # the model's again: the table with it
    assert engine.uses_snr_table and (engine.classify(frames, snr_db=low).exits == 0).all()
    engine.set_give_up(math.inf)
    assert not engine.uses_snr_table
    engine.set_give_up(None)
    assert (engine.classify(frames, snr_db=low, thresholds=0.0).exits == 2).all()  # a call's own too
    with pytest.raises(ValueError, match="snr_db has 3 values for 60 frames"):
        engine.classify(frames, snr_db=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(edges_db=[5.0, -5.0]), "increasing"),
    (lambda t: t.update(edges_db=[-5.0]), "B-1 edges"),
    (lambda t: t["thresholds"].__setitem__(1, [0.1]), "1 values but the model has 2"),
    (lambda t: t["give_up"].__setitem__(0, [-1.0, None]), "give-up threshold"),
    (lambda t: t.update(extra=1), "edges_db, thresholds and give_up"),
])
def test_a_malformed_table_is_refused_in_one_line(tiny_model_path, tmp_path, change, message):
    table = table_json([0.1, 0.1])
    change(table)
    with pytest.raises(SnrTableError, match=message):
        validate_snr_table(table, 3, C)
    with pytest.raises(ValueError, match=message):
        rewrite_metadata(tiny_model_path, {"snr_table": table}, out_path=str(tmp_path / "bad.pt"))
    assert not (tmp_path / "bad.pt").exists()


def test_forward_with_per_row_thresholds_equals_the_eager_model(tmp_path):
    model = export_tiny_model(tmp_path / "m.pt", exits=("V0", "V1", "V3"), exit_head="conv")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(60, 2, 128)
    x = x / x.abs().sum(dim=(1, 2), keepdim=True)
    t = torch.rand(60, 3, C)
    g = torch.where(torch.rand(60, 3) < 0.2, torch.tensor(0.0), torch.tensor(math.inf))
    with torch.no_grad():
        eager = model(x, t, g)
        scripted = loaded.module(x, t, g)
        # Row by row: the same rule with shared thresholds, one row at a time.
        for i in range(0, 60, 9):
            one = loaded.module(x[i:i + 1], t[i], g[i])
            assert int(one[1][0]) == int(scripted[1][i])
    torch.testing.assert_close(eager[1], scripted[1])
    torch.testing.assert_close(eager[0], scripted[0], atol=1e-5, rtol=1e-4)


def test_a_model_file_of_an_older_format_is_refused(tmp_path, tiny_model_path):
    """Files of format versions 1-3 have a forward with exit gating (and
    older ones lack class thresholds or the weights' digest): they are
    refused in one line that says to export again."""
    loaded = load_model(tiny_model_path)
    assert loaded.meta["format_version"] == FORMAT_VERSION == 4
    for version in (1, 2, 3):
        old = tmp_path / f"old{version}.pt"
        loaded.module.save(str(old), _extra_files={METADATA_FILE: json.dumps(dict(loaded.meta, format_version=version))})
        with pytest.raises(ModelFileError) as info:
            EarlyExitEngine(str(old))
        message = str(info.value)
        assert "\n" not in message and f"format version {version}" in message and "export it again" in message


def test_break_even_share_weighs_head_and_gather_against_time_saved():
    """Where an exit pays (training.time_costs, reported by amcee prune)."""
    from gnuradio.amcee.network.architecture import MIN_SHARE_TO_GATHER
    from gnuradio.amcee.training.time_costs import break_even_shares

    # Segments 1, 4, 4, heads 0.5, 0.7, final head 0.3, gathers 0.3, 0.2 (any unit).
    shares = break_even_shares([1.0, 4.0, 4.0], [0.5, 0.7, 0.3], [0.3, 0.2, 0.0])
    assert shares == pytest.approx([0.8 / 8.6, 0.9 / 4.5])
    assert break_even_shares([1.0, 40.0], [0.01, 0.0]) == [MIN_SHARE_TO_GATHER]  # nothing saved below it
    assert break_even_shares([1.0, 0.0], [5.0, 0.0]) == [1.0]  # nothing to save
