"""Every example flowgraph compiles with grcc; the hardware-free ones run."""
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
HARDWARE_BLOCKS = ("osmosdr_", "uhd_", "soapy_", "iio_", "audio_")
GUI_OPTIONS = ("qt_gui",)


def _flowgraph(path):
    return yaml.safe_load(path.read_text())


def _needs_hardware(fg):
    return any(b["id"].startswith(HARDWARE_BLOCKS) for b in fg["blocks"] if b.get("states", {}).get("state") != "disabled")


def _compile(path, out_dir):
    result = subprocess.run(["grcc", "-o", str(out_dir), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return out_dir / (_flowgraph(path)["options"]["parameters"]["id"] + ".py")


@pytest.fixture(scope="module")
def small_replay_dataset(tmp_path_factory):
    """A 200-frame dataset (10 classes x 2 SNRs x 10) for examples that replay one."""
    import numpy as np

    from gnuradio.amcee.datasets import Dataset, save_dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(3)
    ds = Dataset(rng.standard_normal((200, 2, 128)).astype(np.float32),
                 np.repeat(np.arange(10), 20).astype(np.int64),
                 np.tile(np.repeat(np.float32([0, 10]), 10), 10), RML22_CLASSES, {})
    path = tmp_path_factory.mktemp("examples") / "small.npz"
    save_dataset(path, ds)
    return str(path)


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_with_grcc(path, tmp_path):
    assert _compile(path, tmp_path).is_file()


@pytest.mark.parametrize("path", [p for p in EXAMPLES
                                  if not _needs_hardware(_flowgraph(p))
                                  and _flowgraph(p)["options"]["parameters"]["generate_options"] not in GUI_OPTIONS],
                         ids=lambda p: p.name)
def test_headless_example_runs_to_completion(path, tmp_path, tiny_model_path, small_replay_dataset):
    script = _compile(path, tmp_path)
    params = {b["name"]: b["parameters"] for b in _flowgraph(path)["blocks"] if b["id"] == "parameter"}
    args = []
    if "model_path" in params:
        args += ["--model-path", tiny_model_path]
    if "num_frames" in params:
        args += ["--num-frames", "50"]
    if "dataset_path" in params:
        args += ["--dataset-path", small_replay_dataset]
    result = subprocess.run([sys.executable, str(script)] + args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
