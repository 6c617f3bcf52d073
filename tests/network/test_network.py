"""The paper's networks: layer layout, parameter counts, compute accounting."""
import math

import numpy as np
import pytest
import torch

from gnuradio.amcee.inference.exit_rule import class_probabilities, entropy10, predicted_class
from gnuradio.amcee.network.architecture import MIN_SHARE_CLOSED_TO_GATHER, EarlyExitNet, ModelConfig
from gnuradio.amcee.network.checkpoint import portable_state, transfer_weights
from gnuradio.amcee.network.compute_costs import compute_ceiling, count_parameters, exit_costs, parameter_split

# docs/dataset-and-network.md: params shared / exit head / rest of backbone.
PAPER_TABLE = {
    "V0": (576, 68_010, 118_842),
    "V1": (13_056, 68_010, 106_362),
    "V2": (25_536, 68_010, 93_882),
    "V3": (34_944, 68_010, 84_474),
}


@pytest.mark.parametrize("version", sorted(PAPER_TABLE))
def test_parameter_counts_match_paper_table(version):
    model = EarlyExitNet(ModelConfig(exits=(version,)))
    assert parameter_split(model, 0) == PAPER_TABLE[version]


def test_backbone_alone_matches_paper_layout():
    model = EarlyExitNet(ModelConfig(exits=()))  # final exit only
    shared, head, rest = PAPER_TABLE["V0"]
    assert count_parameters(model) == shared + rest
    _, backbone_macs = exit_costs(model)
    assert backbone_macs == 1_655_424  # docs/dataset-and-network.md


def test_exit_costs_match_facts():
    costs, backbone = exit_costs(EarlyExitNet(ModelConfig(exits=("V1",))))
    assert costs[0] == 49_152 + 786_432 + 67_904  # conv1 + conv2 + exit head
    assert backbone / costs[0] == pytest.approx(1.83, abs=0.01)
    assert compute_ceiling([1.0, 0.0], costs, backbone) == pytest.approx(backbone / costs[0])
    assert compute_ceiling([0.0, 1.0], costs, backbone) < 1.0  # head on the way costs


def test_conv_head_is_cheaper_than_the_paper_head_at_v0():
    paper = EarlyExitNet(ModelConfig(exits=("V0",)))
    conv = EarlyExitNet(ModelConfig(exits=("V0",), exit_head="conv"))
    # MaxPool(4) -> 64x16, Conv1d 64->16 (k=3) at 16 positions, stats 48 -> 64 -> 10.
    head = 64 * 16 * 3 * 16 + 48 * 64 + 64 * 10
    assert exit_costs(conv)[0][0] == 49_152 + head
    assert head < exit_costs(paper)[0][0] - 49_152
    assert exit_costs(conv)[1] == exit_costs(paper)[1]  # the backbone is the same
    shared, _, rest = parameter_split(conv, 0)
    assert (shared, rest) == PAPER_TABLE["V0"][::2]


def test_transfer_weights_matches_layers_across_exit_lists():
    torch.manual_seed(0)
    source = EarlyExitNet(ModelConfig(exits=("V0", "V1")))
    target = EarlyExitNet(ModelConfig(exits=("V0",), exit_head="conv"))
    fresh = transfer_weights(source, target)
    assert fresh and all(k.startswith("head.pool1.conv.") for k in fresh)
    src, dst = portable_state(source), portable_state(target)
    assert "conv4.0.weight" in dst and "head.final.1.weight" in dst
    for key, value in dst.items():
        if key not in fresh:
            assert torch.equal(value, src[key]), key
    # The backbone computes the same features: the final exits agree.
    x = torch.randn(3, 2, 128)
    source.eval(), target.eval()
    assert torch.allclose(source.exit_logits(x)[-1], target.exit_logits(x)[-1], atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        transfer_weights(source, EarlyExitNet(ModelConfig(exits=("V0",), num_classes=5)))


def test_any_exit_list_builds_and_trains_every_head():
    model = EarlyExitNet(ModelConfig(exits=("V0", "V1", "conv4")))
    assert model.config.exit_names == ("V0", "V1", "conv4", "final")
    outputs = model.exit_logits(torch.randn(4, 2, 128))
    assert [tuple(o.shape) for o in outputs] == [(4, 10)] * 4
    sum(o.sum() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_exit_head_is_refused():
    with pytest.raises(ValueError, match="unknown exit head"):
        ModelConfig(exits=("V0",), exit_head="transformer")


@pytest.mark.parametrize("exits, message", [
    (("V9",), "unknown exit point"),
    (("V1", "V0"), "backbone order"),
    (("V1", "conv2"), "distinct"),
    (("pool3",), "unknown exit point"),
])
def test_bad_exit_lists_are_refused(exits, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(exits=exits)


def test_other_frame_lengths_scale_the_layout():
    model = EarlyExitNet(ModelConfig(exits=("V1",), frame_len=256))
    outputs = model.exit_logits(torch.randn(2, 2, 256))
    assert [tuple(o.shape) for o in outputs] == [(2, 10), (2, 10)]
    with pytest.raises(ValueError, match="multiple of 8"):
        ModelConfig(frame_len=100)


def test_predicted_class_is_argmax_on_ties_nan_and_zeros():
    torch.manual_seed(0)
    logits = torch.randint(-2, 2, (2000, 10)).float()  # many equal maxima
    logits[::7] = 0.0
    logits[::11, 3] = float("nan")
    for p in (class_probabilities(logits), torch.zeros(50, 10)):
        assert torch.equal(predicted_class(p), p.argmax(1))


def test_early_exit_forward_returns_rows_in_order():
    model = EarlyExitNet(ModelConfig(exits=("V0", "V1"))).eval()
    x = torch.randn(33, 2, 128)
    with torch.no_grad():
        probs, exits, entropy = model(x, torch.tensor([0.99, 0.995]), torch.tensor([math.inf, math.inf]))
        logits = model.exit_logits(x)
    for i in range(33):
        expected = torch.softmax(logits[int(exits[i])][i], 0)
        assert torch.allclose(probs[i], expected, atol=1e-6)
    assert entropy.max() <= math.log10(10) + 1e-6


def test_give_up_rule_sends_unsure_frames_out_early():
    model = EarlyExitNet(ModelConfig(exits=("V0", "V1"))).eval()
    x = torch.randn(64, 2, 128)
    never = torch.tensor([-1.0, -1.0])
    with torch.no_grad():
        _, exits, entropy = model(x, never, torch.tensor([0.0, 0.0]))  # everyone "gives up" at V0
        assert (exits == 0).all()
        e0 = entropy10(torch.softmax(model.exit_logits(x)[0], 1))
        cut = float(e0.median())
        _, exits, _ = model(x, never, torch.tensor([cut, math.inf]))
    assert ((exits == 0) == (e0 >= cut)).all()  # leaves V0 exactly when E >= give-up
    assert set(exits[e0 < cut].tolist()) == {2}


def test_export_zeroes_negligible_weights_and_keeps_the_outputs():
    from gnuradio.amcee.network.inference_graph import NEGLIGIBLE_WEIGHT, for_inference

    torch.manual_seed(5)
    net = EarlyExitNet(ModelConfig(exits=("V0",), exit_head="conv")).eval()
    tiny = torch.finfo(torch.float32).tiny
    with torch.no_grad():  # what weight decay leaves in unused filters: subnormal, or just above
        net.blocks[0].head[1][0].weight[3].fill_(tiny / 8)
        net.blocks[1].segment[0][0].weight[0, 0].fill_(-tiny / 4)
        net.blocks[1].segment[0][0].weight[1, 0].fill_(3e-33)
        net.blocks[1].segment[0][0].weight[2, 0].fill_(-5e-25)
    folded = for_inference(net)
    tensors = list(folded.parameters()) + list(folded.buffers())
    assert not any(((t != 0) & (t.abs() < NEGLIGIBLE_WEIGHT)).any() for t in tensors if t.is_floating_point())
    assert sum(int((t != 0).sum()) for t in tensors) > 0.99 * sum(t.numel() for t in tensors)
    x = torch.randn(16, 2, 128) / 128
    for got, want in zip(folded.exit_logits(x), net.exit_logits(x)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_an_exit_that_is_off_does_not_run_its_head_and_changes_no_answer():
    """EXIT_OFF (threshold null) with no give-up value: no frame leaves there,
    and the head runs only for the rows that may leave (per-row thresholds
    of the SNR table), or not at all; the answers are those of the rule
    computed from every exit's outputs."""
    from gnuradio.amcee.inference.model_file import EXIT_OFF, thresholds_to_json, validate_thresholds
    from gnuradio.amcee.training.exit_simulation import simulate_exits

    torch.manual_seed(0)
    model = EarlyExitNet(ModelConfig(exits=("V0", "V1"), exit_head="conv")).eval()
    x = torch.randn(40, 2, 128)
    head_rows = [[], []]
    for k in range(2):
        model.blocks[k].head.register_forward_hook(
            lambda module, args, out, k=k: head_rows[k].append(args[0].shape[0]))
    with torch.no_grad():
        logits = model.exit_logits(x)
    head_rows[0].clear(), head_rows[1].clear()
    probs = torch.stack([torch.softmax(z, 1) for z in logits]).numpy()
    entropies = np.stack([entropy10(torch.from_numpy(p)).numpy() for p in probs])
    predictions = probs.argmax(2)
    inf = math.inf
    median = [float(np.median(entropies[k])) for k in range(2)]

    # Shared rule, V0 off: V0's head never runs; the frames are those of the rule without V0.
    with torch.no_grad():
        p, exits, _ = model(x, torch.tensor([EXIT_OFF, median[1]]), torch.tensor([inf, inf]))
    assert head_rows[0] == [] and head_rows[1] == [40]
    expected = simulate_exits(entropies, [EXIT_OFF, median[1]], None, predictions)
    assert exits.tolist() == expected.tolist() and 0 not in expected
    for i in range(40):
        np.testing.assert_allclose(p[i].numpy(), probs[expected[i], i], atol=1e-6)

    # Per row: V0 off for the odd rows (those rows skip V0's head), on at the median for the even ones.
    head_rows[0].clear(), head_rows[1].clear()
    t = torch.full((40, 2, 10), float(median[1]))
    t[:, 0, :] = median[0]
    t[1::2, 0, :] = EXIT_OFF
    g = torch.full((40, 2), inf)
    with torch.no_grad():
        p, exits, entropy = model(x, t, g)
    assert head_rows[0] == [20]
    for i in range(40):
        rule = [EXIT_OFF if i % 2 else median[0], median[1]]
        e_i = simulate_exits(entropies[:, i:i + 1], rule, None, predictions[:, i:i + 1])[0]
        assert int(exits[i]) == e_i
        np.testing.assert_allclose(p[i].numpy(), probs[e_i, i], atol=1e-6)
        assert float(entropy[i]) == pytest.approx(float(entropies[e_i, i]), abs=1e-5)
    # V0 off for a few rows (under MIN_SHARE_CLOSED_TO_GATHER): the head runs on every
    # row instead of a gather, and the closed rows still never leave there.
    head_rows[0].clear()
    t_few = t.clone()
    t_few[:, 0, :] = median[0]
    few = [3, 17, 29]
    assert len(few) < MIN_SHARE_CLOSED_TO_GATHER * 40 <= 20
    t_few[few, 0, :] = EXIT_OFF
    with torch.no_grad():
        p, exits, entropy = model(x, t_few, g)
    assert head_rows[0] == [40]
    for i in range(40):
        rule = [EXIT_OFF if i in few else median[0], median[1]]
        e_i = simulate_exits(entropies[:, i:i + 1], rule, None, predictions[:, i:i + 1])[0]
        assert int(exits[i]) == e_i
        np.testing.assert_allclose(p[i].numpy(), probs[e_i, i], atol=1e-6)
        assert float(entropy[i]) == pytest.approx(float(entropies[e_i, i]), abs=1e-5)
    assert (exits[few] != 0).all() and (exits == 0).any()
    # A give-up value keeps the head running: the row may still leave there.
    head_rows[0].clear()
    g[1::2, 0] = 0.0
    with torch.no_grad():
        _, exits, _ = model(x, t, g)
    assert head_rows[0] == [40] and (exits[1::2] == 0).all()

    # The JSON form: null.
    assert validate_thresholds([None, 0.2], 3) == (EXIT_OFF, 0.2)
    assert thresholds_to_json((EXIT_OFF, 0.2)) == [None, 0.2]
    with pytest.raises(ValueError, match="finite and >= 0"):
        validate_thresholds([-0.5, 0.2], 3)
