"""Loading an engine leaves no OpenMP team in the loading thread.

A team left there (its worker threads live as long as the process) made GNU
OpenMP shorten every worker's spin-wait, and an engine run at two torch
threads in another thread (the classifier's scheduler thread, the bench's
engine thread) ran no faster than at one (docs/performance.md, "Torch
threads in a flowgraph").  Counted by the process's threads, in a fresh
process, so no team of an earlier test is alive.
"""
import os
import subprocess
import sys

THREADS = """
import os
import numpy as np
import torch
torch.set_num_threads(2)
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import default_model_path
count = lambda: len(os.listdir("/proc/self/task"))
before = count()
engine = EarlyExitEngine(default_model_path())
loaded = count()
engine.classify(np.ones((64, 2, 128), np.float32))  # two threads here: a team starts
print(before, loaded, count())
"""


def test_loading_an_engine_starts_no_openmp_team():
    out = subprocess.run([sys.executable, "-c", THREADS], env=os.environ, capture_output=True, text=True,
                         timeout=120, check=True)
    before, loaded, after_classify = map(int, out.stdout.split()[-3:])
    assert loaded == before
    assert after_classify > loaded  # the count sees a team when one starts
