"""Evaluation of an exported early-exit model on a dataset split (``amcee eval``).

Early-exit predictions come from :meth:`EarlyExitEngine.classify`, the code the
GNU Radio block and ``amcee replay`` run; a frame's decision depends only on
the frame, its SNR value and the settings, so ``predictions.npz`` equals a
replay's frame for frame.  With a model that has an SNR table the engine gets
each frame's SNR as the block would (``snr_source``: the estimator's, as the
snr_estimator block or the classifier's estimate_snr give it; or none = the
plain rule, the block's without either), and the plain rule is timed beside
it.  Threshold sweeps are simulated from every
exit's probabilities (``all_exit_probs``) with the same exit rule.  Timing runs
the batched engine and the backbone alone on each SNR subset in the same
process, interleaved, and reports medians; the compute ceiling per SNR is the
speed-up the exit shares allow by multiply-accumulates (``exit_costs``), the
time ceiling the same with the segments' and heads' seconds measured on this
machine (``training/time_costs.py``).
"""
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..data.dataset import labels_for_model, split_indices
from ..data.files import load_dataset
from ..inference.engine import Classification, EarlyExitEngine
from ..inference.model_file import format_thresholds, thresholds_to_json
from ..inference.snr_table import estimate_snr_db
from ..timing import host_info, paired_ratio_median, paired_ratio_spread, time_interleaved_samples
from .exit_simulation import (PAPER_THRESHOLD, PAPER_THRESHOLDS, entropy10, exit_shares, expected_macs,
                              pick_by_exit, simulate_exits, simulate_exits_by_snr)

#: Where eval takes each frame's SNR value from (see frame_snr_values).
SNR_SOURCES = ("estimate", "none")
from .time_costs import measure_exit_time_costs

#: A fine sweep for the accuracy-versus-compute frontier (PAPER_THRESHOLDS are added).
SWEEP_THRESHOLDS = tuple(round(float(t), 3) for t in np.concatenate(
    [np.arange(0.0, 0.1, 0.01), np.arange(0.1, 1.0, 0.05)]))
#: SNR (dB) from which a frame counts as high-SNR (the accuracy "at >= 10 dB" of reports and goals).
HIGH_SNR_DB = 10.0


def _acc(pred, labels):
    return float((pred == labels).mean()) if len(labels) else float("nan")


def confusion(pred, labels, num_classes):
    """Rows = true class, columns = predicted class (counts)."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def operating_point(all_probs, entropies, labels, snrs, thresholds, costs, backbone_macs, give_up=None):
    """Accuracy, exit shares and compute of simulated early exit at ``thresholds``."""
    k = all_probs.shape[0]
    predictions = all_probs.argmax(2)
    exits = simulate_exits(entropies, thresholds, give_up, predictions)
    pred = pick_by_exit(predictions, exits)
    shares = exit_shares(exits, k)
    macs = expected_macs(shares, costs)
    point = {"thresholds": thresholds_to_json(thresholds), "accuracy": _acc(pred, labels),
             "accuracy_high_snr": _acc(pred[snrs >= HIGH_SNR_DB], labels[snrs >= HIGH_SNR_DB]),
             "exit_shares": shares.tolist(), "expected_macs": macs,
             "compute_fraction": macs / backbone_macs, "compute_ceiling": backbone_macs / macs}
    return point, exits, pred


def per_snr_table(labels, snrs, ee_pred, exits, bb_pred, k):
    rows = []
    for snr in np.unique(snrs):
        m = snrs == snr
        early = m & (exits < k - 1)
        rows.append({
            "snr": float(snr), "frames": int(m.sum()),
            "accuracy_backbone": _acc(bb_pred[m], labels[m]),
            "accuracy_early_exit": _acc(ee_pred[m], labels[m]),
            "exit_shares": exit_shares(exits[m], k).tolist(),
            "early_exit_share": float(early.sum() / max(1, m.sum())),
            "accuracy_of_early_exited": _acc(ee_pred[early], labels[early]),
            "accuracy_per_exit_taken": [_acc(ee_pred[m & (exits == j)], labels[m & (exits == j)])
                                        for j in range(k)],
        })
    return rows


def frame_snr_values(frames, snr_source):
    """Each frame's SNR value as the block would have it: the estimator's
    ("estimate", the snr_estimator block or the classifier's estimate_snr),
    or None ("none": the plain rule).  Not the dataset's true SNR: the table
    is fitted on estimates, and the block does not read a replayed dataset's
    ``snr`` tags for it (docs/snr-aware-exit.md)."""
    if snr_source not in SNR_SOURCES:
        raise ValueError(f"snr_source must be one of {', '.join(SNR_SOURCES)}, got {snr_source!r}")
    if snr_source == "none":
        return None
    return estimate_snr_db(frames)


def time_per_snr(engine, frames, snrs, thresholds_sets, repeats, done=None, frame_snr=None):
    """Median seconds per frame of the engine (per threshold set) and of the
    backbone alone on each SNR subset, all interleaved in one loop, and the
    quartiles of the per-round speed-ups (how much they move between rounds).

    A set of None runs the engine's own settings with the frames' SNR
    values ``frame_snr`` (the SNR table, if the model has one), "plain" the
    engine's settings without SNR values.  ``done()`` is called after each SNR."""
    out = []
    for snr in np.unique(snrs):
        m = snrs == snr
        subset = frames[m]
        subset_snr = None if frame_snr is None else frame_snr[m]
        candidates = {"backbone": lambda s=subset: engine.backbone_probs(s)}
        for name, t in thresholds_sets.items():
            if t is None:
                candidates[name] = lambda s=subset, v=subset_snr: engine.classify(s, snr_db=v)
            elif isinstance(t, str):  # "plain"
                candidates[name] = lambda s=subset: engine.classify(s)
            else:
                candidates[name] = lambda s=subset, t=t: engine.classify(s, thresholds=t)
        samples = time_interleaved_samples(candidates, repeats)
        out.append({"snr": float(snr), "frames": int(len(subset)),
                    "seconds_per_frame": {n: statistics.median(v) / len(subset) for n, v in samples.items()},
                    "speedup_median": {n: paired_ratio_median(samples["backbone"], v)
                                       for n, v in samples.items() if n != "backbone"},
                    "speedup_quartiles": {n: paired_ratio_spread(samples["backbone"], v)
                                          for n, v in samples.items() if n != "backbone"}})
        if done is not None:
            done()
    return out


#: Uniform thresholds timed beside the model's own settings: the paper's other two.
TIMED_THRESHOLDS = tuple(t for t in PAPER_THRESHOLDS if t != PAPER_THRESHOLD)


@dataclass
class _Decisions:
    """What one evaluation decided, frame by frame (N frames, K exits)."""

    engine: Classification   # the engine's own decisions: what the block would do
    backbone_pred: np.ndarray  # [N] class of the backbone alone
    all_probs: np.ndarray      # [K, N, C] every exit's probabilities
    entropies: np.ndarray      # [K, N]
    give_up: list              # the engine's give-up entropies, per early exit

    @property
    def early_exit_pred(self):
        return self.engine.classes


def _split_frames(engine, data, split, split_seed):
    """(indices, frames, labels in the model's class order, SNRs) of the
    frames of ``split`` of the dataset file ``data`` whose class the model has."""
    ds = load_dataset(data)
    labels, scored = labels_for_model(ds, engine.classes, engine.frame_len, f"model {engine.model.path}")
    idx = split_indices(ds, split, seed=split_seed)
    idx = idx[scored[idx]]
    return idx, ds.frames[idx], labels[idx], ds.snrs[idx]


def _classify(engine, frames, frame_snr, split, done):
    """The engine's decisions, the backbone's and every exit's outputs."""
    result = engine.classify(frames, snr_db=frame_snr)
    done()
    bb_probs, _ = engine.backbone_probs(frames)
    all_probs, valid = engine.all_exit_probs(frames)
    if not valid.all():
        raise ValueError(f"{int((~valid).sum())} frames of the {split} split are all-zero or not finite")
    return _Decisions(engine=result, backbone_pred=bb_probs.argmax(1), all_probs=all_probs,
                      entropies=np.stack([entropy10(p) for p in all_probs]), give_up=list(engine.give_up))


def _accuracy_report(engine, decisions, labels, snrs, frame_snr):
    """The report's model settings, overall accuracy, exits and compute, and per-SNR table."""
    meta, k = engine.meta, engine.num_exits
    costs, backbone_macs = meta["exit_macs"], meta["backbone_macs"]
    ee_pred, bb_pred, exits = decisions.early_exit_pred, decisions.backbone_pred, decisions.engine.exits
    predictions = decisions.all_probs.argmax(2)
    plain_exits = simulate_exits(decisions.entropies, engine.thresholds, decisions.give_up, predictions)
    table = engine.snr_table if engine.uses_snr_table and frame_snr is not None else None
    sim_exits = plain_exits if table is None else simulate_exits_by_snr(
        decisions.entropies, predictions, table, frame_snr, engine.thresholds, decisions.give_up)
    report = {
        "classes": list(engine.classes), "exit_names": list(engine.exit_names),
        "thresholds": thresholds_to_json(engine.thresholds),
        "give_up": [None if g == float("inf") else g for g in decisions.give_up],
        "snr_table_used": table is not None, "exit_macs": costs, "backbone_macs": backbone_macs,
        "calibration": meta.get("calibration"),
        "simulation_agreement": float((sim_exits == exits).mean()),
    }
    high = snrs >= HIGH_SNR_DB
    shares = exit_shares(exits, k)
    report["overall"] = {
        "accuracy_backbone": _acc(bb_pred, labels), "accuracy_early_exit": _acc(ee_pred, labels),
        "accuracy_backbone_high_snr": _acc(bb_pred[high], labels[high]),
        "accuracy_early_exit_high_snr": _acc(ee_pred[high], labels[high]),
        "accuracy_loss_pp": 100 * (_acc(bb_pred, labels) - _acc(ee_pred, labels)),
        "accuracy_per_exit_all_frames": [_acc(decisions.all_probs[j].argmax(1), labels) for j in range(k)],
        "exit_shares": shares.tolist(), "expected_macs": expected_macs(shares, costs),
        "compute_ceiling": backbone_macs / expected_macs(shares, costs),
    }
    if table is not None:  # the plain rule on the same frames, simulated (the engine's rule, bit for bit)
        plain_pred = pick_by_exit(predictions, plain_exits)
        report["overall"]["accuracy_plain_rule"] = _acc(plain_pred, labels)
        report["overall"]["exit_shares_plain_rule"] = exit_shares(plain_exits, k).tolist()
    report["per_snr"] = per_snr_table(labels, snrs, ee_pred, exits, bb_pred, k)
    return report


def _threshold_points(engine, decisions, labels, snrs, sweep):
    """The threshold sweep (one T for every early exit), the paper's three
    thresholds with their per-SNR tables, and the confusion matrices."""
    k, n_classes = engine.num_exits, len(engine.classes)
    costs, backbone_macs = engine.meta["exit_macs"], engine.meta["backbone_macs"]
    ee_pred, bb_pred = decisions.early_exit_pred, decisions.backbone_pred

    def point(t):
        return operating_point(decisions.all_probs, decisions.entropies, labels, snrs, [t] * (k - 1),
                               costs, backbone_macs, decisions.give_up)

    paper = {}
    early = k > 1  # a backbone alone (one exit) has no threshold to sweep
    for t in PAPER_THRESHOLDS if early else ():
        row, ex, pred = point(t)
        row["per_snr"] = per_snr_table(labels, snrs, pred, ex, bb_pred, k)
        paper[str(t)] = row
    high = snrs >= HIGH_SNR_DB
    return {"sweep": [point(t)[0] for t in sorted(set(sweep) | set(PAPER_THRESHOLDS))] if early else [],
            "paper_thresholds": paper,
            "confusion": {"early_exit": confusion(ee_pred, labels, n_classes).tolist(),
                          "backbone": confusion(bb_pred, labels, n_classes).tolist(),
                          "early_exit_high_snr": confusion(ee_pred[high], labels[high], n_classes).tolist()}}


def _add_timing(report, engine, frames, snrs, repeats, bar, frame_snr):
    """Time per SNR (engine, uniform thresholds, backbone) and the time
    ceiling, written into the report's per-SNR rows and overall."""
    k = engine.num_exits
    costs, backbone_macs = engine.meta["exit_macs"], engine.meta["backbone_macs"]
    bar.set_description(f"eval: timing ({repeats} repeats)")
    sets = {"model": None}  # the engine's own settings and SNR values (the decisions above)
    if report["snr_table_used"]:
        sets["plain"] = "plain"
    # The paper's points that _threshold_points made (none for a backbone alone).
    timed_thresholds = [t for t in TIMED_THRESHOLDS if str(t) in report["paper_thresholds"]]
    for t in timed_thresholds:
        sets[f"T={t}"] = [t] * (k - 1)
    timing_rows = time_per_snr(engine, frames, snrs, sets, repeats, done=bar.update, frame_snr=frame_snr)
    bar.set_description("eval: time ceiling")
    times = measure_exit_time_costs(engine, frames)
    bar.update()
    report["exit_time_costs"] = times.to_json()
    for row, timed in zip(report["per_snr"], timing_rows):
        spf = timed["seconds_per_frame"]
        row["seconds_per_frame_backbone"] = spf["backbone"]
        row["seconds_per_frame_engine"] = spf["model"]
        row["speedup"] = timed["speedup_median"]["model"]
        row["speedup_of_medians"] = spf["backbone"] / spf["model"]
        row["speedup_quartiles"] = timed["speedup_quartiles"]["model"]
        if "plain" in spf:
            row["speedup_plain_rule"] = timed["speedup_median"]["plain"]
        row["compute_ceiling"] = backbone_macs / expected_macs(row["exit_shares"], costs)
        row["speedup_over_ceiling"] = row["speedup"] / row["compute_ceiling"]
        row["time_ceiling"] = times.ceiling(row["exit_shares"])
        row["speedup_over_time_ceiling"] = row["speedup"] / row["time_ceiling"]
    for t in timed_thresholds:
        for row, timed in zip(report["paper_thresholds"][str(t)]["per_snr"], timing_rows):
            spf = timed["seconds_per_frame"]
            row["seconds_per_frame_backbone"] = spf["backbone"]
            row["seconds_per_frame_engine"] = spf[f"T={t}"]
            row["speedup"] = timed["speedup_median"][f"T={t}"]
    overall = report["overall"]
    total_bb = sum(r["seconds_per_frame_backbone"] * r["frames"] for r in report["per_snr"])
    total_ee = sum(r["seconds_per_frame_engine"] * r["frames"] for r in report["per_snr"])
    overall["speedup"] = total_bb / total_ee
    overall["speedup_over_ceiling"] = overall["speedup"] / overall["compute_ceiling"]
    overall["time_ceiling"] = times.ceiling(overall["exit_shares"])
    overall["speedup_over_time_ceiling"] = overall["speedup"] / overall["time_ceiling"]
    report["timing"] = {"repeats": repeats, "max_batch": engine.max_batch,
                        "threads": __import__("torch").get_num_threads(),
                        "method": "median of interleaved repeats per SNR subset, same process; a speed-up "
                                  "is the median of the per-round ratios (all SNRs: total medians)",
                        "host": host_info()}


def evaluate_model(model_path, data, split="test", split_seed=0, thresholds=None,
                   sweep=SWEEP_THRESHOLDS, repeats=5, max_batch=None, threads=0, device="cpu",
                   timing=True, progress=True, snr_source="none"):
    """Everything ``amcee eval`` reports, as (report dict, per-frame predictions dict).

    ``snr_source``: each frame's SNR value for the model's SNR table
    (frame_snr_values).  ``progress``: a line and a progress bar (on a
    terminal) on stderr."""
    from tqdm import tqdm

    engine = EarlyExitEngine(model_path, thresholds=thresholds, device=device,
                             num_threads=threads, max_batch=max_batch)
    idx, frames, labels, snrs = _split_frames(engine, data, split, split_seed)
    frame_snr = frame_snr_values(frames, snr_source)
    if progress:
        print(f"eval: {len(idx)} {split} frames, exits {', '.join(engine.exit_names)}, thresholds "
              f"{format_thresholds(engine.thresholds, engine.exit_names, engine.classes)}", file=sys.stderr)
    n_snrs = len(np.unique(snrs))
    # One step per SNR subset classified and, with timing, per SNR subset timed
    # and one for the time ceiling's measurement.
    bar = tqdm(total=n_snrs + 2 if timing else 1, desc="eval: classify", unit="step",
               disable=None if progress else True, dynamic_ncols=True)
    with bar:
        t0 = time.perf_counter()
        decisions = _classify(engine, frames, frame_snr, split, bar.update)
        report = {
            "model": os.path.abspath(model_path), "model_version": engine.model.version,
            "model_description": engine.model.description,
            "data": os.path.abspath(data), "split": split, "split_seed": split_seed, "frames": int(len(idx)),
            "snr_source": snr_source,
            **_accuracy_report(engine, decisions, labels, snrs, frame_snr),
            **_threshold_points(engine, decisions, labels, snrs, sweep),
        }
        report["classify_seconds"] = round(time.perf_counter() - t0, 2)
        if timing:
            _add_timing(report, engine, frames, snrs, repeats, bar, frame_snr)
    predictions = {"index": idx.astype(np.int64), "exit": decisions.engine.exits.astype(np.int64),
                   "class": decisions.early_exit_pred.astype(np.int64),
                   "entropy": decisions.engine.entropy.astype(np.float32),
                   "label": labels.astype(np.int64), "snr": snrs.astype(np.float32),
                   "backbone_class": decisions.backbone_pred.astype(np.int64)}
    return report, predictions


def write_outputs(report, predictions, out_dir):
    """eval.json, predictions.npz, the figures and summary.md in ``out_dir``."""
    from . import eval_plots

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=1)
    np.savez(os.path.join(out_dir, "predictions.npz"), **predictions)
    report["figures"] = eval_plots.write_figures(report, out_dir)
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary_markdown(report))


def _pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def summary_markdown(r):
    o = r["overall"]
    names = r["exit_names"]
    lines = [f"# Evaluation of `{r['model_version']}`", ""]
    if r.get("model_description"):
        lines += [r["model_description"], ""]
    lines += [
        f"Model `{os.path.basename(r['model'])}`, exits {', '.join(names)}, thresholds "
        f"{format_thresholds(r['thresholds'], names, r['classes'])}; data `{os.path.basename(r['data'])}`, "
        f"{r['split']} split ({r['frames']} frames). SNR table: "
        + (f"used, each frame's SNR from {r.get('snr_source')} (plain rule: accuracy "
           f"{_pct(o.get('accuracy_plain_rule'))})." if r.get("snr_table_used") else "not used (plain rule)."), "",
        "| | backbone alone | early exit |", "|---|---|---|",
        f"| accuracy, all SNRs | {_pct(o['accuracy_backbone'])} | {_pct(o['accuracy_early_exit'])} |",
        f"| accuracy, SNR >= {HIGH_SNR_DB:g} dB | {_pct(o['accuracy_backbone_high_snr'])} | "
        f"{_pct(o['accuracy_early_exit_high_snr'])} |", "",
        f"Accuracy loss of early exit: {o['accuracy_loss_pp']:.2f} pp. Exit shares (all SNRs): "
        + ", ".join(f"{n} {_pct(s)}" for n, s in zip(names, o["exit_shares"]))
        + f". Compute ceiling {o['compute_ceiling']:.2f}x"
        + (f", measured speed-up {o['speedup']:.2f}x ({o['speedup_over_ceiling']:.0%} of the ceiling)."
           if "speedup" in o else "."), "",
    ]
    if "time_ceiling" in o:
        rel = r["exit_time_costs"]["relative"]
        lines += ["Time ceiling (the same accounting with the seconds of each segment and head measured on "
                  "this machine, no bookkeeping; training/time_costs.py): a frame leaving at "
                  + ", ".join(f"{n} costs {t:.3f}" for n, t in zip(names, rel))
                  + " of the backbone's time (by MACs: "
                  + ", ".join(f"{c / r['backbone_macs']:.3f}" for c in r["exit_macs"])
                  + f"); all SNRs {o['time_ceiling']:.2f}x, measured {o['speedup_over_time_ceiling']:.0%} of it.", ""]
    timed = "speedup" in r["per_snr"][0]
    head = "| SNR (dB) | backbone acc | early-exit acc | " + " | ".join(f"share {n}" for n in names)
    head += " | acc of early-exited |"
    sep = "|---" * (4 + len(names))
    if timed:
        head += " speed-up (quartiles of rounds) | ceiling | measured/ceiling | time ceiling | measured/time ceiling |"
        sep += "|---|---|---|---|---"
    lines += [head, sep + "|"]
    for row in r["per_snr"]:
        line = (f"| {row['snr']:g} | {_pct(row['accuracy_backbone'])} | {_pct(row['accuracy_early_exit'])} | "
                + " | ".join(_pct(s) for s in row["exit_shares"])
                + f" | {_pct(row['accuracy_of_early_exited'])} |")
        if timed:
            q = row.get("speedup_quartiles") or [float("nan")] * 2
            line += (f" {row['speedup']:.2f}x ({q[0]:.2f}-{q[1]:.2f}) | {row['compute_ceiling']:.2f}x | "
                     f"{row['speedup_over_ceiling']:.0%} |")
            if "time_ceiling" in row:
                line += f" {row['time_ceiling']:.2f}x | {row['speedup_over_time_ceiling']:.0%} |"
            else:
                line += " | |"
        lines.append(line)
    if r["sweep"]:
        lines += ["", "Threshold sweep (one T for every early exit, simulated from all exits):", "",
                  "| T | accuracy | acc SNR >= 10 dB | compute | ceiling | " + " | ".join(f"share {n}" for n in names)
                  + " |", "|---" * (5 + len(names)) + "|"]
    for p in r["sweep"]:
        lines.append(f"| {p['thresholds'][0]:g} | {_pct(p['accuracy'])} | {_pct(p['accuracy_high_snr'])} | "
                     f"{_pct(p['compute_fraction'])} | {p['compute_ceiling']:.2f}x | "
                     + " | ".join(_pct(s) for s in p["exit_shares"]) + " |")
    if r.get("timing"):
        t = r["timing"]
        lines += ["", f"Timing: {t['method']}; {t['repeats']} repeats, batch {t['max_batch']}, "
                      f"{t['threads']} threads. Engine-vs-simulation exit agreement "
                      f"{r['simulation_agreement']:.4%}."]
    if r.get("figures"):
        lines += ["", "Figures: " + ", ".join(f"[{os.path.basename(p)}]({os.path.basename(p)})"
                                              for p in r["figures"])]
    return "\n".join(lines) + "\n"
