"""A narrower stem (conv1's width, ModelConfig.stem_channels): through the
architecture, the MAC counts, amcee train, --init-from, pruning, export, the
engine and the block."""
import numpy as np
import pytest
import torch

from tiny_data import make_tiny_dataset

from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig, backbone_layers
from gnuradio.amcee.network.compute_costs import exit_costs


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


def test_stem_width_sets_conv1_and_the_next_layers_input():
    assert backbone_layers(stem_channels=16)[:3] == (("conv1", "conv", 2, 16), ("pool1", "pool", 16, 16),
                                                     ("conv2", "conv", 16, 64))
    pruned = ("conv1", "pool1", "pool2", "conv3", "conv6", "pool3")
    assert backbone_layers(pruned, 16)[3] == ("conv3", "conv", 16, 64)
    paper, narrow = (exit_costs(EarlyExitNet(ModelConfig(exits=("V0",), exit_head="conv", stem_channels=s)))
                     for s in (64, 16))
    # conv1: 2*C*3*128 MACs; conv2: C*64*3*64; the V0 head's conv: C*16*3*16.
    assert paper[1] - narrow[1] == 48 * (2 * 3 * 128 + 64 * 3 * 64)
    assert paper[0][0] - narrow[0][0] == 48 * (2 * 3 * 128 + 16 * 3 * 16)
    for bad in (0, 2.5, True, "32", "x", None, float("nan"), float("inf"), 4096):
        with pytest.raises(ValueError, match="stem_channels must be a whole number"):
            ModelConfig(exits=(), stem_channels=bad)


def test_narrow_stem_model_trains_exports_classifies_and_runs_in_the_block(tiny_data, tmp_path):
    from gnuradio import blocks, gr

    from gnuradio import amcee
    from gnuradio.amcee.cli import main
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.frames import to_complex
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.network.checkpoint import load_checkpoint
    from gnuradio.amcee.training.prune import pruned_network

    torch.manual_seed(0)
    out = tmp_path / "narrow"
    assert main(["train", "--data", tiny_data, "--out", str(out), "--exits", "V0", "--exit-head", "conv",
                 "--scheme", "joint", "--stem-channels", "16", "--epochs", "1", "--batch-size", "100",
                 "--lr", "3e-3", "--threads", "1", "--quiet"]) == 0
    model, _ = load_checkpoint(out / "best.pt")
    assert model.config.stem_channels == 16 and model.blocks[0].segment[1][0].out_channels == 16
    ds = load_dataset(tiny_data)
    frames = ds.frames[::4][:200]
    probs, _ = EarlyExitEngine(str(out / "model.pt")).all_exit_probs(frames)
    v0_entropy = -(probs[0] * np.log10(np.clip(probs[0], 1e-12, 1))).sum(1)
    threshold = float(np.median(v0_entropy))  # about half the frames leave at V0
    engine = EarlyExitEngine(str(out / "model.pt"), thresholds=[threshold])
    assert engine.meta["config"]["stem_channels"] == 16
    batched = engine.classify(frames)
    assert set(np.unique(batched.exits)) == {0, 1}  # both exits decide some frames
    for i in range(0, len(frames), 9):  # batched early exit equals frame by frame
        single = engine.classify(frames[i:i + 1])
        assert single.exits[0] == batched.exits[i]
        np.testing.assert_allclose(single.probs[0], batched.probs[i], atol=1e-5)

    tb = gr.top_block()
    clf = amcee.classifier(str(out / "model.pt"), max_batch=64, threshold=threshold)
    tb.connect(blocks.vector_source_c(to_complex(frames).ravel(), False, 128), clf,
               blocks.null_sink(gr.sizeof_gr_complex * 128))
    tb.run()
    assert clf.exit_counts() == np.bincount(batched.exits, minlength=2).tolist()

    # Fine-tuning and pruning keep the stem that comes with the weights.
    assert main(["train", "--data", tiny_data, "--out", str(tmp_path / "more"), "--exits", "V0",
                 "--exit-head", "conv", "--init-from", str(out / "best.pt"), "--epochs", "1",
                 "--batch-size", "100", "--threads", "1", "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "more" / "best.pt")[0].config.stem_channels == 16
    net, fresh = pruned_network(model, ("conv1", "pool1", "pool2", "conv3", "conv6", "pool3"))
    assert net.config.stem_channels == 16 and "blocks.0.segment.1.0.weight" not in fresh


def test_a_narrow_stem_learns_from_a_teacher(tiny_data, tmp_path, capsys):
    """amcee train --teacher: the final exit also matches another network's
    (the paper backbone teaching a 16-channel stem); the loss adds
    weight x KL(teacher || final exit) and nothing when they agree."""
    import json

    import torch.nn.functional as F

    from gnuradio.amcee.cli import main
    from gnuradio.amcee.training.train import TrainConfig, scheme_loss

    config = TrainConfig(data="d", out_dir="o", exits=("V0",), scheme="joint", teacher="t.pt", teacher_weight=0.5)
    logits = [torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.5, 0.2, 0.1]])]
    losses = [torch.tensor(0.3), torch.tensor(0.7)]
    plain = scheme_loss(losses, config, logits)
    assert torch.isclose(scheme_loss(losses, config, logits, logits[-1]), plain)
    teacher = torch.tensor([[-2.0, 0.0, 3.0]])
    p, q = torch.softmax(teacher, 1), torch.softmax(logits[-1], 1)
    kl = float((p * (p.log() - q.log())).sum())
    assert torch.isclose(scheme_loss(losses, config, logits, teacher), plain + 0.5 * kl)
    assert torch.isclose(scheme_loss(losses, config, logits, teacher) - plain,
                         0.5 * F.kl_div(q.log(), p, reduction="batchmean"))

    common = ["--data", tiny_data, "--epochs", "1", "--batch-size", "100", "--threads", "1", "--quiet"]
    assert main(["train", "--out", str(tmp_path / "teacher"), "--exits", "none", *common]) == 0
    student = tmp_path / "student"
    assert main(["train", "--out", str(student), "--exits", "V0", "--exit-head", "conv", "--scheme", "joint",
                 "--stem-channels", "16", "--teacher", str(tmp_path / "teacher" / "best.pt"),
                 "--teacher-weight", "1", *common]) == 0
    recorded = json.load(open(student / "config.json"))["train"]
    assert recorded["teacher"] == str(tmp_path / "teacher" / "best.pt") and recorded["teacher_weight"] == 1.0
    assert (student / "model.pt").is_file()
    assert main(["train", "--out", str(tmp_path / "no-weight"), "--teacher", str(tmp_path / "teacher" / "best.pt"),
                 *common]) != 0
    assert "teacher_weight must be > 0 with a teacher" in capsys.readouterr().err
    assert not (tmp_path / "no-weight").exists()


def test_the_teacher_can_be_a_model_file(tiny_data, tmp_path, capsys):
    """--teacher takes an exported model file (the shipped paper backbone):
    rebuilt, it teaches what its checkpoint teaches, to float rounding; a
    teacher of other frames is refused in one line before training."""
    import json

    from gnuradio.amcee.cli import main

    common = ["--data", tiny_data, "--epochs", "1", "--batch-size", "100", "--threads", "1", "--quiet"]
    assert main(["train", "--out", str(tmp_path / "teacher"), "--exits", "none", *common]) == 0
    assert (tmp_path / "teacher" / "model.pt").is_file()  # the backbone alone is exported like any model
    assert main(["train", "--out", str(tmp_path / "calibrated"), "--exits", "none", "--calibrate", "0.5",
                 *common]) != 0
    assert "calibrate needs an early exit" in capsys.readouterr().err
    losses = {}
    for kind in ("best.pt", "model.pt"):
        out = tmp_path / kind.replace(".", "-")
        assert main(["train", "--out", str(out), "--exits", "V0", "--exit-head", "conv", "--scheme", "joint",
                     "--stem-channels", "16", "--teacher", str(tmp_path / "teacher" / kind),
                     "--teacher-weight", "1", *common]) == 0
        losses[kind] = [v for line in open(out / "metrics.jsonl") for v in json.loads(line)["train_loss"]]
    assert losses["model.pt"] == pytest.approx(losses["best.pt"], rel=1e-4)

    other = tmp_path / "long.npz"
    make_tiny_dataset(other, frame_len=256)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "misfit"), "--teacher", str(tmp_path / "teacher" / "model.pt"),
                 "--teacher-weight", "1", *common[:1], str(other), *common[2:]]) != 0
    err = capsys.readouterr().err.strip()
    assert "was trained on frames of 128 samples" in err and "frames of 256 samples" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "misfit").exists()
