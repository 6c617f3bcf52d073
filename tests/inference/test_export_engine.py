"""Exported TorchScript models and the batched early-exit engine."""
import json
import math
import zipfile

import numpy as np
import pytest
import torch

from conftest import export_tiny_model, make_frames
from gnuradio.amcee.inference.engine import EarlyExitEngine, resolve_device
from gnuradio.amcee.inference.model_file import METADATA_FILE, ModelFileError, load_model
from gnuradio.amcee.labels import RML22_CLASSES
from gnuradio.amcee.network.export import rewrite_metadata
from gnuradio.amcee.training.exit_simulation import entropy10


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    return EarlyExitEngine(tiny_model_path, max_batch=64)


def test_metadata_travels_inside_the_file(tiny_model_path):
    with zipfile.ZipFile(tiny_model_path) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/" + METADATA_FILE))
        meta = json.loads(z.read(name))
    assert meta["classes"] == list(RML22_CLASSES)
    assert meta["frame_len"] == 128 and meta["num_exits"] == 3
    assert meta["exit_names"] == ["V0", "V1", "final"]
    assert meta["normalization"] == "l1" and meta["entropy_base"] == 10
    assert len(meta["thresholds"]) == 2 and meta["model_version"] == "test-untrained"


@pytest.mark.parametrize("exits, exit_head", [(("V1",), "paper"), (("V0", "V1", "V3"), "conv")])
def test_exported_model_equals_eager_model(tmp_path, exits, exit_head):
    model = export_tiny_model(tmp_path / "m.pt", exits=exits, thresholds=[0.9] * len(exits), exit_head=exit_head)
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(16, 2, 128)
    t, g = torch.tensor([0.9] * len(exits)), torch.tensor([math.inf] * len(exits))
    with torch.no_grad():
        eager = model(x, t, g)
        scripted = loaded.module(x, t, g)  # the inference rewrite (inference_graph.py)
        eager_exits = model.exit_logits(x)
        scripted_exits = loaded.module.exit_logits(x)
    for a, b in zip(eager, scripted):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    for a, b in zip(eager_exits, scripted_exits):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)  # logits are large in this model


def test_batched_equals_one_frame_at_a_time(engine):
    frames = make_frames(300, seed=7)
    batched = engine.classify(frames)
    assert set(batched.exits.tolist()) == {0, 1, 2}  # every exit is used
    single = [engine.classify(frames[i:i + 1]) for i in range(len(frames))]
    np.testing.assert_array_equal(batched.exits, [s.exits[0] for s in single])
    np.testing.assert_array_equal(batched.classes, [s.classes[0] for s in single])
    np.testing.assert_allclose(batched.probs, np.concatenate([s.probs for s in single]), atol=1e-5)
    np.testing.assert_allclose(batched.entropy, np.concatenate([s.entropy for s in single]), atol=1e-5)


def test_threshold_zero_is_the_backbone_alone(engine):
    frames = make_frames(200, seed=3)
    result = engine.classify(frames, thresholds=0.0)
    assert (result.exits == engine.num_exits - 1).all()
    backbone, _ = engine.backbone_probs(frames)
    np.testing.assert_allclose(result.probs, backbone, atol=1e-5)


@pytest.mark.parametrize("threshold", [math.log10(10), 5.0])
def test_threshold_at_or_above_log10_classes_exits_first(engine, threshold):
    result = engine.classify(make_frames(100, seed=4), thresholds=threshold)
    assert (result.exits == 0).all()
    first_exit, _ = engine.all_exit_probs(make_frames(100, seed=4))
    np.testing.assert_allclose(result.probs, first_exit[0], atol=1e-5)


def test_give_up_sends_unsure_frames_out_and_can_be_disabled(engine):
    frames = make_frames(200, seed=9)
    probs, _ = engine.all_exit_probs(frames)
    e0 = entropy10(probs[0])
    cut = float(np.sort(e0)[100] + np.sort(e0)[101]) / 2  # between two frames' entropies
    result = engine.classify(frames, thresholds=0.0, give_up=[cut, None])
    np.testing.assert_array_equal(result.exits == 0, e0 >= cut)
    assert (result.exits[e0 < cut] == 2).all()
    assert engine.give_up == (math.inf, math.inf)  # per-call values do not stick
    with pytest.raises(ValueError, match="give-up"):
        engine.set_give_up([float("nan"), 1.0])
    with pytest.raises(ValueError, match="give-up list"):
        engine.set_give_up([1.0])


@pytest.mark.parametrize("leaving", [1, 2, 30])
def test_few_rows_leaving_ride_along_with_the_same_results(engine, leaving):
    """Below MIN_SHARE_TO_GATHER of a batch (64 rows) leaving the first exit, the
    rows are not gathered but ride along; every frame's result stays the one
    it gets alone, and frames that left are not answered again later."""
    frames = make_frames(64, seed=11)
    probs, _ = engine.all_exit_probs(frames)
    e0 = entropy10(probs[0])
    order = np.sort(e0)
    cut = float(order[leaving - 1] + order[leaving]) / 2
    batched = engine.classify(frames, thresholds=[cut, 0.0])
    assert (batched.exits == 0).sum() == leaving
    single = [engine.classify(frames[i:i + 1], thresholds=[cut, 0.0]) for i in range(len(frames))]
    np.testing.assert_array_equal(batched.exits, [s.exits[0] for s in single])
    np.testing.assert_allclose(batched.probs, np.concatenate([s.probs for s in single]), atol=1e-5)
    np.testing.assert_allclose(batched.probs[batched.exits == 0], probs[0][e0 <= cut], atol=1e-5)


def test_complex_and_rml_layouts_agree(engine):
    frames = make_frames(50, seed=5)
    rml = np.stack([frames.real, frames.imag], axis=1).astype(np.float32)
    a, b = engine.classify(frames), engine.classify(rml)
    np.testing.assert_array_equal(a.exits, b.exits)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    c = engine.classify(rml.reshape(50, 256))  # flat file_source layout
    np.testing.assert_array_equal(a.exits, c.exits)


def test_l1_normalisation_makes_scale_irrelevant(engine):
    frames = make_frames(40, seed=6)
    a, b = engine.classify(frames), engine.classify(frames * 1000)
    np.testing.assert_array_equal(a.exits, b.exits)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)


def test_invalid_frames_never_reach_the_network(engine):
    frames = make_frames(6, seed=8)
    frames[1] = 0
    frames[2, 5] = np.nan
    frames[3, 0] = np.inf
    result = engine.classify(frames)
    assert result.valid.tolist() == [True, False, False, False, True, True]
    assert result.exits[1:4].tolist() == [-1, -1, -1]
    assert result.classes[1:4].tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(engine.classify(frames[[0, 4, 5]]).exits, result.exits[[0, 4, 5]])


def test_wrong_frame_size_is_refused(engine):
    with pytest.raises(ValueError, match=r"\[N, 128\]"):
        engine.classify(make_frames(3, frame_len=64))
    with pytest.raises(ValueError, match="I row, Q row"):
        engine.classify(np.zeros((3, 3, 128), np.float32))


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "finite"), (-0.1, ">= 0"), (float("inf"), "finite"),
    ([0.1, 0.2, 0.3], "has 2 early exit"), ("high", "number or a list"), ([0.1, [None] * 10], "lists of 10 numbers"),
    # class thresholds (one per class of the 10): wrong length, bad values, not numbers
    ([[0.1] * 9, 0.2], "have 9 values but the model has 10 classes"),
    ([[0.1] * 9 + [float("nan")], 0.2], "finite"), ([[0.1] * 9 + [-1.0], 0.2], ">= 0"),
    ([["a"] * 10, 0.2], "lists of 10 numbers"), ([[0.1] * 10], "has 1 values"),
])
def test_bad_thresholds_are_refused_and_change_nothing(engine, bad, message):
    before = engine.thresholds
    with pytest.raises(ValueError, match=message):
        engine.set_thresholds(bad)
    assert engine.thresholds == before


def test_unavailable_or_unknown_device_is_refused():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("auto").type in ("cpu", "cuda")


def _foreign_torchscript(path):
    torch.jit.script(torch.nn.Linear(4, 2)).save(str(path))


def _state_dict_file(path):
    torch.save({"weight": torch.zeros(2)}, str(path))


def _wrong_metadata(path, tiny):
    loaded = load_model(tiny)
    loaded.module.save(str(path), _extra_files={METADATA_FILE: json.dumps({"format": "something-else"})})


def _bad_json(path, tiny):
    loaded = load_model(tiny)
    loaded.module.save(str(path), _extra_files={METADATA_FILE: "{not json"})


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("random", "not a readable TorchScript"),
    ("truncated", "not a readable TorchScript"),
    ("empty", "not a readable TorchScript"),
    ("foreign", "not an amcee model"),
    ("state_dict", "not a readable TorchScript|not an amcee model"),
    ("wrong_metadata", "metadata format"),
    ("bad_json", "not valid JSON"),
])
def test_bad_model_files_give_clear_errors(tmp_path, tiny_model_path, case, message):
    path = tmp_path / "model.pt"
    if case == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "truncated":
        data = open(tiny_model_path, "rb").read()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "foreign":
        _foreign_torchscript(path)
    elif case == "state_dict":
        _state_dict_file(path)
    elif case == "wrong_metadata":
        _wrong_metadata(path, tiny_model_path)
    elif case == "bad_json":
        _bad_json(path, tiny_model_path)
    with pytest.raises(ModelFileError, match=message):
        EarlyExitEngine(str(path))


def test_rewrite_metadata_sets_new_default_thresholds(tmp_path, tiny_model_path):
    out = tmp_path / "calibrated.pt"
    rewrite_metadata(tiny_model_path, {"thresholds": [0.1, 0.2], "give_up": [0.9, None]}, out_path=str(out))
    assert load_model(out).default_thresholds == (0.1, 0.2)
    assert load_model(out).default_give_up == (0.9, math.inf)
    with pytest.raises(ValueError, match="finite"):
        rewrite_metadata(tiny_model_path, {"thresholds": [float("nan"), 0.2]}, out_path=str(out))
