"""Fidelity report of a generated dataset: does it look like RML22?

* measured SNR per nominal SNR, from the noisy frames and their clean twins
  (same realisation before the noise adder, same per-frame scale), pooled and
  per class;
* per class: average sample power and L1 statistics of the frames;
* one PNG with, per class at the highest SNR, the I/Q scatter of a few frames
  and the time series of one frame;
* for data made by ``amcee synth`` with WBFM or AM-DSB: the long-term spectrum
  of its synthetic speech against the published one, and of the first generator.

Outputs ``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` (plus
``speech.png`` for synthetic speech) in a folder.
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


#: Frames measure() reads per step: bounded memory (64 MB of complex128 at
#: 1024 samples) whatever the dataset's size (a RadioML 2018 file is mapped, not read).
MEASURE_CHUNK_FRAMES = 4096


def _class_statistics(ds, chunk_frames=None):
    """Per class: frames, mean sample power, mean and std of the frames' L1
    norms, mean peak-to-mean magnitude and envelope CV, accumulated over
    chunks of frames (the L1 spread by Chan et al.'s pairwise update: L1
    norms of normalised frames are all about 1, where a sum of squares
    would cancel)."""
    chunk = int(chunk_frames or MEASURE_CHUNK_FRAMES)
    n_classes, length = len(ds.classes), ds.frame_length
    frames = np.zeros(n_classes, np.int64)
    power, l1_mean, l1_m2, peak, cv = (np.zeros(n_classes) for _ in range(5))
    for start in range(0, len(ds), chunk):
        mag = np.abs(to_complex(np.asarray(ds.frames[start:start + chunk]), np.complex128))
        labels = ds.labels[start:start + chunk]
        for i in np.unique(labels).tolist():
            m = mag[labels == i]
            l1 = m.sum(axis=1)
            n_a, n_b = frames[i], len(m)
            mean_b = l1.mean()
            delta = mean_b - l1_mean[i]
            l1_m2[i] += np.sum((l1 - mean_b) ** 2) + delta ** 2 * n_a * n_b / (n_a + n_b)
            l1_mean[i] += delta * n_b / (n_a + n_b)
            frames[i] += n_b
            power[i] += np.sum(m ** 2)
            peak[i] += np.sum(m.max(axis=1) / m.mean(axis=1))
            cv[i] += np.sum(m.std(axis=1) / m.mean(axis=1))
    return {name: {"frames": int(frames[i]),
                   "power_mean": float(power[i] / (frames[i] * length)),
                   "l1_mean": float(l1_mean[i]), "l1_std": float(np.sqrt(l1_m2[i] / frames[i])),
                   "peak_to_mean_mag": float(peak[i] / frames[i]),
                   "envelope_cv": float(cv[i] / frames[i])}
            for i, name in enumerate(ds.classes) if frames[i]}


def measure(ds, clean=None):
    """Statistics of ``ds`` (and SNR if ``clean`` twins are given) as a JSON-able dict."""
    report = {"frames": len(ds), "frame_len": int(ds.frames.shape[-1]),
              "classes": list(ds.classes), "meta": ds.meta,
              "per_class": _class_statistics(ds)}
    if clean is not None:
        # Clean twins come only with a set generated in memory (write_report without ds).
        if clean.shape != ds.frames.shape:
            raise ValueError(f"clean frames {clean.shape} do not match frames {ds.frames.shape}")
        x = to_complex(ds.frames, np.complex128)
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


#: Tracks (of :data:`SPEECH_TRACK_SECONDS`) per generator in the speech-spectrum section.
SPEECH_TRACKS = 4
SPEECH_TRACK_SECONDS = 10.0


def measure_speech(tracks=SPEECH_TRACKS, seconds=SPEECH_TRACK_SECONDS):
    """Long-term spectrum and high-frequency frame share of the synthetic speech.

    The generator in use and the first one (:func:`~.audio.speech_like_v1`),
    each over ``tracks`` speakers (seeds 0..tracks-1), against the published
    LTASS (:data:`~.audio.LTASS_BANDS`).  A JSON-able dict.
    """
    from . import audio

    n = int(seconds * audio.AUDIO_RATE)
    out = {"band_hz": [c for c, _ in audio.LTASS_BANDS],
           "published_db": audio.ltass_reference_db().tolist(),
           "published_source": "Byrne et al. 1994, universal LTASS (J. Acoust. Soc. Am. 96(4) 2108-2120)",
           "high_frequency_split_hz": audio.HIGH_FREQUENCY_SPLIT_HZ,
           "high_frequency_share_target": audio.HIGH_FREQUENCY_PHONEME_SHARE,
           "tracks": int(tracks), "track_seconds": float(seconds)}
    for key, fn in (("synthetic", audio.speech_like), ("synthetic_v1", audio.speech_like_v1)):
        stats = audio.speech_statistics(np.concatenate([fn(n, np.random.default_rng(s)) for s in range(tracks)]))
        out[key] = {"band_db": stats["band_db"],
                    "high_frequency_frame_share": stats["high_frequency_frame_share"],
                    "active_frames": stats["active_frames"]}
    return out


def plot_speech(speech, path):
    """Band levels of the published LTASS, the synthetic speech and the first generator's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    hz = speech["band_hz"]
    ax.semilogx(hz, speech["published_db"], "k-o", ms=4, label="published (Byrne et al. 1994)")
    ax.semilogx(hz, speech["synthetic"]["band_db"], "C0-s", ms=4,
                label=f"synthetic (HF frames {speech['synthetic']['high_frequency_frame_share']:.1%})")
    ax.semilogx(hz, speech["synthetic_v1"]["band_db"], "C3--^", ms=4,
                label=f"first generator (HF frames {speech['synthetic_v1']['high_frequency_frame_share']:.1%})")
    ax.axvline(speech["high_frequency_split_hz"], color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("1/3-octave band centre (Hz)")
    ax.set_ylabel("band level re total (dB)")
    ax.set_title("Long-term average spectrum of the synthetic speech "
                 f"(target HF frames {speech['high_frequency_share_target']:.1%})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _speech_markdown(speech):
    syn, v1 = speech["synthetic"], speech["synthetic_v1"]
    lines = ["## Synthetic speech (WBFM, AM-DSB): long-term spectrum", "",
             f"Band levels relative to the total (dB), {speech['tracks']} speakers x "
             f"{speech['track_seconds']:g} s per generator (running speech with its pauses); published: "
             f"{speech['published_source']}. HF frames: share of active frames with more energy "
             f"above {speech['high_frequency_split_hz']:g} Hz than below (target "
             f"{speech['high_frequency_share_target']:.1%}): synthetic "
             f"{syn['high_frequency_frame_share']:.1%}, first generator {v1['high_frequency_frame_share']:.1%}.",
             "", "| band (Hz) | published | synthetic | first generator |", "|---|---|---|---|"]
    for hz, p, s, o in zip(speech["band_hz"], speech["published_db"], syn["band_db"], v1["band_db"]):
        lines.append(f"| {hz:g} | {p:.1f} | {s:.1f} | {o:.1f} |")
    lines += ["", "![speech spectrum](speech.png)", ""]
    return lines


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
    if "speech" in report:
        lines += _speech_markdown(report["speech"])
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
    from .transmitters import ANALOG_CLASSES
    if ds.meta.get("generator") == "amcee synth" and set(ds.classes) & set(ANALOG_CLASSES):
        report["speech"] = measure_speech()
        plot_speech(report["speech"], os.path.join(out_dir, "speech.png"))
    with open(os.path.join(out_dir, "fidelity.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, "fidelity.md"), "w") as f:
        f.write(_markdown(report))
    return report
