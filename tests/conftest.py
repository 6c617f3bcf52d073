"""Test setup: test the source tree and the compiled part in build/, not
whatever copy is installed.

`gnuradio/__init__.py` extends its package path over every `gnuradio/` folder
on sys.path (pkgutil.extend_path), so a folder `gnuradio/amcee` placed first on
sys.path, holding links to every file and subpackage folder of python/amcee
plus the pybind11 module built in build/, makes `from gnuradio import amcee`
load the sources.  The same path goes into PYTHONPATH for flowgraphs the tests
run as subprocesses, and GRC_BLOCKS_PATH points grcc at the source YAML.
"""
import os
import sys
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG_ROOT = ROOT / "build" / "pytest-pkgroot"


BINDINGS_BUILD = ROOT / "build" / "python" / "amcee" / "bindings"
COMPILED_SOURCES = [*ROOT.glob("lib/*.cc"), *ROOT.glob("include/gnuradio/amcee/*.h"),
                    *ROOT.glob("python/amcee/bindings/*.cc")]


def _compiled_module():
    """The amcee_python module built from lib/ and python/amcee/bindings/."""
    built = sorted(BINDINGS_BUILD.glob("amcee_python*.so"))
    if not built:
        raise RuntimeError(f"no compiled amcee_python in {BINDINGS_BUILD}: run ./scripts/setup.sh "
                           "(or cmake --build build) before the tests")
    newest_source = max(p.stat().st_mtime for p in COMPILED_SOURCES)
    if built[-1].stat().st_mtime < newest_source:
        raise RuntimeError(f"{built[-1].name} is older than the C++ sources: run cmake --build build")
    return built[-1]


def _link_sources():
    """build/pytest-pkgroot/gnuradio/amcee: a link per source entry and one to
    the compiled module.  Links are only added or repaired, never removed while
    valid, so that test sessions running side by side do not disturb each other."""
    pkg = PKG_ROOT / "gnuradio" / "amcee"
    if pkg.is_symlink():  # the layout before the compiled part existed
        pkg.unlink()
    pkg.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (ROOT / "python" / "amcee").iterdir()
              if p.name not in ("__pycache__", "CMakeLists.txt")}
    so = _compiled_module()
    wanted[so.name] = so
    for link in pkg.iterdir():
        if link.is_symlink() and not link.exists():
            link.unlink()
    for name, target in wanted.items():
        link = pkg / name
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise RuntimeError(f"{link} exists and is not a symlink")
        link.symlink_to(target)


_link_sources()
sys.path.insert(0, str(PKG_ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(PKG_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ["GRC_BLOCKS_PATH"] = str(ROOT / "grc")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "gnuradio" in sys.modules:  # pragma: no cover - conftest runs first
    raise RuntimeError("gnuradio imported before tests/conftest.py")
# GRC reads GRC_BLOCKS_PATH first and its [grc] block paths after, and a later
# definition of a block wins: Debian's global_blocks_path lists /usr/local,
# where setup.sh installs this module's YAML (and setup may set
# local_blocks_path to it). Keep grcc to GNU Radio's own blocks and the source YAML.
from gnuradio import gr  # noqa: E402 (after the path set-up above)

os.environ["GR_CONF_GRC_GLOBAL_BLOCKS_PATH"] = os.path.join(gr.prefix(), "share", "gnuradio", "grc", "blocks")
os.environ["GR_CONF_GRC_LOCAL_BLOCKS_PATH"] = ""


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

    from gnuradio.amcee.frames import as_float_frames, l1_normalize_frames
    from gnuradio.amcee.inference.exit_rule import entropy10
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.export import export_model

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


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small exported 2-exit model (untrained: tests of the file's bytes)."""
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.export import export_model

    path = tmp_path_factory.mktemp("model") / "m.pt"
    net = EarlyExitNet(ModelConfig(exits=("V0",), num_classes=len(RML22_CLASSES), frame_len=128)).eval()
    export_model(net, str(path), RML22_CLASSES, 0.3)
    return path
