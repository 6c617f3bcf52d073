"""Fidelity report of a generated dataset: does it look like RML22?

* measured SNR per nominal SNR, from the noisy frames and their clean twins
  (same realisation before the noise adder, same per-frame scale), pooled and
  per class;
* per class: average sample power and L1 statistics of the frames;
* one PNG with, per class at the highest SNR, the I/Q scatter of a few frames
  and the time series of one frame.

Outputs ``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` in a folder.
"""
import json
import os

import numpy as np

from ...frames import to_complex


def _frame_snrs(clean, noisy):
    """Linear SNR of every frame (scale-free: twins share the per-frame scale)."""
    noise = np.sum(np.abs(noisy - clean) ** 2, axis=1)
    signal = np.sum(np.abs(clean) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(noise > 0, signal / np.maximum(noise, 1e-300), np.inf)


def _db(linear):
    return float(10 * np.log10(linear)) if np.isfinite(linear) else float("inf")


def _snr_db(clean, noisy):
    """Mean SNR over frames (linear mean, in dB).

    Averaging per frame, not pooling samples, because the L1 normalisation
    gives every frame the same weight: pooled sums would over-weight faded
    frames in the fading variants.
    """
    return _db(np.mean(_frame_snrs(clean, noisy)))


def measure(ds, clean=None):
    """Statistics of ``ds`` (and SNR if ``clean`` twins are given) as a JSON-able dict."""
    x = to_complex(ds.frames, np.complex128)
    report = {"frames": int(len(x)), "frame_len": int(ds.frames.shape[-1]),
              "classes": list(ds.classes), "meta": ds.meta}
    per_class = {}
    for i, name in enumerate(ds.classes):
        xi = x[ds.labels == i]
        if not len(xi):
            continue
        l1 = np.abs(xi).sum(axis=1)
        mag = np.abs(xi)
        per_class[name] = {
            "frames": int(len(xi)),
            "power_mean": float(np.mean(mag ** 2)),
            "l1_mean": float(l1.mean()), "l1_std": float(l1.std()),
            "peak_to_mean_mag": float(np.mean(mag.max(axis=1) / mag.mean(axis=1))),
            "envelope_cv": float(np.mean(mag.std(axis=1) / mag.mean(axis=1))),
        }
    report["per_class"] = per_class
    if clean is not None:
        if clean.shape != ds.frames.shape:
            raise ValueError(f"clean frames {clean.shape} do not match frames {ds.frames.shape}")
        c = to_complex(clean, np.complex128)
        rows = []
        for snr in sorted(set(ds.snrs.tolist())):
            m = ds.snrs == snr
            per_frame = _frame_snrs(c[m], x[m])
            row = {"nominal_db": float(snr), "measured_db": _db(np.mean(per_frame)),
                   "median_frame_db": _db(np.median(per_frame)), "per_class": {}}
            for i, name in enumerate(ds.classes):
                mi = m & (ds.labels == i)
                if mi.any():
                    row["per_class"][name] = _snr_db(c[mi], x[mi])
            rows.append(row)
        report["snr"] = rows
    return report


def plot_examples(ds, path, frames_per_class=20, columns=5):
    """Per class at its highest SNR: I/Q scatter of a few frames over one frame's I and Q.

    Classes fill a grid ``columns`` wide (two axes rows per grid row), so ten
    classes make a 2 x 5 grid rather than one strip too wide to read.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(ds.classes)
    cols = max(1, min(columns, n))
    grid_rows = -(-n // cols)
    fig, axes = plt.subplots(2 * grid_rows, cols, figsize=(max(2.7 * cols, 6.5), 4.3 * grid_rows + 0.6),
                             gridspec_kw={"height_ratios": [1.6, 1.0] * grid_rows},
                             squeeze=False, layout="constrained")
    for i in range(grid_rows * cols):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        idx = np.flatnonzero(ds.labels == i) if i < n else []
        if not len(idx):
            if i >= n:  # grid cells past the last class
                top.set_axis_off()
                bottom.set_axis_off()
            else:
                top.set_title(f"{ds.classes[i]} (no frames)", fontsize=10)
            continue
        best = ds.snrs[idx].max()
        idx = idx[ds.snrs[idx] == best][:frames_per_class]
        x = to_complex(ds.frames[idx], np.complex128)
        lim = 1.1 * np.abs(x).max()
        top.set_title(f"{ds.classes[i]} ({best:g} dB)", fontsize=10)
        top.scatter(x.real.ravel(), x.imag.ravel(), s=1, alpha=0.4)
        top.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        bottom.plot(x[0].real, "C0", lw=0.8)
        bottom.plot(x[0].imag, "C1", lw=0.8)
        bottom.set_ylim(-lim, lim)  # the scatter's scale, so the two panels read together
        bottom.set_xlim(0, x.shape[1] - 1)
        bottom.set_xlabel("sample", fontsize=8)
        for ax in (top, bottom):
            # L1-normalised frames have amplitudes of about 1e-2: one shared exponent per axis.
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0), useMathText=True)
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.tick_params(labelsize=7)
            ax.yaxis.get_offset_text().set_fontsize(7)
        top.ticklabel_format(axis="x", style="sci", scilimits=(0, 0), useMathText=True)
        top.xaxis.set_major_locator(MaxNLocator(4))
        top.xaxis.get_offset_text().set_fontsize(7)
    # The colours are named in the title: a legend box would cover a panel's samples.
    fig.suptitle(f"{ds.meta.get('generator', 'dataset')} variant={ds.meta.get('variant', '?')}, "
                 "each class at its highest SNR\nI/Q scatter of a few frames (top); "
                 "one frame's I (blue) and Q (orange) (bottom)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(report):
    lines = [f"# Fidelity report ({report['frames']} frames, variant "
             f"{report['meta'].get('variant', '?')})", ""]
    if "snr" in report:
        names = report["classes"]
        lines += ["## Measured SNR (dB) from clean/noisy twins", "",
                  "Mean of the per-frame SNRs (linear), all classes and per class; "
                  "median: median per-frame SNR.", "",
                  "| nominal | measured | median | " + " | ".join(names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for row in report["snr"]:
            cells = [f"{row['per_class'][n]:.2f}" if n in row["per_class"] else "-" for n in names]
            lines.append(f"| {row['nominal_db']:g} | {row['measured_db']:.2f} | "
                         f"{row['median_frame_db']:.2f} | " + " | ".join(cells) + " |")
        lines += ["", "Signal power varies per class (QAM16 ~1.11, QAM64 ~1.13, PAM4 1.25 "
                  "relative to PSK). In `all` and `fading` the ETU paths add their summed "
                  "power (8 dB in expectation; about +7 dB measured here) as in RML22, so "
                  "there the nominal SNR understates the real one.", ""]
    lines += ["## Per class", "", "| class | frames | mean power | L1 mean | L1 std | "
              "peak/mean magnitude | envelope CV |", "|---|---|---|---|---|---|---|"]
    for name, s in report["per_class"].items():
        lines.append(f"| {name} | {s['frames']} | {s['power_mean']:.3e} | {s['l1_mean']:.4f} | "
                     f"{s['l1_std']:.1e} | {s['peak_to_mean_mag']:.2f} | {s['envelope_cv']:.3f} |")
    lines += ["", "![examples](fidelity.png)", ""]
    return "\n".join(lines)


def write_report(out_dir, ds=None, clean=None, progress=True, **synth_kwargs):
    """Write the report for ``ds`` (or for a set generated with ``synth_kwargs``).

    Without ``ds`` a set is generated with ``return_clean=True`` so that the
    SNR table can be measured.  Returns the report dict.
    """
    if ds is None:
        from .generate import generate
        synth_kwargs.setdefault("frames_per_key", 200)
        ds, clean = generate(return_clean=True, progress=progress, **synth_kwargs)
    elif synth_kwargs:
        raise ValueError("give either a dataset or generation options, not both")
    os.makedirs(out_dir, exist_ok=True)
    report = measure(ds, clean)
    plot_examples(ds, os.path.join(out_dir, "fidelity.png"))
    with open(os.path.join(out_dir, "fidelity.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, "fidelity.md"), "w") as f:
        f.write(_markdown(report))
    return report
