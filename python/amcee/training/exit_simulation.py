"""The exit rule in numpy: early exit simulated from every exit's outputs.

Given every exit's class probabilities for a set of frames, the exit a frame
takes under some thresholds can be simulated without re-running the network:
the first early exit whose entropy is <= its threshold (or >= its give-up
value), else the final exit -- the rule of inference.exit_rule, which the
exported forward applies.  Training, evaluation and calibration search and
score thresholds with it; exit shares and expected compute follow from the exits.
"""
import math

import numpy as np

LOG10 = math.log(10.0)

#: The paper's entropy threshold T (its operating point) ...
PAPER_THRESHOLD = 0.35
#: ... and the thresholds of its Figures 4-6.
PAPER_THRESHOLDS = (0.05, PAPER_THRESHOLD, 0.6)


def entropy10(probs):
    """Base-10 entropy of probability rows (numpy; 0 log 0 = 0) -- exit_rule.entropy10's rule."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return (-terms.sum(axis=-1) / LOG10).astype(np.float32)


def simulate_exits(entropies, thresholds, give_up=None, predictions=None):
    """Exit index per frame for entropies [K, N], K-1 early-exit thresholds and
    optional K-1 give-up entropies (leave when E >= give_up; None/inf = off).

    A threshold is one number, or one per class (exit_rule.leaves): then a frame
    is held to the threshold of the class exit k predicts, and
    ``predictions`` [K, N] (each exit's argmax) is needed."""
    entropies = np.asarray(entropies)
    k_total, n = entropies.shape
    thresholds = list(thresholds)
    if len(thresholds) != k_total - 1:
        raise ValueError(f"{len(thresholds)} thresholds for {k_total - 1} early exit(s)")
    if give_up is None:
        give_up = [math.inf] * len(thresholds)
    give_up = [math.inf if g is None else float(g) for g in give_up]
    exits = np.full(n, k_total - 1, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    for k, t in enumerate(thresholds):
        # float32 comparison, as the model does it on float32 tensors
        t = np.asarray(t, dtype=np.float32)
        if t.ndim:
            if predictions is None:
                raise ValueError("class thresholds need each exit's predicted class")
            t = t[np.asarray(predictions[k])]
        e = entropies[k].astype(np.float32)
        leave = undecided & ((e <= t) | (e >= np.float32(give_up[k])))
        exits[leave] = k
        undecided &= ~leave
    return exits


def pick_by_exit(per_exit, exits):
    """Row n of per_exit[exits[n]] for per_exit [K, N, ...]."""
    return per_exit[exits, np.arange(per_exit.shape[1])]


def exit_shares(exits, num_exits):
    """Fraction of frames leaving at each exit."""
    counts = np.bincount(np.asarray(exits), minlength=num_exits)[:num_exits]
    return counts / max(1, counts.sum())


def expected_macs(shares, costs):
    return float(np.dot(shares, costs))


def simulate_exits_by_snr(entropies, predictions, table, snr_db, thresholds, give_up=None):
    """simulate_exits with the SNR table (inference.snr_table): each frame
    held to the thresholds and give-up values of its SNR bin, a frame
    without an SNR value (NaN) to ``thresholds`` / ``give_up`` -- the
    engine's per-frame rule."""
    entropies, predictions = np.asarray(entropies), np.asarray(predictions)
    bins = table.bins(snr_db)
    exits = np.empty(entropies.shape[1], dtype=np.int64)
    for b in np.unique(bins):
        m = bins == b
        t, g = (thresholds, give_up) if b < 0 else (table.thresholds[b], table.give_up[b])
        exits[m] = simulate_exits(entropies[:, m], t, g, predictions[:, m])
    return exits
