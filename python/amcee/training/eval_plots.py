"""PNG figures of an ``amcee eval`` report, after Figures 4-6 of arXiv 2308.11100.

fig4a_accuracy.png     accuracy vs SNR: backbone alone and early exit
fig4b_exit_shares.png  share of frames per exit vs SNR
fig4c_time.png         time per frame vs SNR: batched engine vs backbone alone
fig5_exit_accuracy.png accuracy of the frames that left at each early exit vs SNR
fig6_thresholds.png    time and accuracy at T = 0.6 and T = 0.05
confusion.png          confusion matrices (early exit; all SNRs and SNR >= 10 dB)
frontier.png           accuracy vs expected compute over the threshold sweep

Every figure gives accuracy in percent.  The figures need only the report
dict, so they can be redrawn from a saved ``eval.json``::

    python -m gnuradio.amcee.training.eval_plots docs/default-model/eval.json
"""
import argparse
import json
import os

import numpy as np

from .exit_simulation import PAPER_THRESHOLD

ACCURACY_LABEL = "accuracy (%)"
ACCURACY_LIMITS = (0, 102)  # a curve at 100 % stays visible above the top tick

# Below this many frames a per-SNR accuracy is drawn hollow and its count
# printed beside it: its binomial standard error can exceed 5 pp.
MIN_FRAMES = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _figure(plt, *args, **kwargs):
    # Constrained layout keeps legends and colour bars placed outside the axes inside the figure.
    return plt.subplots(*args, layout="constrained", **kwargs)


def _snr(rows):
    return [r["snr"] for r in rows]


def _pct(values):
    return 100 * np.asarray(values, dtype=float)


def _save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    return path


def model_thresholds_label(r):
    """Legend text for the early exit at the model's own thresholds."""
    thresholds = r["thresholds"]
    if any(isinstance(t, list) for t in thresholds):
        return "early exit (model's class thresholds)"
    if len(set(thresholds)) == 1:
        return f"early exit (model's T = {thresholds[0]:.3g} at every exit)"
    return "early exit (model's T = " + ", ".join(f"{t:.3g}" for t in thresholds) + ")"


def _uniform_label(t):
    return f"early exit (T = {t} at every exit)"


def fig4a(plt, r, out_dir):
    fig, ax = _figure(plt, figsize=(6, 4))
    rows = r["per_snr"]
    ax.plot(_snr(rows), _pct([x["accuracy_backbone"] for x in rows]), "k-o", ms=3, label="backbone alone")
    ax.plot(_snr(rows), _pct([x["accuracy_early_exit"] for x in rows]), "C0-s", ms=3,
            label=model_thresholds_label(r))
    paper = r["paper_thresholds"].get(str(PAPER_THRESHOLD))
    if paper:
        ax.plot(_snr(paper["per_snr"]), _pct([x["accuracy_early_exit"] for x in paper["per_snr"]]), "C1--",
                label=_uniform_label(str(PAPER_THRESHOLD)))
    ax.set(xlabel="SNR (dB)", ylabel=ACCURACY_LABEL, title="(4a) accuracy", ylim=ACCURACY_LIMITS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")  # accuracy rises with SNR: the lower right is empty
    return _save(fig, out_dir, "fig4a_accuracy.png")


def _exit_label(names, j):
    return f"ran to {names[j]}" if j == len(names) - 1 else f"left at {names[j]}"


def fig4b(plt, r, out_dir):
    fig, ax = _figure(plt, figsize=(7, 4))
    rows = r["per_snr"]
    names = r["exit_names"]
    snr = np.array(_snr(rows))
    shares = _pct([x["exit_shares"] for x in rows])
    bottom = np.zeros(len(rows))
    width = 0.8 * (np.min(np.diff(snr)) if len(snr) > 1 else 1.0)
    for j in range(len(names)):
        ax.bar(snr, shares[:, j], width, bottom=bottom, label=_exit_label(names, j))
        bottom += shares[:, j]
    ax.set(xlabel="SNR (dB)", ylabel="% of frames", title="(4b) exit taken per SNR", ylim=(0, 100))
    # The bars fill the axes: the legend goes outside, top entry = top of the stack.
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, out_dir, "fig4b_exit_shares.png")


def _no_timing(ax):
    ax.text(0.5, 0.5, "timing not measured (--no-timing)", ha="center", transform=ax.transAxes)
    ax.set(xticks=[], yticks=[])


def fig4c(plt, r, out_dir):
    fig, ax = _figure(plt, figsize=(6, 4))
    rows = r["per_snr"]
    if "seconds_per_frame_engine" not in rows[0]:
        _no_timing(ax)
    else:
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] for x in rows], "k-o", ms=3,
                label="backbone alone")
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_engine"] for x in rows], "C0-s", ms=3,
                label="batched early exit (model's thresholds)")
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] / x["compute_ceiling"] for x in rows],
                "C2:", label="backbone time / MAC ceiling")
        ax.legend(fontsize=8, loc="lower left")
    ax.set(xlabel="SNR (dB)", ylabel="time per frame (µs)", title="(4c) inference time (median)")
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "fig4c_time.png")


def fig5(plt, r, out_dir):
    fig, ax = _figure(plt, figsize=(6.5, 5))
    rows = r["per_snr"]
    snr = np.array(_snr(rows))
    for j, name in enumerate(r["exit_names"][:-1]):
        colour = f"C{j}"
        acc = _pct([x["accuracy_per_exit_taken"][j] for x in rows])
        n = np.array([round(x["frames"] * x["exit_shares"][j]) for x in rows])
        taken = n > 0  # no frame left here: no accuracy to draw
        few = taken & (n < MIN_FRAMES)
        # Faint line through every point, solid only between points resting on enough frames.
        ax.plot(snr[taken], acc[taken], "-", color=colour, lw=0.8, alpha=0.35)
        ax.plot(snr, np.where(taken & ~few, acc, np.nan), "-o", color=colour, ms=4,
                label=f"frames leaving at {name}")
        ax.plot(snr[few], acc[few], "o", ms=5, mfc="none", mec=colour, alpha=0.6)
        for s, a, count in zip(snr[few], acc[few], n[few]):
            low = a < 90  # below the point near the top of the axes, else above it
            ax.annotate(f"{count}", (s, a), textcoords="offset points", xytext=(0, 5 if low else -6),
                        ha="center", va="bottom" if low else "top", fontsize=7, color=colour)
    ax.plot(snr, _pct([x["accuracy_backbone"] for x in rows]), "k:", label="backbone alone, all frames")
    ax.plot([], [], "o", ms=5, mfc="none", mec="grey", label=f"fewer than {MIN_FRAMES} frames (count shown)")
    ax.set(xlabel="SNR (dB)", ylabel=ACCURACY_LABEL, title="(5) accuracy of early-exited frames",
           ylim=(-4, 104))  # hollow markers at 0 % and 100 % stay whole
    ax.grid(alpha=0.3)
    # Below the axes: the low-SNR points sit at both the top and the bottom of the plot.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return _save(fig, out_dir, "fig5_exit_accuracy.png")


def fig6(plt, r, out_dir):
    fig, axes = _figure(plt, 2, 2, figsize=(10, 7))
    for col, t in enumerate(("0.6", "0.05")):
        point = r["paper_thresholds"][t]
        rows = point["per_snr"]
        ax = axes[0, col]
        if "seconds_per_frame_engine" in rows[0]:
            ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] for x in rows], "k-o", ms=3,
                    label="backbone alone")
            ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_engine"] for x in rows], "C0-s", ms=3,
                    label="batched early exit")
            ax.legend(fontsize=8, loc="best")
        else:
            _no_timing(ax)
        ax.set(xlabel="SNR (dB)", ylabel="time per frame (µs)",
               title=f"({'ab'[col]}) time, T = {t} at every exit")
        ax.grid(alpha=0.3)
        ax = axes[1, col]
        ax.plot(_snr(rows), _pct([x["accuracy_backbone"] for x in rows]), "k-o", ms=3, label="backbone alone")
        ax.plot(_snr(rows), _pct([x["accuracy_early_exit"] for x in rows]), "C0-s", ms=3, label="early exit")
        ax.set(xlabel="SNR (dB)", ylabel=ACCURACY_LABEL,
               title=f"({'cd'[col]}) accuracy, T = {t} at every exit", ylim=ACCURACY_LIMITS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out_dir, "fig6_thresholds.png")


def confusion_fig(plt, r, out_dir):
    fig, axes = _figure(plt, 1, 2, figsize=(12, 5.5))
    classes = r["classes"]
    for ax, key, title in zip(axes, ("early_exit", "early_exit_high_snr"),
                              ("early exit, all SNRs", "early exit, SNR >= 10 dB")):
        counts = np.array(r["confusion"][key], dtype=float)
        m = _pct(counts / np.maximum(1, counts.sum(axis=1, keepdims=True)))
        image = ax.imshow(m, cmap="Blues", vmin=0, vmax=100)
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        for i in range(len(classes)):
            for j in range(len(classes)):
                if m[i, j] >= 0.5:  # a cell that rounds to 0 % stays blank
                    ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] > 50 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=f"{title} ({int(counts.sum()):,} frames)")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="% of the true class's frames")
    return _save(fig, out_dir, "confusion.png")


def frontier_fig(plt, r, out_dir):
    fig, ax = _figure(plt, figsize=(6.5, 4.2))
    pts = r["sweep"]
    ax.plot(_pct([p["compute_fraction"] for p in pts]), _pct([p["accuracy"] for p in pts]), "C0-o", ms=3,
            label="sweep, one T for every exit")
    cal = r.get("calibration") or {}
    if cal.get("frontier"):
        front = cal["frontier"]
        ax.plot(_pct([p["compute_fraction"] for p in front]), _pct([p["accuracy"] for p in front]), "C2-",
                lw=1, label="per-exit thresholds, Pareto front (validation)")
    o = r["overall"]
    ax.plot(100 * o["expected_macs"] / r["backbone_macs"], 100 * o["accuracy_early_exit"], "r*", ms=12,
            label=model_thresholds_label(r))
    ax.axhline(100 * o["accuracy_backbone"], color="k", ls=":", label="backbone alone")
    ax.set(xlabel="expected compute (% of backbone MACs)", ylabel=ACCURACY_LABEL,
           title="accuracy vs compute (test split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")  # accuracy rises with compute: the lower right is empty
    return _save(fig, out_dir, "frontier.png")


FIGURES = (fig4a, fig4b, fig4c, fig5, fig6, confusion_fig, frontier_fig)
#: The figures of the early exits and their thresholds: none for a backbone alone (one exit).
EARLY_EXIT_FIGURES = (fig5, fig6, frontier_fig)


def write_figures(report, out_dir):
    """Draw every figure of ``report`` (an eval report dict) into ``out_dir``; returns the paths."""
    plt = _pyplot()
    paths = []
    early_exits = len(report["exit_names"]) > 1
    for make in FIGURES if early_exits else [f for f in FIGURES if f not in EARLY_EXIT_FIGURES]:
        paths.append(make(plt, report, out_dir))
        plt.close("all")
    return paths


def replot(eval_json, out_dir=None):
    """Redraw the figures of a saved eval.json (into its own folder unless ``out_dir``)."""
    try:
        with open(eval_json) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read eval report {eval_json}: {e}") from e
    missing = [k for k in ("per_snr", "exit_names", "paper_thresholds", "confusion", "sweep")
               if k not in report] if isinstance(report, dict) else ["per_snr"]
    if missing:
        raise ValueError(f"{eval_json} is not an amcee eval report (no {', '.join(missing)})")
    out_dir = out_dir or os.path.dirname(os.path.abspath(eval_json))
    os.makedirs(out_dir, exist_ok=True)
    return write_figures(report, out_dir)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gnuradio.amcee.training.eval_plots",
                                description="Redraw the figures of a saved amcee eval.json without re-evaluating.")
    p.add_argument("eval_json", help="eval.json written by amcee eval")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: the JSON's folder)")
    args = p.parse_args(argv)
    try:
        paths = replot(args.eval_json, args.out)
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
