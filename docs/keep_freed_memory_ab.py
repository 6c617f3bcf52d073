"""What keeping freed memory (inference/malloc_tuning.py) is worth: one process
per setting, since the setting is process-wide and cannot be undone.

Usage (from the repository root), alternating the settings over a few rounds:
    for round in 1 2 3; do for snr in 20 -10; do for keep in 1 0; do
        PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/keep_freed_memory_ab.py $keep $snr
    done; done; done

Each run classifies the first 1,792 frames of data/synth_200.npz at one SNR with
the shipped model (early exit, then the backbone alone), 15 timed calls after
3 untimed ones, one torch thread, and prints the median milliseconds per call
and the minor page faults per call.
"""
import resource
import sys
import time

import numpy as np
import torch

from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import default_model_path


def main(keep, snr, data="data/synth_200.npz", frames_per_call=1792, warm=3, timed=15):
    torch.set_num_threads(1)
    ds = np.load(data)
    frames = ds["frames"][ds["snrs"] == snr][:frames_per_call]
    engine = EarlyExitEngine(default_model_path(), max_batch=256, num_threads=1, keep_freed_memory=keep)
    for _ in range(warm):
        engine.classify(frames)
        engine.backbone_probs(frames)
    early, backbone = [], []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(timed):
        start = time.perf_counter()
        engine.classify(frames)
        early.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.backbone_probs(frames)
        backbone.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (2 * timed)
    print(f"keep={int(keep)} snr={snr:g} early_exit_ms={1e3 * np.median(early):.1f} "
          f"backbone_ms={1e3 * np.median(backbone):.1f} faults_per_call={faults:.0f}")


if __name__ == "__main__":
    main(sys.argv[1] == "1", float(sys.argv[2]))
