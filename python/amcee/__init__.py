#
# Copyright 2026 gr-amcee authors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-amcee: early-exit automatic modulation classification for GNU Radio.

Blocks: ``classifier`` (early-exit CNN over 2x128 IQ vectors),
``dataset_source`` (replays dataset files with label/snr tags),
``demo_source`` (a labelled stream of changing modulations and SNRs),
``classification_sink`` (records the classifier's messages) and ``display``
(a live QT GUI view of them).
"""

# The compiled part: lib/ through the hand-written pybind11 module
# amcee_python.  The classifier's per-frame path runs there; there is no
# Python fallback, so a missing or broken build is an error here.
try:
    from .amcee_python import *  # noqa: F401,F403
except ImportError as exc:
    raise ImportError(f"gr-amcee's compiled part (amcee_python) cannot be imported: {exc}. "
                      "Build and install the module with ./scripts/setup.sh") from exc


def _python_with_torch():
    """The Python that scripts/setup.sh made for gr-amcee (its venv), or None:
    the .venv of the checkout these sources are in, else the interpreter that
    CMake wrote into the shebang of the `amcee` command installed with them."""
    import pathlib

    here = pathlib.Path(__file__).resolve().parent
    venv_python = here.parents[1] / ".venv" / "bin" / "python"
    if venv_python.exists():
        return str(venv_python)
    try:  # <prefix>/lib/python3/dist-packages/gnuradio/amcee -> <prefix>/bin/amcee
        with open(here.parents[4] / "bin" / "amcee") as command:
            interpreter = command.readline().removeprefix("#!").split()
    except (OSError, IndexError):
        return None
    # One absolute path (not "/usr/bin/env python3", which names no particular Python).
    if len(interpreter) == 1 and pathlib.Path(interpreter[0]).is_file():
        return interpreter[0]
    return None


# GNU Radio Companion runs a flowgraph with the Python that runs GRC, and
# Debian's /usr/bin/gnuradio-companion runs /usr/bin/python3, which has no
# torch: say which Python has it instead of a bare "No module named 'torch'".
import importlib.util  # noqa: E402

if importlib.util.find_spec("torch") is None:
    import sys

    raise ModuleNotFoundError(
        f"gr-amcee needs PyTorch, which this Python ({sys.executable}) lacks: run the flowgraph with "
        f"{_python_with_torch() or 'the Python of the venv that scripts/setup.sh makes (.venv/bin/python)'}"
        " or start GNU Radio Companion as `gnuradio-companion` (the launcher scripts/setup.sh installs)",
        name="torch")

from .blocks.classifier import classifier  # noqa: E402,F401
from .blocks.dataset_source import dataset_source  # noqa: E402,F401
from .blocks.classification_sink import classification_sink  # noqa: E402,F401
from .blocks.demo_source import demo_source  # noqa: E402,F401
from .blocks.display import display  # noqa: E402,F401
