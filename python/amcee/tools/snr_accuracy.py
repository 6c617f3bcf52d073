"""Accuracy of the per-frame SNR estimator (``amcee.estimate_snr_db``, the
estimate the ``snr_estimator`` block tags) on frames of known SNR.

Frames come from the module's RML22 generator (:func:`data.synth.generate.generate`)
with their clean twins: the reference of a frame is its realised SNR, the power
of the twin over the power of the noise actually added, so that the error is
the estimator's own and not the channel's (under fading the realised SNR is
several dB above the nominal label: the fading paths add their power before
the noise).  Per channel variant, class and nominal SNR bin the report gives
the mean, the standard deviation and the 10/50/90 % quantiles of the error
(estimate - reference, dB), the mean estimate, and the mean realised SNR.

From an existing dataset file (``data=``) there are no twins: the reference is
the file's SNR label, which the report says.
"""
import numpy as np

from ..amcee_python import estimate_snr_db
from ..frames import to_complex

#: Variants measured by default: RML22's full channel and AWGN alone.
DEFAULT_VARIANTS = ("all", "awgn")
#: Quantiles of the error reported, in percent.
QUANTILES = (10, 50, 90)


def realised_snr_db(frames, clean):
    """Per-frame SNR (dB) of noisy frames from their clean twins (same scale)."""
    noisy, clean = to_complex(frames, np.complex128), to_complex(clean, np.complex128)
    signal = np.sum(np.abs(clean) ** 2, axis=1)
    noise = np.sum(np.abs(noisy - clean) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(signal / noise)


def error_stats(estimate_db, reference_db):
    """Statistics of ``estimate - reference`` over frames (NaN estimates left out)."""
    ok = np.isfinite(estimate_db) & np.isfinite(reference_db)
    error = estimate_db[ok] - reference_db[ok]
    stats = {"frames": int(ok.sum()), "invalid": int((~ok).sum())}
    if not len(error):
        return stats
    stats.update({"mean": float(error.mean()), "std": float(error.std())})
    stats.update({f"q{q}": float(v) for q, v in zip(QUANTILES, np.percentile(error, QUANTILES))})
    stats.update({"estimate_mean": float(estimate_db[ok].mean()), "reference_mean": float(reference_db[ok].mean())})
    return stats


def _table(estimate_db, reference_db, labels, snrs, classes):
    """{"pooled": {snr: stats}, "per_class": {class: {snr: stats}}} by nominal SNR bin."""
    bins = sorted(set(float(s) for s in snrs))
    pooled = {f"{s:g}": error_stats(estimate_db[snrs == s], reference_db[snrs == s]) for s in bins}
    per_class = {}
    for i, name in enumerate(classes):
        of_class = labels == i
        if of_class.any():
            per_class[name] = {f"{s:g}": error_stats(estimate_db[of_class & (snrs == s)],
                                                     reference_db[of_class & (snrs == s)])
                               for s in bins if (of_class & (snrs == s)).any()}
    return {"pooled": pooled, "per_class": per_class}


def measure_dataset(ds, clean=None):
    """The estimator on a :class:`Dataset`; reference: the twins' realised SNR,
    else the SNR labels."""
    if ds.frames.ndim != 3 or ds.frames.shape[1] != 2:
        raise ValueError(f"frames must be [N, 2, L] (I row, Q row), got shape {ds.frames.shape}")
    estimate = estimate_snr_db(to_complex(ds.frames, np.complex64))
    labels_db = np.asarray(ds.snrs, dtype=np.float64)
    if clean is not None:
        reference, kind = realised_snr_db(ds.frames, clean), "realised SNR of the frame (clean twin)"
    else:
        reference, kind = labels_db, "SNR label of the dataset"
    report = {"reference": kind, "frames": int(len(ds.frames)), "frame_len": int(ds.frames.shape[-1])}
    report.update(_table(estimate, reference, np.asarray(ds.labels), labels_db, ds.classes))
    return report


def measure(classes=None, snrs=None, frames_per_key=100, variants=DEFAULT_VARIANTS, seed=1,
            frame_len=128, workers=None, progress=True):
    """Generate frames of every class and SNR through each channel variant and
    measure the estimator on them: {"variants": {variant: report}, ...}."""
    from ..data.synth.channel import VARIANTS
    from ..data.synth.generate import generate
    from ..labels import RML22_CLASSES, RML22_SNRS

    variants = tuple(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        raise ValueError(f"variants must be names from {', '.join(VARIANTS)}, got {list(variants)}")
    noiseless = [v for v in variants if v not in ("all", "awgn")]
    if noiseless:
        raise ValueError(f"variant {noiseless[0]!r} adds no noise: its frames have no SNR to estimate "
                         "(use all or awgn)")
    classes = tuple(RML22_CLASSES if classes is None else classes)
    snrs = tuple(RML22_SNRS if snrs is None else snrs)
    out = {"generator": {"classes": list(classes), "snrs": [float(s) for s in snrs],
                         "frames_per_key": int(frames_per_key), "seed": int(seed),
                         "frame_len": int(frame_len)},
           "variants": {}}
    for variant in variants:
        ds, clean = generate(classes=classes, snrs=snrs, frames_per_key=frames_per_key, variant=variant,
                             seed=seed, frame_len=frame_len, workers=workers, progress=progress,
                             return_clean=True)
        out["variants"][variant] = measure_dataset(ds, clean)
    return out


def measure_file(path, trusted=False):
    """The estimator on the frames of a dataset file (reference: its SNR labels)."""
    from ..data.files import load_dataset

    ds = load_dataset(path, trusted=trusted)
    return {"data": str(path), "variants": {"file": measure_dataset(ds)}}


# ------------------------------------------------------------------ markdown
def _f(value, digits=1):
    return "" if value is None else f"{value:.{digits}f}"


def markdown(report, command=None):
    """The report as markdown: per variant, the pooled table (error statistics
    per SNR bin) and the per-class mean and standard deviation of the error."""
    lines = ["# SNR estimator accuracy", ""]
    if command:
        lines += ["Made by:", "", "```", command, "```", ""]
    lines += ["Error = estimate - reference, in dB, per nominal SNR bin. "
              f"q10/q50/q90: the {'/'.join(str(q) for q in QUANTILES)} % quantiles of the error.", ""]
    for variant, rep in report["variants"].items():
        lines += [f"## {variant}", "", f"{rep['frames']} frames of {rep['frame_len']} samples; "
                  f"reference: {rep['reference']}.", "",
                  "| SNR bin (dB) | frames | mean reference | mean estimate | mean error | std | q10 | q50 | q90 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for snr, s in rep["pooled"].items():
            lines.append(f"| {snr} | {s['frames']} | {_f(s.get('reference_mean'))} | {_f(s.get('estimate_mean'))} "
                         f"| {_f(s.get('mean'))} | {_f(s.get('std'))} | {_f(s.get('q10'))} | {_f(s.get('q50'))} "
                         f"| {_f(s.get('q90'))} |")
        bins = list(rep["pooled"])
        lines += ["", f"Per class ({variant}): mean error / std (dB).", "",
                  "| class | " + " | ".join(bins) + " |", "|---|" + "---:|" * len(bins)]
        for name, per_snr in rep["per_class"].items():
            cells = [f"{_f(per_snr[b].get('mean'))} / {_f(per_snr[b].get('std'))}" if b in per_snr else ""
                     for b in bins]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
