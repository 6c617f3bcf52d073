"""Per-SNR and per-class tables of a run's decisions: frames, accuracy, exit shares.

``amcee replay`` and ``amcee demo`` report the same figures for groups of
frames: how many, how many were classified right, and the share that left
at each exit; as JSON rows and as a text table.
"""
import numpy as np


def group_summary(predicted, truth, exits, mask, num_exits):
    """{"frames", "accuracy", "exit_share"} of the frames in ``mask``.

    The accuracy counts the frames that were classified (exit >= 0) and whose
    truth is known (>= 0), None when there are none; the exit shares are of
    every frame of the group (invalid frames leave at no exit)."""
    n = int(mask.sum())
    classified = mask & (exits >= 0)
    scored = classified & (truth >= 0)
    counts = np.bincount(exits[classified], minlength=num_exits)[:num_exits]
    return {
        "frames": n,
        "accuracy": float((predicted[scored] == truth[scored]).mean()) if scored.any() else None,
        "exit_share": [float(c / n) if n else 0.0 for c in counts],
    }


def rows_per_value(values, key, predicted, truth, exits, mask, num_exits):
    """A group_summary row for each distinct value of ``values`` among the
    frames in ``mask``, with the value under ``key``."""
    return [dict(group_summary(predicted, truth, exits, mask & (values == v), num_exits), **{key: float(v)})
            for v in np.unique(values[mask])]


def table_lines(rows, key, exit_names, overall):
    """Lines of a text table: one per row and one for ``overall`` ("all")."""
    head = f"{key:>7} {'frames':>7} {'acc%':>6} " + " ".join(f"{e[:6]:>6}" for e in exit_names)
    lines = [head, "-" * len(head)]
    for row in rows + [dict(overall, **{key: "all"})]:
        name = row[key] if isinstance(row[key], str) else f"{row[key]:g}"
        accuracy = "     -" if row["accuracy"] is None else f"{100 * row['accuracy']:6.1f}"
        shares = " ".join(f"{100 * s:5.1f}%" for s in row["exit_share"])
        lines.append(f"{name:>7} {row['frames']:>7} {accuracy} {shares}")
    return lines
