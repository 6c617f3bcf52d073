"""Booleans are refused wherever a number is meant, and an absurd max_batch
is refused when the engine is built, with a clear error."""
import pytest


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.export import export_model

    path = tmp_path_factory.mktemp("model") / "m.pt"
    export_model(EarlyExitNet(ModelConfig(exits=("V0", "V1"), num_classes=10, frame_len=128)).eval(),
                 str(path), RML22_CLASSES, 0.3)
    return str(path)


@pytest.mark.parametrize("setter, value", [
    ("set_thresholds", [True, False]), ("set_thresholds", True), ("set_thresholds", [[True] * 10, 0.1]),
    ("set_give_up", [True, None]), ("set_give_up", True),
])
def test_booleans_are_no_numbers(model_path, setter, value):
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    engine = EarlyExitEngine(model_path)
    before = engine.thresholds, engine.give_up, engine.uses_snr_table
    with pytest.raises(ValueError, match="must be"):
        getattr(engine, setter)(value)
    assert (engine.thresholds, engine.give_up, engine.uses_snr_table) == before


@pytest.mark.parametrize("value, message", [(True, "whole number"), (2.5, "whole number"), ("8", "whole number"),
                                            (0, r"\[1, 65536\]"), (10 ** 9, r"\[1, 65536\]")])
def test_absurd_max_batch_is_refused_at_construction(model_path, value, message):
    from gnuradio.amcee.blocks.batching import LatencyBoundBatching
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    with pytest.raises(ValueError, match="max_batch must be .*" + message):
        EarlyExitEngine(model_path, max_batch=value)
    with pytest.raises(ValueError, match="max_batch"):
        LatencyBoundBatching(value)


def test_max_latency_is_no_boolean():
    from gnuradio.amcee.blocks.batching import LatencyBoundBatching

    batching = LatencyBoundBatching(16, 50.0)
    for value in (True, "50"):
        with pytest.raises(ValueError, match="max_latency must be a positive number"):
            batching.set_max_latency(value)
    assert batching.max_latency_s == 0.05
    assert LatencyBoundBatching(16.0).max_batch == 16


def test_default_batch_is_sized_by_the_first_layer(tmp_path):
    """Without max_batch the engine takes as many frames as keep its first
    convolution's output within the budget: the paper's 64 channels on 128
    samples 256 frames, a 16-channel stem 1024 (the cap), 1024-sample frames 32."""
    from gnuradio.amcee.inference.engine import (BATCH_ACTIVATION_BUDGET, MAX_DEFAULT_BATCH, EarlyExitEngine,
                                                 default_batch)
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.export import export_model

    assert default_batch(64, 128) == 256 and default_batch(16, 128) == MAX_DEFAULT_BATCH == 1024
    assert default_batch(64, 1024) == 32 and default_batch(48, 128) == 256  # a power of two within the budget
    assert default_batch(64, BATCH_ACTIVATION_BUDGET) == 1                  # never below one frame
    for stem, frame_len, want in ((64, 128, 256), (16, 128, 1024), (64, 1024, 32)):
        path = tmp_path / f"m{stem}_{frame_len}.pt"
        export_model(EarlyExitNet(ModelConfig(exits=("V0",), num_classes=10, frame_len=frame_len,
                                              stem_channels=stem)).eval(), str(path), RML22_CLASSES, 0.3)
        engine = EarlyExitEngine(str(path))
        assert engine.model.stem_channels == stem and engine.max_batch == want
        assert EarlyExitEngine(str(path), max_batch=7).max_batch == 7
