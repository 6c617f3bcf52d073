"""Layer pruning: similarity, segmentation and scores (network.layer_pruning),
pruned backbones (architecture, checkpoint, export), and amcee prune."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from tiny_data import make_tiny_dataset

from gnuradio.amcee.network.architecture import LAYER_NAMES, EarlyExitNet, ModelConfig, backbone_layers
from gnuradio.amcee.network.layer_pruning import (cosine_similarity, drop_until, fisher_segments, linear_cka,
                                                  segment_choice, synflow_parameter_scores, synflow_scores)

PRUNED = ("conv1", "pool1", "pool2", "conv3", "conv5", "pool3")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


# ---------------------------------------------------------------- similarity
@pytest.mark.parametrize("measure", [linear_cka, cosine_similarity])
def test_similarity_is_one_with_itself_and_invariant_to_rotation_and_scale(measure):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((200, 12)))
    y = torch.from_numpy(rng.standard_normal((200, 7))) + 0.5 * x[:, :7]
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    rotated = x @ torch.from_numpy(q)
    assert measure(x, x) == pytest.approx(1.0, abs=1e-12)
    assert measure(x, rotated) == pytest.approx(1.0, abs=1e-12)
    assert measure(rotated, y) == pytest.approx(measure(x, y), abs=1e-12)
    assert measure(3.7 * x, y) == pytest.approx(measure(x, y), abs=1e-12)
    assert measure(x, y) < 0.9  # not everything is alike


def test_cka_of_unrelated_representations_is_small():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((2000, 5)))
    y = torch.from_numpy(rng.standard_normal((2000, 5)))
    assert linear_cka(x, y) < 0.02


# -------------------------------------------------------------- segmentation
@pytest.mark.parametrize("sizes", [(2, 3, 1), (1, 1, 4), (3, 2), (6,)])
def test_fisher_segmentation_finds_planted_segments(sizes):
    n = sum(sizes)
    rng = np.random.default_rng(sum(sizes) * 10 + len(sizes))
    sim = rng.uniform(0.05, 0.25, (n, n))
    start = 0
    planted = []
    for size in sizes:
        sim[start:start + size, start:start + size] = rng.uniform(0.8, 0.95, (size, size))
        planted.append((start, start + size - 1))
        start += size
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    assert fisher_segments(sim, len(sizes)) == planted


def test_fisher_segmentation_rejects_impossible_k():
    with pytest.raises(ValueError, match="cannot split 3 layers into 4"):
        fisher_segments(np.eye(3), 4)


def test_segment_choice_and_drop_until():
    names = ["a", "b", "c", "d"]
    assert segment_choice([(0, 1), (2, 3)], names, {"a": 1, "b": 3, "c": 5, "d": 2}) == ("b", "c")
    macs = {(): 10, ("x",): 12, ("x", "y"): 6, ("x", "y", "z"): 4}
    assert drop_until(["x", "y", "z"], 7, lambda d: macs[tuple(d)]) == ("x", "y")
    assert drop_until(["x", "y", "z"], 1, lambda d: macs[tuple(d)]) == ("x", "y", "z")  # cheapest seen


# -------------------------------------------------------------------- scores
def test_synflow_equals_hand_computed_scores_on_two_layers():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]]))
        net[0].bias.copy_(torch.tensor([0.1, -0.2]))
        net[2].weight.copy_(torch.tensor([[2.0, -1.0]]))
        net[2].bias.copy_(torch.tensor([0.3]))
    copy, scores = synflow_parameter_scores(net, (1, 3))
    w1, b1, w2, b2 = copy.parameters()
    # R = |W2| (|W1| 1 + |b1|) + |b2|: hidden [6.1, 2.7], R = 15.2.
    np.testing.assert_allclose(scores[w1].numpy(), [[2, 4, 6], [0.5, 1, 1]])
    np.testing.assert_allclose(scores[b1].numpy(), [0.2, 0.2])
    np.testing.assert_allclose(scores[w2].numpy(), [[12.2, 2.7]])
    np.testing.assert_allclose(scores[b2].numpy(), [0.3])
    assert net[0].weight[0, 1] == -2.0  # the network itself is untouched


def test_synflow_scores_every_conv_block():
    torch.manual_seed(0)
    scores = synflow_scores(EarlyExitNet(ModelConfig(exits=())))
    assert list(scores) == [n for n in LAYER_NAMES if n.startswith("conv")]
    assert all(s > 0 and np.isfinite(s) for s in scores.values())


# ---------------------------------------------------------- pruned networks
def test_pruned_backbone_bridges_widths_and_rejects_bad_layer_lists():
    assert backbone_layers(PRUNED) == (("conv1", "conv", 2, 64), ("pool1", "pool", 64, 64),
                                       ("pool2", "pool", 64, 64), ("conv3", "conv", 64, 64),
                                       ("conv5", "conv", 64, 32), ("pool3", "pool", 32, 32))
    for bad, message in (((*PRUNED[:2], "pool3"), "must include pool2"), (("conv1", "conv9"), "unknown"),
                         (("conv1", "pool1", "conv3", "conv2", "pool2", "pool3"), "backbone order")):
        with pytest.raises(ValueError, match=message):
            ModelConfig(exits=(), layers=bad)
    with pytest.raises(ValueError, match="unknown exit point 'V1'"):  # V1 sits after conv2, left out
        ModelConfig(exits=("V1",), layers=PRUNED)


def test_pruned_early_exit_model_trains_exports_and_classifies(tiny_data, tmp_path):
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.checkpoint import load_checkpoint, save_checkpoint
    from gnuradio.amcee.training.train import TrainConfig, train

    torch.manual_seed(0)
    init = tmp_path / "pruned.pt"
    save_checkpoint(init, EarlyExitNet(ModelConfig(exits=(), layers=PRUNED)), RML22_CLASSES)
    # --init-from a pruned checkpoint: the layers come with it, exits are added.
    summary = train(TrainConfig(data=tiny_data, out_dir=str(tmp_path / "ee"), exits=("V0", "conv3"),
                                exit_head="conv", scheme="joint", init_from=str(init), epochs=1,
                                batch_size=100, lr=3e-3, threads=1, progress=False))
    model, state = load_checkpoint(tmp_path / "ee" / "best.pt")
    assert model.config.layers == PRUNED and tuple(state["train_config"]["layers"]) == PRUNED
    engine = EarlyExitEngine(summary["model"], thresholds=[0.6, 0.6])
    assert engine.meta["config"]["layers"] == list(PRUNED)
    ds = load_dataset(tiny_data)
    frames = ds.frames[::4][:300]
    batched = engine.classify(frames)
    assert set(np.unique(batched.exits)) <= {0, 1, 2}
    single = [engine.classify(frames[i:i + 1]) for i in range(0, len(frames), 7)]
    for j, i in enumerate(range(0, len(frames), 7)):  # batched early exit equals frame by frame
        assert single[j].exits[0] == batched.exits[i]
        np.testing.assert_allclose(single[j].probs[0], batched.probs[i], atol=1e-5)
    accuracy = float((batched.probs.argmax(1) == ds.labels[::4][:300]).mean())
    assert accuracy > 0.1


# ---------------------------------------------------------------------- CLI
def test_prune_cli_writes_report_and_a_checkpoint_that_trains(tmp_path, capsys):
    from gnuradio.amcee.cli import main
    from gnuradio.amcee.network.checkpoint import load_checkpoint
    from gnuradio.amcee.training.train import TrainConfig, train

    data = str(tmp_path / "small.npz")
    make_tiny_dataset(data, frames_per_key=20, snrs=(10, 20))
    train(TrainConfig(data=data, out_dir=str(tmp_path / "src"), exits=(), epochs=1, batch_size=100,
                      lr=3e-3, threads=1, progress=False))
    source = str(tmp_path / "src" / "best.pt")
    out = tmp_path / "pruned"
    assert main(["prune", source, "--data", data, "--out", str(out), "--segments", "2", "--baselines",
                 "--random-seeds", "0", "--epochs", "1", "--sample-frames", "100", "--timing-repeats", "1",
                 "--distill", "1", "--threads", "1", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == {"segments", "first-k", "random-0", "lowest-score"}
    chosen = report["analysis"]["chosen"]
    assert chosen["segments"] == 2 and len(chosen["kept"]) == 2
    budget = chosen["macs"]
    for name, run in report["runs"].items():
        assert run["backbone_macs"] <= budget or name == "first-k" and len(run["dropped"]) == 5
        assert 0 <= run["accuracy"] <= 1
    assert (out / "similarity.png").stat().st_size > 1000
    assert "## Segmentations" in (out / "report.md").read_text()
    model, _ = load_checkpoint(report["runs"]["segments"]["checkpoint"])
    assert model.config.layers == tuple(report["runs"]["segments"]["layers"])
    capsys.readouterr()
    assert main(["prune", source, "--data", data, "--out", str(out), "--segments", "2", "--quiet"]) != 0
    assert "already holds files" in capsys.readouterr().err


def test_network_rebuilt_from_a_model_file_gives_its_backbone_outputs(tmp_path):
    from gnuradio.amcee.frames import l1_normalize_frames
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.checkpoint import network_from_model_file
    from gnuradio.amcee.network.export import export_model

    torch.manual_seed(3)
    model = EarlyExitNet(ModelConfig(exits=("V0",), exit_head="conv", layers=PRUNED)).eval()
    with torch.no_grad():  # BatchNorm statistics that folding has to carry
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    path = tmp_path / "model.pt"
    export_model(model, path, RML22_CLASSES, 0.3)
    rebuilt, classes = network_from_model_file(str(path))
    assert classes == list(RML22_CLASSES) and rebuilt.config.layers == PRUNED
    frames = np.random.default_rng(0).standard_normal((64, 2, 128)).astype(np.float32)
    expected, _ = EarlyExitEngine(str(path)).backbone_probs(frames)
    with torch.no_grad():
        got = rebuilt.backbone(torch.from_numpy(l1_normalize_frames(frames))).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
