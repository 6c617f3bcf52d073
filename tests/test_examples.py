"""Every example flowgraph compiles with grcc and runs with any model: the
hardware-free ones run with a 3-exit (V0, V1, final) and a 2-exit (V1, final)
model, the QT ones briefly offscreen; GRC draws no block over another."""
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import export_tiny_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
HARDWARE_BLOCKS = ("osmosdr_", "uhd_", "soapy_", "iio_", "audio_")
GUI_OPTIONS = ("qt_gui",)
MODELS = {"3 exits": ("V0", "V1"), "2 exits": ("V1",)}  # early exits; every model adds "final"
# A font this much larger than GRC's default (another desktop, another font)
# still leaves every block clear of the others.
LAYOUT_FONT_MARGIN = 1.2


def _flowgraph(path):
    return yaml.safe_load(path.read_text())


def _blocks(fg, block_id):
    return [b for b in fg["blocks"] if b["id"] == block_id and b.get("states", {}).get("state") != "disabled"]


def _needs_hardware(fg):
    return any(b["id"].startswith(HARDWARE_BLOCKS) for b in fg["blocks"] if b.get("states", {}).get("state") != "disabled")


def _kind(path):
    fg = _flowgraph(path)
    if _needs_hardware(fg):
        return "hardware"
    return "gui" if fg["options"]["parameters"]["generate_options"] in GUI_OPTIONS else "headless"


def _examples(kind):
    return [p for p in EXAMPLES if _kind(p) == kind]


def _compile(path, out_dir):
    result = subprocess.run(["grcc", "-o", str(out_dir), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return out_dir / (_flowgraph(path)["options"]["parameters"]["id"] + ".py")


@pytest.fixture(scope="module")
def small_replay_dataset(tmp_path_factory):
    """A 200-frame dataset (10 classes x 2 SNRs x 10) for examples that replay one."""
    import numpy as np

    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(3)
    ds = Dataset(rng.standard_normal((200, 2, 128)).astype(np.float32),
                 np.repeat(np.arange(10), 20).astype(np.int64),
                 np.tile(np.repeat(np.float32([0, 10]), 10), 10), RML22_CLASSES, {})
    path = tmp_path_factory.mktemp("examples") / "small.npz"
    save_dataset(path, ds)
    return str(path), ds


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (path, exit names)}: tiny models with 3 and 2 exits."""
    folder = tmp_path_factory.mktemp("example_models")
    out = {}
    for name, early in MODELS.items():
        path = folder / f"{len(early) + 1}exits.pt"
        export_tiny_model(path, exits=early)
        out[name] = (str(path), [*early, "final"])
    return out


def _arguments(path, model_path, dataset_path):
    params = {b["name"] for b in _blocks(_flowgraph(path), "parameter")}
    args = ["--model-path", model_path]
    if "num_frames" in params:
        args += ["--num-frames", "50"]
    if "dataset_path" in params:
        args += ["--dataset-path", dataset_path]
    return args


def test_there_are_examples():
    assert EXAMPLES and _examples("headless") and _examples("gui")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_with_grcc(path, tmp_path):
    assert _compile(path, tmp_path).is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_follows_its_model_path_parameter(path):
    """What lets an example run with any model, hardware or not: one model_path
    parameter feeds every classifier and display, and no classifier pins the
    number of exits (0 = the model's; the decisions go out on "classification")."""
    fg = _flowgraph(path)
    assert [b["name"] for b in _blocks(fg, "parameter") if b["name"] == "model_path"] == ["model_path"]
    classifiers, displays = _blocks(fg, "amcee_classifier"), _blocks(fg, "amcee_display")
    assert classifiers
    for block in classifiers + displays:
        assert block["parameters"]["model_path"] == "model_path", block["name"]
    for block in classifiers:
        assert int(block["parameters"]["num_exits"]) == 0, block["name"]
    assert not [c for c in fg["connections"] if re.fullmatch(r"exit\d+", str(c[1]))]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", _examples("headless"), ids=lambda p: p.name)
def test_headless_example_runs_with_any_model(path, model, tmp_path, models, small_replay_dataset):
    script = _compile(path, tmp_path)
    model_path, exit_names = models[model]
    result = subprocess.run([sys.executable, str(script)] + _arguments(path, model_path, small_replay_dataset[0]),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # Every example prints its decisions (message_debug): they come from the
    # model's exits.
    exits = {int(k) for k in re.findall(r"\(exit \. (-?\d+)\)", result.stdout)}
    assert exits and exits <= set(range(len(exit_names))), result.stdout[-2000:]


@pytest.mark.parametrize("split", ["all", "test", "val"])
def test_replay_dataset_replays_the_split_given(split, tmp_path, models, small_replay_dataset):
    from gnuradio.amcee.data.dataset import split_indices

    path = ROOT / "examples" / "replay_dataset.grc"
    script = _compile(path, tmp_path)
    dataset_path, ds = small_replay_dataset
    result = subprocess.run([sys.executable, str(script), "--split", split]
                            + _arguments(path, models["2 exits"][0], dataset_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    expected = len(split_indices(ds, split))
    assert expected < len(ds) or split == "all"
    assert f"all {expected} frames sent" in result.stdout + result.stderr, result.stderr[-2000:]


# Runs a generated QT flowgraph offscreen until its displays have shown 20
# decisions, then prints what they show. The flowgraph's class is built as its
# main() would, without main()'s endless event loop.
QT_RUNNER = r"""
import importlib.util, json, re, sys, time
from PyQt5 import Qt
from gnuradio import amcee

script, name, model_path = sys.argv[1:4]
app = Qt.QApplication([name])
spec = importlib.util.spec_from_file_location(name, script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = getattr(module, name)(model_path=model_path)
displays = [b for b in vars(tb).values() if isinstance(b, amcee.display)]
tb.start()
tb.show()
deadline = time.monotonic() + 60
def shown(d):
    m = re.match(r"(\d+) frames", d.widget().details.text())
    return int(m.group(1)) if m else 0
while time.monotonic() < deadline and not all(shown(d) >= 20 for d in displays):
    app.processEvents()
    time.sleep(0.02)
out = [{"exit_names": d.exit_names, "legend": d.widget().exits.exit_names, "frames": shown(d),
        "decision": d.widget().decision.text(), "size": [d.widget().grab().width(), d.widget().grab().height()]}
       for d in displays]
tb.stop()
tb.wait()
print(json.dumps(out))
"""


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", _examples("gui"), ids=lambda p: p.name)
def test_qt_example_runs_offscreen_and_shows_the_models_exits(path, model, tmp_path, models):
    script = _compile(path, tmp_path)
    model_path, exit_names = models[model]
    result = subprocess.run([sys.executable, "-c", QT_RUNNER, str(script), script.stem, model_path],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    displays = json.loads(result.stdout.strip().splitlines()[-1])
    assert displays, "the example has no amcee display"
    for shown in displays:
        assert shown["exit_names"] == shown["legend"] == exit_names
        assert shown["frames"] >= 20, result.stderr[-2000:]
        assert re.search(">exit (" + "|".join(exit_names) + ")<", shown["decision"]), shown["decision"]
        assert min(shown["size"]) > 0


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run (Debian package xvfb) is missing")
def test_no_block_covers_another_in_grc():
    """GRC's own canvas code measures every block (tests/grc_extents.py); with
    each block grown by LAYOUT_FONT_MARGIN about its corner, none touches another."""
    result = subprocess.run(["xvfb-run", "-a", sys.executable, str(ROOT / "tests" / "grc_extents.py"),
                             *map(str, EXAMPLES)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    extents = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(extents) == sorted(map(str, EXAMPLES))
    overlaps = []
    for path, blocks in extents.items():
        grown = {}
        for name, (x0, y0, x1, y1, x, y) in blocks.items():
            s = LAYOUT_FONT_MARGIN
            grown[name] = (x + (x0 - x) * s, y + (y0 - y) * s, x + (x1 - x) * s, y + (y1 - y) * s)
        names = sorted(grown)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                A, B = grown[a], grown[b]
                if A[0] < B[2] and B[0] < A[2] and A[1] < B[3] and B[1] < A[3]:
                    overlaps.append(f"{pathlib.Path(path).name}: {a} {b}")
    assert not overlaps, overlaps
