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

# A Python-only module: there are no pybind11 bindings to import, but keep the
# gr_modtool convention so that C++ blocks can be added later.
try:
    from .amcee_python import *  # noqa: F401,F403
except ModuleNotFoundError:
    pass

from .classifier import classifier  # noqa: E402,F401
from .dataset_source import dataset_source  # noqa: E402,F401
from .classification_sink import classification_sink  # noqa: E402,F401
from .demo_source import demo_source  # noqa: E402,F401
from .display import display  # noqa: E402,F401
