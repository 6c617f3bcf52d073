"""Atomic writes: a writer that fails or is killed half-way leaves the earlier
file whole, and commands do not replace earlier work unless told so."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from tiny_data import make_tiny_dataset


def test_a_writer_that_raises_half_way_leaves_the_old_file(tmp_path):
    from gnuradio.amcee.atomic import atomic_open

    target = tmp_path / "f.json"
    target.write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_open(target) as f:
            f.write("new" * 1000)
            raise OSError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.json"]  # no temporary file left behind


def test_a_complete_write_replaces_and_keeps_the_mode(tmp_path):
    from gnuradio.amcee.atomic import atomic_open, write_atomic

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_open(target, "wb") as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and (os.stat(target).st_mode & 0o777) == 0o640
    write_atomic(tmp_path / "sub" / "g.bin", lambda p: open(p, "wb").write(b"x"))
    assert (tmp_path / "sub" / "g.bin").read_bytes() == b"x"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(target, "a"):
            pass


_KILLED_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from gnuradio.amcee.atomic import atomic_open
with atomic_open(sys.argv[1], "wb") as f:
    f.write(b"n" * 1_000_000)
    f.flush()
    print("WRITING", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    import gnuradio.amcee as package

    target = tmp_path / "model.pt"
    target.write_bytes(b"old model")
    root = os.path.dirname(os.path.dirname(os.path.dirname(package.__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), root], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "WRITING"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old model"


def test_a_model_write_that_fails_half_way_leaves_the_model_loadable(exported, tmp_path, monkeypatch):
    """A full disk during the write of a model file: the earlier file stays as it was."""
    from gnuradio.amcee.inference.model_file import load_model
    from gnuradio.amcee.network import export

    target = tmp_path / "m.pt"
    target.write_bytes(exported.read_bytes())
    before = target.read_bytes()
    loaded = load_model(str(target))
    script_class = type(loaded.module)  # torch.jit.RecursiveScriptModule
    real_save = script_class.save

    def save_then_fail(module, path, **kw):
        real_save(module, path, **kw)
        with open(path, "r+b") as f:  # what a full disk leaves: the first bytes only
            f.truncate(os.path.getsize(path) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(script_class, "save", save_then_fail)
    with pytest.raises(OSError, match="No space"):
        export.rewrite_metadata(str(target), {"thresholds": [0.1]})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert load_model(str(target)).meta["thresholds"] == loaded.meta["thresholds"]
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_commands_refuse_to_replace_earlier_files_without_overwrite(exported, tmp_path, capsys):
    from gnuradio.amcee.cli import main

    data = tmp_path / "d.npz"
    make_tiny_dataset(data, frames_per_key=2)
    (tmp_path / "rec.sigmf-meta").write_text("earlier")
    assert main(["export-stream", str(data), "--out", str(tmp_path / "rec")]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "rec.sigmf-meta").read_text() == "earlier"
    assert main(["export-stream", str(data), "--out", str(tmp_path / "rec"), "--overwrite"]) == 0
    assert json.load(open(tmp_path / "rec.sigmf-meta"))["global"]["amcee:num_frames"] == 60

    model = tmp_path / "m.pt"
    model.write_bytes(exported.read_bytes())
    before = model.read_bytes()
    assert main(["calibrate", str(model), "--out", str(model), "--data", str(data)]) == 2
    assert "--overwrite" in capsys.readouterr().err and model.read_bytes() == before


def test_train_refuses_an_earlier_run_and_a_resumed_run_has_each_epoch_once(tmp_path):
    from gnuradio.amcee.atomic import FileExistsRefusal
    from gnuradio.amcee.network.checkpoint import load_checkpoint
    from gnuradio.amcee.training.train import TrainConfig, train

    data = tmp_path / "d.npz"
    make_tiny_dataset(data, frames_per_key=10)
    run = tmp_path / "run"
    config = TrainConfig(data=str(data), out_dir=str(run), exits=("V0",), scheme="joint", epochs=1,
                         batch_size=100, threads=1, progress=False, eval_batch=512)
    train(config)
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt", "model.pt")}
    with pytest.raises(FileExistsRefusal, match="--resume"):
        train(config)
    assert {name: (run / name).read_bytes() for name in before} == before

    # A run killed after writing epoch 2's metrics but before its checkpoint:
    # the line of epoch 2 is there, last.pt is still epoch 1's.
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(lines + [lines[0].replace('"epoch": 1', '"epoch": 2')]) + "\n")
    _, state = load_checkpoint(str(run / "last.pt"))
    resumed = TrainConfig(**{**state["train_config"], "epochs": 2})
    train(resumed, resume=str(run / "last.pt"))
    epochs = [json.loads(line)["epoch"] for line in open(run / "metrics.jsonl")]
    assert epochs == [1, 2]
