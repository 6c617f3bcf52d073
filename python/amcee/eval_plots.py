"""PNG figures of an ``amcee eval`` report, after Figures 4-6 of arXiv 2308.11100.

fig4a_accuracy.png     accuracy vs SNR: backbone alone and early exit
fig4b_exit_shares.png  share of frames per exit vs SNR
fig4c_time.png         time per frame vs SNR: batched engine vs backbone alone
fig5_exit_accuracy.png accuracy of the frames that left at each early exit vs SNR
fig6_thresholds.png    time and accuracy at T = 0.6 and T = 0.05
confusion.png          confusion matrices (early exit; all SNRs and SNR >= 10 dB)
frontier.png           accuracy vs expected compute over the threshold sweep
"""
import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _snr(rows):
    return [r["snr"] for r in rows]


def _save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def fig4a(plt, r, out_dir):
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = r["per_snr"]
    ax.plot(_snr(rows), [x["accuracy_backbone"] for x in rows], "k-o", ms=3, label="backbone alone")
    ax.plot(_snr(rows), [x["accuracy_early_exit"] for x in rows], "C0-s", ms=3,
            label="early exit, T = " + ", ".join(f"{t:.3g}" if not isinstance(t, list) else "per class"
                                                   for t in r["thresholds"]))
    paper = r["paper_thresholds"].get("0.35")
    if paper:
        ax.plot(_snr(paper["per_snr"]), [x["accuracy_early_exit"] for x in paper["per_snr"]], "C1--",
                label="early exit, T = 0.35")
    ax.set(xlabel="SNR (dB)", ylabel="accuracy", title="(4a) accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "fig4a_accuracy.png")


def fig4b(plt, r, out_dir):
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = r["per_snr"]
    snr = np.array(_snr(rows))
    shares = np.array([x["exit_shares"] for x in rows])
    bottom = np.zeros(len(rows))
    width = 0.8 * (np.min(np.diff(snr)) if len(snr) > 1 else 1.0)
    for j, name in enumerate(r["exit_names"]):
        ax.bar(snr, 100 * shares[:, j], width, bottom=bottom, label=name)
        bottom += 100 * shares[:, j]
    ax.set(xlabel="SNR (dB)", ylabel="% of frames", title="(4b) exit taken per SNR", ylim=(0, 100))
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "fig4b_exit_shares.png")


def fig4c(plt, r, out_dir):
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = r["per_snr"]
    if "seconds_per_frame_engine" not in rows[0]:
        ax.text(0.5, 0.5, "timing not measured (--no-timing)", ha="center")
    else:
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] for x in rows], "k-o", ms=3,
                label="backbone alone")
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_engine"] for x in rows], "C0-s", ms=3,
                label="batched early exit")
        ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] / x["compute_ceiling"] for x in rows],
                "C2:", label="compute ceiling")
        ax.legend(fontsize=8)
    ax.set(xlabel="SNR (dB)", ylabel="time per frame (us)", title="(4c) inference time (median)")
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "fig4c_time.png")


def fig5(plt, r, out_dir):
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = r["per_snr"]
    for j, name in enumerate(r["exit_names"][:-1]):
        ax.plot(_snr(rows), [x["accuracy_per_exit_taken"][j] for x in rows], "-o", ms=3,
                label=f"frames leaving at {name}")
    ax.plot(_snr(rows), [x["accuracy_backbone"] for x in rows], "k:", label="backbone alone, all frames")
    ax.set(xlabel="SNR (dB)", ylabel="accuracy", title="(5) accuracy of early-exited frames", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "fig5_exit_accuracy.png")


def fig6(plt, r, out_dir):
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, t in enumerate(("0.6", "0.05")):
        point = r["paper_thresholds"][t]
        rows = point["per_snr"]
        ax = axes[0, col]
        if "seconds_per_frame_engine" in rows[0]:
            ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_backbone"] for x in rows], "k-o", ms=3,
                    label="backbone alone")
            ax.plot(_snr(rows), [1e6 * x["seconds_per_frame_engine"] for x in rows], "C0-s", ms=3,
                    label="batched early exit")
            ax.legend(fontsize=8)
        ax.set(xlabel="SNR (dB)", ylabel="time per frame (us)", title=f"({'ab'[col]}) time, T = {t}")
        ax.grid(alpha=0.3)
        ax = axes[1, col]
        ax.plot(_snr(rows), [x["accuracy_backbone"] for x in rows], "k-o", ms=3, label="backbone alone")
        ax.plot(_snr(rows), [x["accuracy_early_exit"] for x in rows], "C0-s", ms=3, label="early exit")
        ax.set(xlabel="SNR (dB)", ylabel="accuracy", title=f"({'cd'[col]}) accuracy, T = {t}", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "fig6_thresholds.png")


def confusion_fig(plt, r, out_dir):
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    classes = r["classes"]
    for ax, key, title in zip(axes, ("early_exit", "early_exit_high_snr"),
                              ("early exit, all SNRs", "early exit, SNR >= 10 dB")):
        m = np.array(r["confusion"][key], dtype=float)
        m = m / np.maximum(1, m.sum(axis=1, keepdims=True))
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        for i in range(len(classes)):
            for j in range(len(classes)):
                if m[i, j] >= 0.01:
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if m[i, j] > 0.5 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, out_dir, "confusion.png")


def frontier_fig(plt, r, out_dir):
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = r["sweep"]
    ax.plot([100 * p["compute_fraction"] for p in pts], [100 * p["accuracy"] for p in pts], "C0-o", ms=3,
            label="sweep, one T for all exits")
    cal = r.get("calibration") or {}
    if cal.get("frontier"):
        front = cal["frontier"]
        ax.plot([100 * p["compute_fraction"] for p in front], [100 * p["accuracy"] for p in front], "C2-",
                lw=1, label="per-exit thresholds, Pareto front (validation)")
    o = r["overall"]
    ax.plot(100 * o["expected_macs"] / r["backbone_macs"], 100 * o["accuracy_early_exit"], "r*", ms=12,
            label="model thresholds")
    ax.axhline(100 * o["accuracy_backbone"], color="k", ls=":", label="backbone alone")
    ax.set(xlabel="expected compute (% of backbone MACs)", ylabel="accuracy (%)",
           title="accuracy vs compute (test split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "frontier.png")


def write_figures(report, out_dir):
    plt = _pyplot()
    paths = []
    for make in (fig4a, fig4b, fig4c, fig5, fig6, confusion_fig, frontier_fig):
        paths.append(make(plt, report, out_dir))
        plt.close("all")
    return paths
