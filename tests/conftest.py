"""Test setup: test the source tree, not whatever copy is installed.

`gnuradio/__init__.py` extends its package path over every `gnuradio/` folder
on sys.path (pkgutil.extend_path), so a folder `gnuradio/amcee -> python/amcee`
placed first on sys.path makes `from gnuradio import amcee` load the sources.
The same path goes into PYTHONPATH for flowgraphs the tests run as
subprocesses, and GRC_BLOCKS_PATH points grcc at the source YAML.
"""
import os
import sys
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG_ROOT = ROOT / "build" / "pytest-pkgroot"


def _link_sources():
    link = PKG_ROOT / "gnuradio" / "amcee"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        if link.exists():
            raise RuntimeError(f"{link} exists and is not a symlink")
        link.symlink_to(ROOT / "python" / "amcee")


_link_sources()
sys.path.insert(0, str(PKG_ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(PKG_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ["GRC_BLOCKS_PATH"] = str(ROOT / "grc")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "gnuradio" in sys.modules:  # pragma: no cover - conftest runs first
    raise RuntimeError("gnuradio imported before tests/conftest.py")


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


def make_frames(n, frame_len=128, seed=0):
    """Random complex64 frames [n, frame_len] (noise-like, never all zero)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, frame_len)) + 1j * rng.standard_normal((n, frame_len))).astype(np.complex64)


def export_tiny_model(path, exits=("V0", "V1"), seed=0, frame_len=128, thresholds=None, exit_head="paper"):
    """Export an untrained model whose default thresholds split random frames
    over all of its exits (so every port of the block sees traffic)."""
    import numpy as np
    import torch

    from gnuradio.amcee.engine import as_float_frames, l1_normalize_frames
    from gnuradio.amcee.export import export_model
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.model import EarlyExitNet, ModelConfig, entropy10

    torch.manual_seed(seed)
    model = EarlyExitNet(ModelConfig(exits=exits, frame_len=frame_len, exit_head=exit_head)).eval()
    with torch.no_grad():  # spread the logits so that entropies are well apart
        for block in model.blocks:
            block.head[-1].weight.mul_(30.0)
    if thresholds is None:
        x = torch.from_numpy(l1_normalize_frames(as_float_frames(make_frames(512, frame_len, seed + 1), frame_len)))
        with torch.no_grad():
            ent = [entropy10(torch.softmax(z, 1)) for z in model.exit_logits(x)]
        # Exit k takes about a third of what reaches it; the threshold sits in
        # the middle of a gap between entropies so float rounding cannot flip it.
        thresholds = []
        for e in ent[:-1]:
            e = np.sort(e.numpy())
            near = slice(int(0.25 * len(e)), int(0.45 * len(e)))
            gaps = np.diff(e)[near]
            i = near.start + int(gaps.argmax())
            thresholds.append(float((e[i] + e[i + 1]) / 2))
    export_model(model, str(path), RML22_CLASSES, thresholds, model_version="test-untrained")
    return model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A small 3-exit (V0, V1, final) model exported once per test session."""
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    export_tiny_model(path)
    return str(path)
