"""amcee train: both schemes, the paper scheme's gradient isolation, exact resume, DDP."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from tiny_data import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


def _config(data, out, **kw):
    from gnuradio.amcee.training.train import TrainConfig

    settings = dict(data=data, out_dir=str(out), exits=("V0", "V1"), epochs=1, batch_size=100,
                    lr=3e-3, threads=1, progress=False, eval_batch=512)
    settings.update(kw)
    return TrainConfig(**settings)


@pytest.mark.parametrize("scheme", ["paper", "joint"])
def test_one_epoch_exports_a_model_the_block_loads(tiny_data, tmp_path, scheme):
    from gnuradio import amcee
    from gnuradio.amcee.training.train import train

    summary = train(_config(tiny_data, tmp_path / scheme, scheme=scheme))
    assert summary["epochs_run"] == 1 and summary["train_seconds"] < 60
    for name in ("last.pt", "best.pt", "metrics.jsonl", "config.json", "summary.json", "model.pt"):
        assert (tmp_path / scheme / name).is_file(), name
    metrics = [json.loads(line) for line in open(tmp_path / scheme / "metrics.jsonl")]
    assert len(metrics) == 1 and len(metrics[0]["val_acc"]) == 3
    assert abs(sum(metrics[0]["val_exit_shares"]) - 1) < 1e-9
    block = amcee.classifier(summary["model"])
    assert block.engine.exit_names == ("V0", "V1", "final")
    assert block.engine.thresholds == (0.35, 0.35)
    assert block.engine.meta["model_version"] == scheme


def _params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(before, module):
    import torch

    return {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}


def _one_step(model, detach, which):
    """One Adam step (weight decay on) on the loss of exit ``which`` only."""
    import torch
    from torch.nn import functional as F

    from gnuradio.amcee.training.train import TrainingForward

    torch.manual_seed(0)
    x, y = torch.randn(32, 2, 128), torch.randint(0, 10, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    model.zero_grad(set_to_none=True)
    before = _params(model)
    logits = TrainingForward(model, detach_between_blocks=detach)(x)
    F.cross_entropy(logits[which], y).backward()
    opt.step()
    return _changed(before, model)


def test_paper_scheme_isolates_the_losses():
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig

    def names(model, k):
        return {f"blocks.{k}.{n}" for n, _ in model.blocks[k].named_parameters()}

    model = EarlyExitNet(ModelConfig(exits=("V1",)))
    shared_and_head, later = names(model, 0), names(model, 1)
    # Loss 2 (final exit) leaves the shared layers (and the exit head) unchanged ...
    assert _one_step(model, True, -1) == later
    # ... and loss 1 (early exit) leaves the layers after the branch unchanged.
    assert _one_step(model, True, 0) == shared_and_head
    # The joint scheme lets the final loss reach the shared layers.
    joint = _one_step(EarlyExitNet(ModelConfig(exits=("V1",))), False, -1)
    assert any(n.startswith("blocks.0.segment") for n in joint)


def test_resume_continues_exactly(tiny_data, tmp_path):
    from gnuradio.amcee.network.checkpoint import load_checkpoint
    from gnuradio.amcee.training.train import TrainConfig, train

    straight = train(_config(tiny_data, tmp_path / "straight", epochs=2, scheme="joint"))
    train(_config(tiny_data, tmp_path / "stopped", epochs=1, scheme="joint"))
    _, state = load_checkpoint(str(tmp_path / "stopped" / "last.pt"))
    assert state["epoch"] == 1 and "optimizer_state" in state and "rng" in state
    resumed_config = TrainConfig(**{**state["train_config"], "epochs": 2})
    resumed = train(resumed_config, resume=str(tmp_path / "stopped" / "last.pt"))
    assert straight["epochs_run"] == resumed["epochs_run"] == 2

    def epoch2(run):
        return [json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")][1]

    a, b = epoch2("straight"), epoch2("stopped")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_exit_shares", "lr"):
        assert a[key] == b[key], key


def test_init_from_and_distillation(tiny_data, tmp_path):
    import torch

    from gnuradio.amcee.network.checkpoint import load_checkpoint
    from gnuradio.amcee.training.train import train

    train(_config(tiny_data, tmp_path / "base", scheme="joint"))
    base, _ = load_checkpoint(str(tmp_path / "base" / "best.pt"))
    # A vanishing learning rate: the fine-tuned weights must be the base's.
    train(_config(tiny_data, tmp_path / "ft", scheme="joint", distill=1.0, lr=1e-12,
                  init_from=str(tmp_path / "base" / "best.pt")))
    tuned, state = load_checkpoint(str(tmp_path / "ft" / "last.pt"))
    for (name, a), b in zip(base.named_parameters(), tuned.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert state["train_config"]["distill"] == 1.0


def test_init_from_another_exit_list_and_head(tiny_data, tmp_path, capsys):
    import torch

    from gnuradio.amcee.network.checkpoint import load_checkpoint, portable_state
    from gnuradio.amcee.training.train import train

    train(_config(tiny_data, tmp_path / "base", scheme="joint"))
    train(_config(tiny_data, tmp_path / "conv", exits=("V0",), exit_head="conv", scheme="joint", lr=1e-12,
                  init_from=str(tmp_path / "base" / "best.pt")))
    assert "new (not in it): head.pool1.conv" in capsys.readouterr().out
    base = portable_state(load_checkpoint(str(tmp_path / "base" / "best.pt"))[0])
    tuned, state = load_checkpoint(str(tmp_path / "conv" / "last.pt"))
    assert tuned.config.exit_head == "conv" and tuned.config.exits == ("V0",)
    for key, value in portable_state(tuned).items():
        if not key.startswith("head.pool1.") and key.endswith((".weight", ".bias")):  # BN statistics move
            assert torch.allclose(value.float(), base[key].float(), atol=1e-6), key


def test_frozen_backbone_trains_only_the_early_exit_heads(tiny_data, tmp_path):
    import torch

    from gnuradio.amcee.cli import main
    from gnuradio.amcee.network.checkpoint import load_checkpoint, portable_state
    from gnuradio.amcee.training.train import train

    train(_config(tiny_data, tmp_path / "base", exits=(), scheme="joint"))
    base, _ = load_checkpoint(str(tmp_path / "base" / "best.pt"))
    assert main(["train", "--data", tiny_data, "--out", str(tmp_path / "exits"), "--exits", "V0", "V1",
                 "--exit-head", "conv", "--scheme", "joint", "--distill", "1", "--init-from",
                 str(tmp_path / "base" / "best.pt"), "--freeze-backbone", "--epochs", "2",
                 "--batch-size", "100", "--lr", "3e-3", "--threads", "1", "--quiet"]) == 0
    tuned, state = load_checkpoint(str(tmp_path / "exits" / "last.pt"))
    assert state["train_config"]["select"] == "mean"  # the final exit's accuracy cannot change
    before, after = portable_state(base), portable_state(tuned)
    heads = [k for k in after if k.startswith("head.") and not k.startswith("head.final.")]
    assert heads and not any(k in before for k in heads)
    for key, value in after.items():  # weights and BatchNorm statistics of backbone and final exit
        if key not in heads:
            assert torch.equal(value, before[key]), key
    x = torch.randn(64, 2, 128)
    with torch.no_grad():
        assert torch.equal(tuned.eval().exit_logits(x)[-1], base.eval().exit_logits(x)[-1])
    metrics = [json.loads(line) for line in open(tmp_path / "exits" / "metrics.jsonl")]
    assert metrics[0]["val_acc"][-1] == metrics[1]["val_acc"][-1]
    assert metrics[0]["train_loss"][:2] != metrics[1]["train_loss"][:2]  # the heads learn

    for settings, message in (({}, "needs --init-from"),
                              (dict(init_from="x.pt", exits=()), "there are none"),
                              (dict(init_from="x.pt", teacher="t.pt", teacher_weight=1.0), "--teacher"),
                              (dict(init_from="x.pt", select="final"), "--select mean")):
        with pytest.raises(ValueError, match=message):
            _config(tiny_data, tmp_path / "refused", freeze_backbone="final", **settings)


def test_backbone_frozen_through_the_stem_trains_the_layers_after_it(tiny_data, tmp_path):
    import torch

    from gnuradio.amcee.cli import main
    from gnuradio.amcee.network.checkpoint import load_checkpoint, portable_state
    from gnuradio.amcee.training.train import train

    train(_config(tiny_data, tmp_path / "base", exits=(), scheme="joint"))
    base, _ = load_checkpoint(str(tmp_path / "base" / "best.pt"))
    assert main(["train", "--data", tiny_data, "--out", str(tmp_path / "stem"), "--exits", "V0", "V1",
                 "--exit-head", "conv", "--scheme", "joint", "--init-from", str(tmp_path / "base" / "best.pt"),
                 "--freeze-backbone", "conv1", "--teacher", str(tmp_path / "base" / "best.pt"),
                 "--teacher-weight", "1", "--epochs", "1", "--batch-size", "100", "--threads", "1",
                 "--quiet"]) == 0
    tuned, state = load_checkpoint(str(tmp_path / "stem" / "last.pt"))
    assert state["train_config"]["freeze_backbone"] == "conv1" and state["train_config"]["select"] == "final"
    before, after = portable_state(base), portable_state(tuned)
    stem = [k for k in after if k.startswith("conv1.")]
    assert stem and all(torch.equal(after[k], before[k]) for k in stem)  # BatchNorm statistics too
    for layer in ("conv2.0.weight", "conv6.0.weight", "head.final.1.weight"):
        assert not torch.equal(after[layer], before[layer]), layer

    with pytest.raises(ValueError, match="--freeze-backbone conv9: not a layer of this backbone"):
        train(_config(tiny_data, tmp_path / "refused", scheme="joint", exits=("V0",),
                      init_from=str(tmp_path / "base" / "best.pt"), freeze_backbone="conv9"))


def test_bad_arguments_are_clear_errors(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="distill"):
        _config(tiny_data, tmp_path, scheme="paper", distill=1.0)
    with pytest.raises(ValueError, match="scheme"):
        _config(tiny_data, tmp_path, scheme="greedy")
    with pytest.raises(ValueError, match="unknown exit head"):
        _config(tiny_data, tmp_path, exit_head="attention")
    with pytest.raises(ValueError, match="exit_weights"):
        _config(tiny_data, tmp_path, scheme="joint", exit_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="unknown exit point"):
        from gnuradio.amcee.training.train import train

        train(_config(tiny_data, tmp_path, exits=("V9",)))


def test_torchrun_two_processes(tiny_data, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "ddp"
    # Both ranks on this machine: gloo talks over loopback, whatever the hostname resolves to.
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    with socket.socket() as s:  # a free port for the static rendezvous on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [torchrun, "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), os.path.join(ROOT, "apps", "amcee"),
           "train", "--data", tiny_data, "--out", str(out), "--exits", "V0", "V1", "--scheme", "joint",
           "--epochs", "2", "--batch-size", "100", "--lr", "3e-3", "--threads", "1", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[:1500] + " ... " + proc.stderr[-1500:]
    config = json.load(open(out / "config.json"))
    assert config["world_size"] == 2
    metrics = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [m["epoch"] for m in metrics] == [1, 2]  # written once: rank 0 only
    assert all(len(m["val_acc"]) == 3 and len(m["train_acc"]) == 3 for m in metrics)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["exits"] == ["V0", "V1", "final"] and os.path.isfile(summary["model"])


def test_training_flushes_subnormal_numbers_and_restores_the_default(tiny_data, tmp_path, monkeypatch):
    """Weight decay leaves weights and Adam moments below float32's smallest
    normal number, where every operation is many times slower: training
    runs with them flushed to zero, and leaves the process as it found it."""
    import torch

    from gnuradio.amcee.training import train as training

    seen = {}

    def fake_train(config, resume, d, device):
        seen["product"] = float(torch.tensor([1e-40]) * torch.tensor([1.0]))
        return {}

    monkeypatch.setattr(training, "_train", fake_train)
    training.train(_config(tiny_data, tmp_path / "flush"))
    assert seen["product"] == 0.0
    assert float(torch.tensor([1e-40]) * torch.tensor([1.0])) > 0.0
