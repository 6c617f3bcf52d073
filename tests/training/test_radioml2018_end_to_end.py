"""A RadioML-2018-shaped HDF5 file (24 classes, frames of 1024 samples) goes
the whole way with the same commands as RML22: `amcee train` builds and
exports a network for 1024 samples and 24 classes, `eval`, `calibrate` and
`replay` score it, the classifier block runs it in a flowgraph on vectors of
1024 (in GRC its ports take their size from the model file), and a model and
a dataset that disagree on the frame length are refused with one clear line."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("h5py", reason="scripts/setup.sh installs python3-h5py")

from conftest import ROOT  # noqa: E402
from gnuradio import blocks, gr  # noqa: E402
from gnuradio.amcee import classification_sink, classifier, dataset_source  # noqa: E402
from gnuradio.amcee.blocks.schema import CLASSIFICATION_PORT  # noqa: E402
from gnuradio.amcee.cli import main  # noqa: E402
from gnuradio.amcee.data.dataset import Dataset  # noqa: E402
from gnuradio.amcee.data.radioml2018 import RML2018_CLASSES, save_radioml2018  # noqa: E402
from gnuradio.amcee.inference.model_file import read_model_archive  # noqa: E402
from gnuradio.amcee.tools.replay import replay  # noqa: E402

FRAME_LEN = 1024
SNRS = (0, 20)
PER_GROUP = 6  # the fewest frames per (class, SNR) the paper's split accepts: 288 frames


@pytest.fixture(scope="module")
def rml2018_file(tmp_path_factory):
    n = len(RML2018_CLASSES) * len(SNRS) * PER_GROUP
    labels = np.repeat(np.arange(len(RML2018_CLASSES)), len(SNRS) * PER_GROUP).astype(np.int64)
    snrs = np.tile(np.repeat(np.float32(SNRS), PER_GROUP), len(RML2018_CLASSES))
    frames = np.random.default_rng(4).standard_normal((n, 2, FRAME_LEN)).astype(np.float32)
    path = tmp_path_factory.mktemp("rml2018") / "GOLD_XYZ_OSC.0001_1024.hdf5"
    save_radioml2018(path, Dataset(frames, labels, snrs, RML2018_CLASSES, {}))
    return str(path)


@pytest.fixture(scope="module")
def trained(rml2018_file, tmp_path_factory):
    """The run folder of one epoch of `amcee train` on the file."""
    out = tmp_path_factory.mktemp("run") / "rml2018"
    assert main(["train", "--data", rml2018_file, "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--quiet"]) == 0
    return out


def test_train_builds_and_exports_a_network_for_the_datasets_frames_and_classes(trained):
    _, meta = read_model_archive(trained / "model.pt")
    assert meta["frame_len"] == FRAME_LEN and tuple(meta["classes"]) == RML2018_CLASSES
    config = json.loads((trained / "config.json").read_text())
    assert config["model"]["frame_len"] == FRAME_LEN and config["model"]["num_classes"] == 24
    assert classifier.model_frame_len(str(trained / "model.pt")) == FRAME_LEN


def test_the_block_runs_the_model_on_vectors_of_1024(trained, rml2018_file):
    fg = gr.top_block()
    source = dataset_source(rml2018_file)
    clf = classifier(model_path=str(trained / "model.pt"))  # frame length 0: the model's
    sink = classification_sink(clf.classes())
    fg.connect(source, clf, blocks.null_sink(gr.sizeof_gr_complex * FRAME_LEN))
    fg.msg_connect(clf, CLASSIFICATION_PORT, sink, "in")
    assert clf.frame_len == FRAME_LEN
    assert clf.input_signature().sizeof_stream_item(0) == gr.sizeof_gr_complex * FRAME_LEN
    fg.run()
    records = sink.records()
    assert len(records["offset"]) == source.num_frames() == 288
    assert (records["exit"] >= 0).all()
    np.testing.assert_array_equal(records["true_cls"], np.repeat(np.arange(24), 12))


def _grc_flowgraph(path, dataset_path, model_path):
    """dataset_source (1024) -> classifier (Frame Length 0) -> null sink (1024);
    GRC sizes the classifier's ports from the model file the parameter names."""
    import yaml

    def block(name, block_id, parameters, x):
        return {"name": name, "id": block_id, "parameters": parameters,
                "states": {"coordinate": [x, 100], "rotation": 0, "state": "enabled"}}

    flowgraph = {
        "options": {"parameters": {"id": "rml2018_fg", "generate_options": "no_gui", "output_language": "python",
                                   "run_options": "run", "title": "rml2018"},
                    "states": {"coordinate": [8, 8], "rotation": 0, "state": "enabled"}},
        "blocks": [
            block("model_path", "parameter", {"type": "str", "value": repr(str(model_path))}, 200),
            block("source", "amcee_dataset_source", {"path": repr(dataset_path), "frame_len": "1024",
                                                     "layout": "complex"}, 300),
            block("clf", "amcee_classifier", {"model_path": "model_path", "frame_len": "0",
                                              "input_format": "complex"}, 500),
            block("sink", "blocks_null_sink", {"type": "complex", "vlen": "1024"}, 700),
        ],
        "connections": [["source", "0", "clf", "0"], ["clf", "0", "sink", "0"]],
        "metadata": {"file_format": 1},
    }
    path.write_text(yaml.safe_dump(flowgraph))
    return path


def _grcc(grc_path, out_dir):
    # grcc evaluates the ports' vlen with amcee imported, which needs torch:
    # the venv's Python, as the gnuradio-companion launcher of scripts/setup.sh runs GRC.
    return subprocess.run([sys.executable, shutil.which("grcc"), "-o", str(out_dir), str(grc_path)],
                          capture_output=True, text=True, timeout=120)


def test_grc_sizes_the_classifier_ports_from_the_model(trained, rml2018_file, tmp_path, tiny_model_path):
    grc = _grc_flowgraph(tmp_path / "rml2018.grc", rml2018_file, trained / "model.pt")
    compiled = _grcc(grc, tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    run = subprocess.run([sys.executable, str(tmp_path / "rml2018_fg.py")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "all 288 frames sent" in run.stdout + run.stderr
    # The same flowgraph with a model of 128 samples: its ports of 128 complex
    # samples (1024 bytes) no longer fit the source's 1024 samples (8192 bytes).
    other = tmp_path / "other"
    other.mkdir()
    refused = _grcc(_grc_flowgraph(other / "rml2018.grc", rml2018_file, tiny_model_path), other)
    assert refused.returncode != 0
    assert 'Source IO size "8192" does not match sink IO size "1024"' in refused.stdout + refused.stderr


def test_eval_calibrate_and_replay_score_the_file(trained, rml2018_file, tmp_path, capsys):
    model = str(trained / "model.pt")
    assert main(["eval", model, "--data", rml2018_file, "--out", str(tmp_path / "eval"), "--no-timing",
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["classes"] == list(RML2018_CLASSES) and report["frames"] == 48  # the test split: 2 per group
    calibrated = tmp_path / "calibrated.pt"
    assert main(["calibrate", model, "--data", rml2018_file, "--out", str(calibrated), "--quiet"]) == 0
    assert read_model_archive(calibrated)[1]["frame_len"] == FRAME_LEN
    predictions, replayed = replay(rml2018_file, model_path=model, split="test")
    assert replayed["frames"] == 48 and (predictions["label"] >= 0).all()


@pytest.mark.parametrize("command", ["eval", "calibrate", "bench"])
def test_a_model_of_another_frame_length_is_refused_in_one_line(command, rml2018_file, tiny_model_path, tmp_path,
                                                                capsys):
    args = {"eval": ["eval", tiny_model_path, "--data", rml2018_file, "--out", str(tmp_path / "e"), "--no-timing"],
            "calibrate": ["calibrate", tiny_model_path, "--data", rml2018_file, "--out", str(tmp_path / "c.pt")],
            "bench": ["bench", tiny_model_path, "--data", rml2018_file, "--sections", "batch_sizes"]}[command]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"amcee {command}: error: ")
    assert re.search(f"{re.escape(rml2018_file)}.* has frames of 1024 samples, (the )?model .*takes 128", err), err


def test_a_dataset_with_a_class_the_model_lacks_is_scored_with_a_warning(tiny_model_path, tmp_path, capsys):
    """RadioML 2016's 11 classes under an RML22 model: AM-SSB is named and left out."""
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.labels import RML2016_CLASSES

    per_group = 6
    labels = np.repeat(np.arange(len(RML2016_CLASSES)), per_group).astype(np.int64)
    frames = np.random.default_rng(5).standard_normal((len(labels), 2, 128)).astype(np.float32)
    data = tmp_path / "rml2016_like.npz"
    save_dataset(data, Dataset(frames, labels, np.zeros(len(labels), np.float32), RML2016_CLASSES, {}))
    capsys.readouterr()
    assert main(["eval", tiny_model_path, "--data", str(data), "--out", str(tmp_path / "e"), "--split", "all",
                 "--no-timing", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"has no class AM-SSB of the dataset ({data}): its 6 frames of that class are left out" in err
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["frames"] == len(labels) - per_group


def test_the_demo_frames_its_stream_to_the_models_length(tmp_path):
    from conftest import export_tiny_model
    from gnuradio.amcee.tools.demo import demo_flowgraph

    path = tmp_path / "rml22_1024.pt"
    export_tiny_model(path, exits=("V1",), frame_len=FRAME_LEN)
    fg = demo_flowgraph(model_path=str(path), max_frames=8, segment_frames=4)
    assert fg.classifier.frame_len == FRAME_LEN
    fg.run()
    assert len(fg.sink.records()["exit"]) == 8


def test_the_demo_refuses_a_model_of_classes_it_cannot_transmit(trained):
    from gnuradio.amcee.tools.demo import demo_flowgraph

    with pytest.raises(ValueError, match="the demo transmits RML22's classes .* also has OOK, 4ASK"):
        demo_flowgraph(model_path=str(trained / "model.pt"), max_frames=8)


def test_bench_skips_the_shipped_reference_for_1024_sample_frames(trained, rml2018_file, tiny_model_path):
    """The shipped reference takes RML22's 128 samples: a RadioML 2018 model's
    bench says so instead of failing; a reference given by hand must fit."""
    from gnuradio.amcee.tools.bench import run_bench

    model = str(trained / "model.pt")
    section = run_bench(model, data=rml2018_file, frames=64, repeats=1, sections=["reference"])["reference"]
    assert section["skipped"].endswith("takes frames of 128 samples, the model 1024: give --reference")
    with pytest.raises(ValueError, match="takes frames of 128 samples, the model 1024"):
        run_bench(model, data=rml2018_file, frames=64, repeats=1, sections=["reference"], reference=tiny_model_path)
