"""Timing of code that shares a machine: interleaved repeats and paired ratios.

Candidates run in turn, round after round, so that CPU contention shared by
them hits them alike; a speed-up is the median of the per-round ratios
(paired_ratio_median).  Every figure is measured with host_info beside it.
"""
import os
import statistics
import time

import numpy as np


def time_interleaved(candidates, repeats=5, warmup=1):
    """Median wall time in seconds of each callable in ``candidates`` (a dict),
    running them in turn ``repeats`` times (after ``warmup`` untimed rounds)."""
    samples = time_interleaved_samples(candidates, repeats, warmup)
    return {name: statistics.median(s) for name, s in samples.items()}


def time_interleaved_samples(candidates, repeats=5, warmup=1):
    """Every timed round: {name: [seconds per repeat]}; round r of every
    candidate ran back to back, so per-round ratios are paired.  The order
    changes every round: turned by one candidate every other round, and
    reversed in between.  A call measures slower right after a particular
    other one (the backbone's, in a run of bench); a fixed order put that on
    one candidate in every round, and turning alone keeps each candidate's
    predecessor (with three candidates, one always ran right after the
    backbone).  Turned and reversed, each candidate follows each of its
    neighbours in turn (with three, the six orders one after another)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    samples = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(warmup + repeats):
        turn = (r // 2) % len(names)
        order = names[turn:] + names[:turn]
        for name in (order[::-1] if r % 2 else order):
            fn = candidates[name]
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                samples[name].append(time.perf_counter() - t0)
    return samples


def paired_ratio_median(numerator, denominator):
    """Median of the per-round ratios numerator / denominator of two paired
    sample lists: the speed-up.  Each round runs the candidates back to back,
    so a machine that slows down for a while (a shared virtual machine here
    moved the backbone's time by 30 % within a minute) slows both sides of a
    ratio alike; the ratio of the two medians can take them from different
    rounds, and fell outside the ratios' own quartiles in a run of eval."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def paired_ratio_spread(numerator, denominator):
    """Quartiles (25 %, 75 %) of the per-round ratios numerator / denominator
    of two paired sample lists: how much a speed-up moves between rounds."""
    ratios = np.asarray(numerator) / np.asarray(denominator)
    return [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))]


def host_info():
    """What the figures were measured on: they depend on the CPU (its vector
    width, caches and memory) far more than on the core count."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
