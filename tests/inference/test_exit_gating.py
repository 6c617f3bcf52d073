"""Exit gating: an early exit's head runs on the rest of a batch only if
enough of its probed rows leave (EarlyExitNet.forward, inference/exit_gating.py)."""
import math

import numpy as np
import pytest
import torch

from conftest import export_tiny_model, make_frames
from gnuradio.amcee.inference import exit_gating
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.exit_gating import PROBE_ROWS
from gnuradio.amcee.inference.model_file import load_model
from gnuradio.amcee.network.architecture import MIN_SHARE_TO_GATHER
from gnuradio.amcee.network.export import rewrite_metadata
from gnuradio.amcee.training.exit_simulation import entropy10
from gnuradio.amcee.training.time_costs import break_even_shares, measure_block_times, measured_min_exit_share


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    return EarlyExitEngine(tiny_model_path, max_batch=256)


def _half_leaving_first_exit(engine, frames):
    """Threshold at which about half of ``frames`` leave exit 0, and their exit-0 entropies."""
    probs, _ = engine.all_exit_probs(frames)
    e0 = entropy10(probs[0])
    order = np.sort(e0)
    half = len(order) // 2
    return float(order[half - 1] + order[half]) / 2, e0, probs


def test_gating_is_off_by_default_and_zero_is_off(engine):
    assert engine.min_exit_share == (0.0, 0.0)
    frames = make_frames(200, seed=21)
    a, b = engine.classify(frames), engine.classify(frames, min_exit_share=0.0)
    np.testing.assert_array_equal(a.exits, b.exits)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


def test_a_head_not_worth_running_sees_only_the_probed_rows(engine):
    frames = make_frames(200, seed=22)
    cut, e0, _ = _half_leaving_first_exit(engine, frames)
    backbone, _ = engine.backbone_probs(frames)
    # About half of the probed rows leave exit 0: a share of 1 is not met.
    gated = engine.classify(frames, thresholds=[cut, 0.0], min_exit_share=[1.0, 0.0])
    stride = len(frames) // PROBE_ROWS  # the probe: every stride-th row
    probed = np.zeros(len(frames), dtype=bool)
    probed[0:PROBE_ROWS * stride:stride] = True
    np.testing.assert_array_equal(gated.exits[probed] == 0, e0[probed] <= cut)
    assert 0 < (gated.exits[probed] == 0).sum() < PROBE_ROWS
    # Every other row went on to the final exit: the backbone's answer.
    assert (gated.exits[~probed] == 2).all() and (gated.exits[probed & (e0 > cut)] == 2).all()
    np.testing.assert_allclose(gated.probs[gated.exits == 2], backbone[gated.exits == 2], atol=1e-5)
    assert engine.min_exit_share == (0.0, 0.0)  # per-call values do not stick


def test_a_head_worth_running_runs_on_every_row(engine):
    frames = make_frames(200, seed=23)
    cut, _, _ = _half_leaving_first_exit(engine, frames)
    plain = engine.classify(frames, thresholds=[cut, 0.3])
    gated = engine.classify(frames, thresholds=[cut, 0.3], min_exit_share=[0.1, 0.01])
    assert (plain.exits == 0).sum() > 0.3 * len(frames)
    np.testing.assert_array_equal(plain.exits, gated.exits)
    np.testing.assert_allclose(plain.probs, gated.probs, atol=1e-5)


def test_batches_below_two_probes_are_never_gated(engine):
    frames = make_frames(2 * PROBE_ROWS - 1, seed=24)
    cut, _, _ = _half_leaving_first_exit(engine, frames)
    plain = engine.classify(frames, thresholds=[cut, 0.0])
    gated = engine.classify(frames, thresholds=[cut, 0.0], min_exit_share=1.0)
    np.testing.assert_array_equal(plain.exits, gated.exits)


def test_gated_forward_equals_the_eager_model(tmp_path):
    model = export_tiny_model(tmp_path / "m.pt", exits=("V0", "V1", "V3"), exit_head="conv")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(100, 2, 128)
    x = x / x.abs().sum(dim=(1, 2), keepdim=True)
    t, g = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([math.inf] * 3)
    share = torch.tensor([1.0, 0.0, 0.5])
    with torch.no_grad():
        eager = model(x, t, g, share)
        scripted = loaded.module(x, t, g, share)
    torch.testing.assert_close(eager[1], scripted[1])
    torch.testing.assert_close(eager[0], scripted[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bad, message", [
    (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"), (float("nan"), r"\[0, 1\]"),
    ([0.1], "has 1 values"), ("x", "number or a list"),
])
def test_bad_shares_are_refused_and_change_nothing(engine, bad, message):
    before = engine.min_exit_share
    with pytest.raises(ValueError, match=message):
        engine.set_min_exit_share(bad)
    assert engine.min_exit_share == before


def test_model_file_default_and_rewrite(tmp_path, tiny_model_path):
    out = tmp_path / "gated.pt"
    meta = rewrite_metadata(tiny_model_path, {"min_exit_share": [0.05, 0.2]}, out_path=str(out))
    assert meta["min_exit_share"] == [0.05, 0.2]
    assert EarlyExitEngine(str(out)).min_exit_share == (0.05, 0.2)
    assert EarlyExitEngine(str(out), min_exit_share=0).min_exit_share == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rewrite_metadata(tiny_model_path, {"min_exit_share": [2.0, 0.2]}, out_path=str(tmp_path / "bad.pt"))


def test_break_even_share_weighs_head_and_gather_against_time_saved():
    # Segments 1, 4, 4, heads 0.5, 0.7, final head 0.3, gathers 0.3, 0.2 (any unit).
    shares = break_even_shares([1.0, 4.0, 4.0], [0.5, 0.7, 0.3], [0.3, 0.2, 0.0])
    assert shares == pytest.approx([0.8 / 8.6, 0.9 / 4.5])
    assert break_even_shares([1.0, 4.0, 4.0], [0.6, 0.7, 0.3]) == pytest.approx([0.6 / 8.3, 0.7 / 4.3])
    assert break_even_shares([1.0, 40.0], [0.01, 0.0]) == [MIN_SHARE_TO_GATHER]  # nothing saved below it
    assert break_even_shares([1.0, 0.0], [5.0, 0.0]) == [1.0]  # nothing to save


def test_measured_times_and_shares(engine):
    x, _ = engine._prepare(make_frames(64, seed=25))
    segments, heads, gathers = measure_block_times(engine.model.module, torch.from_numpy(x), repeats=3)
    assert len(segments) == len(heads) == len(gathers) == 3 and all(s > 0 for s in segments + gathers)
    shares, record = measured_min_exit_share(engine, make_frames(64, seed=25), repeats=3)
    assert len(shares) == 2 and all(0 <= s <= 1 for s in shares)
    assert record["break_even_shares"] == shares and record["threads"] == 1


def test_a_model_file_of_an_older_format_is_refused(tmp_path, tiny_model_path):
    """Files of format version 1 could lack exit gating or class thresholds in
    their forward, files of version 2 a digest of their weights: they are
    refused in one line that says to export again."""
    import json

    from gnuradio.amcee.inference.model_file import FORMAT_VERSION, METADATA_FILE, ModelFileError

    loaded = load_model(tiny_model_path)
    assert loaded.meta["format_version"] == FORMAT_VERSION == 3
    for version in (1, 2):
        old = tmp_path / f"old{version}.pt"
        loaded.module.save(str(old), _extra_files={METADATA_FILE: json.dumps(dict(loaded.meta, format_version=version))})
        with pytest.raises(ModelFileError) as info:
            EarlyExitEngine(str(old))
        message = str(info.value)
        assert "\n" not in message and f"format version {version}" in message and "export it again" in message


def test_a_stream_skips_the_probe_after_a_batch_that_met_the_share(tiny_model_path):
    """The engine's own settings remember, per exit, whether the last batch met
    its share; if so the next batch runs the head without a probe.  A call
    with its own settings starts afresh and leaves the memory alone."""
    engine = EarlyExitEngine(tiny_model_path, max_batch=128, min_exit_share=[0.5, 0.0])
    frames = make_frames(256, seed=28)
    cut = float(np.quantile(entropy10(engine.all_exit_probs(frames[128:])[0][0]), 0.3))  # 30 % < 0.5 leave
    ungated = engine.classify(frames[128:], thresholds=[cut, 0.0], min_exit_share=0.0)
    assert (ungated.exits == 0).sum() > PROBE_ROWS
    engine.set_thresholds([1.0, 0.0])
    engine.classify(frames[:128])  # every row leaves exit 0: the share is met
    assert engine._gate_memory[0].passed
    engine.set_thresholds([cut, 0.0])
    after_pass = engine.classify(frames[128:])  # no probe: as ungated
    np.testing.assert_array_equal(after_pass.exits, ungated.exits)
    assert not engine._gate_memory[0].passed  # 30 % left: below the share
    after_fail = engine.classify(frames[128:])  # probed again: only probed rows leave
    assert 0 < (after_fail.exits == 0).sum() <= PROBE_ROWS
    assert engine._gate_memory[0] == exit_gating.ExitMemory(misses=2, skip=1)  # second shortfall: back off
    engine.set_thresholds([1.0, 0.0])
    skipped = engine.classify(frames[:128])  # all would leave, but the head is skipped
    assert (skipped.exits != 0).all()
    engine.classify(frames[:128])  # probed: passes
    engine.classify(frames[128:], thresholds=[cut, 0.0])  # its own settings: the memory stays
    assert engine._gate_memory[0].passed
    engine.set_min_exit_share([0.5, 0.0])  # a new setting forgets
    assert engine._gate_memory == exit_gating.fresh(2)


def test_setting_the_same_gating_during_a_call_still_forgets(tiny_model_path, monkeypatch):
    """set_min_exit_share from another thread (a GRC callback) while work()
    classifies: the call must not write its memory back over the reset, even
    when the values set are the ones it runs with."""
    engine = EarlyExitEngine(tiny_model_path, max_batch=128, min_exit_share=[0.5, 0.0])
    engine.set_thresholds([1.0, 0.0])
    after_batch = exit_gating.after_batch

    def reset_meanwhile(*args):
        engine.set_min_exit_share([0.5, 0.0])
        return after_batch(*args)

    monkeypatch.setattr(exit_gating, "after_batch", reset_meanwhile)
    engine.classify(make_frames(128, seed=31))  # every row leaves exit 0: the call's memory says passed
    assert engine._gate_memory == exit_gating.fresh(2)


def test_a_stream_where_nothing_leaves_skips_head_and_probe_for_a_while(tiny_model_path):
    engine = EarlyExitEngine(tiny_model_path, max_batch=128, min_exit_share=[0.5, 0.0])
    frames = make_frames(128, seed=29)
    engine.set_thresholds([0.0, 0.0])
    engine.classify(frames)  # nothing leaves exit 0: far below the share
    assert engine._gate_memory[0] == exit_gating.ExitMemory(misses=1, skip=0)  # one batch says little
    engine.classify(frames)
    assert engine._gate_memory[0] == exit_gating.ExitMemory(misses=2, skip=1)
    engine.set_thresholds([1.0, 0.0])
    skipped = engine.classify(frames)  # all would leave, but no head runs
    assert (skipped.exits != 0).all() and engine._gate_memory[0].skip == 0
    probed = engine.classify(frames)  # probed again: passes, all leave
    assert (probed.exits == 0).all() and engine._gate_memory[0] == exit_gating.ExitMemory(passed=True)


def test_gate_memory_backs_off_and_recovers():
    shares, probe = [0.1, 0.2], 32
    mem = exit_gating.fresh(2)
    skips = []
    for _ in range(36):  # nothing leaves either exit: from the second batch on, skips of 1, 2, 4, 8, 8 ...
        used = exit_gating.next_shares(shares, mem)
        skips.append(tuple(v == exit_gating.SKIP for v in used))
        mem = exit_gating.after_batch(mem, shares, used, [0, 0, 256], probe)
    probed = [i for i, (s0, s1) in enumerate(skips) if not s0]
    assert all(s0 == s1 for s0, s1 in skips)
    assert probed == [0, 1, 3, 6, 11, 20, 29]  # gaps of 1, 2, 3, 5, 9, 9: skips of 0, 1, 2, 4, 8, 8
    assert [exit_gating.backoff(m) for m in range(1, 8)] == [0, 1, 2, 4, 8, 8, 8]
    while exit_gating.next_shares(shares, mem)[0] == exit_gating.SKIP:
        mem = exit_gating.after_batch(mem, shares, [exit_gating.SKIP] * 2, [0, 0, 256], probe)
    # A probe that passes resets, and the next batch runs the head unprobed.
    used = exit_gating.next_shares(shares, mem)
    assert used == [0.1, 0.2]
    mem = exit_gating.after_batch(mem, shares, used, [100, 50, 106], probe)
    assert mem == (exit_gating.ExitMemory(passed=True),) * 2 and exit_gating.next_shares(shares, mem) == [0.0, 0.0]
    # Short of the share, however close (2 and 4 of 32 probed rows against 0.1 and 0.2 x 32):
    # a miss like any other, so the back-off goes on growing.
    mem = exit_gating.after_batch((exit_gating.ExitMemory(misses=3),) * 2, shares, [0.1, 0.2],
                                  [2, 4, 250], probe)
    assert mem == (exit_gating.ExitMemory(misses=4, skip=4),) * 2
    # An unprobed head (after a passed batch) that saved too little: probed at the next batch.
    mem = exit_gating.after_batch((exit_gating.ExitMemory(passed=True),) * 2, shares, [0.0, 0.0],
                                  [20, 40, 196], probe)
    assert mem == (exit_gating.ExitMemory(misses=1),) * 2 and exit_gating.next_shares(shares, mem) == shares
    # Batches too small to gate teach nothing.
    assert exit_gating.after_batch(mem, shares, [0.1, 0.2], [0, 0, 63], probe) == mem


def test_a_share_above_one_skips_head_and_probe(tiny_model_path):
    module = load_model(tiny_model_path).module
    x = torch.randn(128, 2, 128)
    x = x / x.abs().sum(dim=(1, 2), keepdim=True)
    t, g = torch.tensor([1.0, 0.0]), torch.tensor([math.inf, math.inf])
    with torch.no_grad():
        assert (module(x, t, g, torch.tensor([0.5, 0.0]))[1] == 0).all()  # probed, passed: all leave
        assert (module(x, t, g, torch.tensor([2.0, 0.0]))[1] == 2).all()  # no head: all go on
        assert (module(x[:63], t, g, torch.tensor([2.0, 0.0]))[1] == 0).all()  # too small to gate
