"""Would early exits on a stem of their own, in front of the reference, meet the goals?

The design: the early exits read their own narrow stem (a model's conv1,
conv2 and exit heads), and a frame that none of them lets out goes through
the reference backbone from its raw samples, so the final answer is the
reference's own.  Before building and training it, this projects it with
the exits of an existing early-exit MODEL (the shipped model's were trained
jointly with a whole network, the strongest V0/V1 this project has):

* each exit's answers: MODEL's early exits, the REFERENCE's backbone as the
  final exit (frames of the validation and test splits);
* each path's time, in units of the reference backbone's (one torch thread,
  frames at 20 dB, paired rounds): leaving at an early exit costs what it
  costs in MODEL (training.time_costs.measure_engine_path_costs, scaled by
  MODEL's backbone time against the reference's); going on costs MODEL's
  path to its last early exit plus the reference backbone (the copy of the
  raw frames that go on is not counted);
* thresholds calibrated on validation with calibrate's own search and those
  costs (so the objective is the projected time at --favour-snr): per exit,
  give-up values, per class, under each budget of --budgets;
* on the test split: accuracy against the reference's backbone (all SNRs,
  >= HIGH_SNR_DB, frame pairs each way), the exit shares and the projected
  speed-up at -20, 0, 10 and 20 dB; and two comparison lines: MODEL itself
  with its calibrated thresholds (projected the same way, against its
  `amcee bench` figure), and the oracle rule that lets a frame out at the
  first exit that gives the reference's answer (the design's ceiling with
  these exits);
* the same calibrations for a variant: MODEL whole, its own final exit
  as a third early exit (with a give-up value: the one searched there),
  the reference after it (a frame pays MODEL's whole path and the
  reference).

Prints one JSON line of path times, then one per rule.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/separate_stem_projection.py \\
        --data data/synth_v2.npz --model python/amcee/models/amcee_default.pt \\
        --reference python/amcee/models/paper_backbone.pt
"""
import argparse
import json
import math

import numpy as np
import torch

from gnuradio.amcee.data.dataset import labels_for_model, split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.timing import paired_ratio_median, time_interleaved_samples
from gnuradio.amcee.training.calibrate import Evaluator, search, search_class_thresholds
from gnuradio.amcee.training.evaluate import HIGH_SNR_DB
from gnuradio.amcee.training.exit_simulation import entropy10, pick_by_exit, simulate_exits
from gnuradio.amcee.training.time_costs import measure_engine_path_costs

SNRS = (-20.0, 0.0, 10.0, 20.0)


def exit_outputs(model, reference, ds, split):
    """(labels, snrs, the design's exits' probabilities [K, N, C] (MODEL's early exits, then the
    reference's backbone), MODEL's own final exit's probabilities [N, C]) for the scored frames of ``split``."""
    labels, scored = labels_for_model(ds, model.classes, model.frame_len)
    idx = split_indices(ds, split)
    idx = idx[scored[idx]]
    frames = ds.frames[idx]
    own, valid = model.all_exit_probs(frames)
    ref, ref_valid = reference.backbone_probs(frames)
    keep = valid & ref_valid
    cascade = np.concatenate([own[:-1], ref[None]])[:, keep]
    return labels[idx[keep]], ds.snrs[idx[keep]], cascade, own[-1][keep]


def with_own_final(split):
    """``split`` with MODEL's own final exit as one more early exit before the reference."""
    labels, snrs, probs, own_final = split
    return labels, snrs, np.concatenate([probs[:-1], own_final[None], probs[-1:]]), own_final


def path_times(model, reference, frames, repeats):
    """(MODEL's path times, the design's path times), both in units of the reference backbone's time."""
    backbones = {"model": lambda: model.backbone_probs(frames), "reference": lambda: reference.backbone_probs(frames)}
    with torch.inference_mode():
        samples = time_interleaved_samples(backbones, repeats)
    backbone = paired_ratio_median(samples["model"], samples["reference"])
    costs = measure_engine_path_costs(model, frames, repeats=repeats)
    k = model.num_exits
    own = [backbone * costs[(j, (True,) * j)] for j in range(k)]
    return own, own[:-1] + [own[-2] + 1.0]


def score(exits, answers, labels, snrs, reference_answers, costs):
    """Accuracy against the reference's, shares and projected speed-up per SNR of one rule on one split."""
    right = answers == labels
    ref_right = reference_answers == labels
    high = snrs >= HIGH_SNR_DB - 1e-6
    out = {}
    for name, mask in (("all", np.ones_like(high)), ("high_snr", high)):
        n = int(mask.sum())
        only_it = int((right & ~ref_right)[mask].sum())
        only_ref = int((ref_right & ~right)[mask].sum())
        out[name] = {"accuracy": round(100 * float(right[mask].mean()), 2),
                     "reference": round(100 * float(ref_right[mask].mean()), 2),
                     "difference_pp": round(100 * (only_it - only_ref) / n, 2),
                     "standard_error_pp": round(100 * math.sqrt(only_it + only_ref) / n, 2),
                     "only_it_right": only_it, "only_reference_right": only_ref}
    out["per_snr"] = {}
    for snr in SNRS:
        mask = snrs == snr
        if mask.any():
            shares = np.bincount(exits[mask], minlength=len(costs)) / mask.sum()
            out["per_snr"][f"{snr:g}"] = {"shares": [round(float(s), 3) for s in shares],
                                          "projected_speedup": round(1.0 / float(shares @ np.asarray(costs)), 2)}
    return out


class LastGiveUpEvaluator(Evaluator):
    """calibrate's Evaluator with give-up values searched at the last early exit only: with three
    early exits the full give-up search (11 values per exit, a threshold grid for each combination)
    did not finish in 12 minutes, and the last one is where a frame that no exit can place leaves
    before it costs the reference's time."""

    def give_up_candidates(self, k):
        return super().give_up_candidates(k) if k == self.num_exits - 2 else [math.inf]


def calibrated(val, budget, high_snr_budget, favour_snr, costs):
    """Thresholds and give-up values chosen on validation by calibrate's search (give-up values,
    then per class; with more than two early exits, give-up at the last one only)."""
    labels, snrs, probs, _ = val
    make = Evaluator if len(costs) <= 3 else LastGiveUpEvaluator
    ev = make(probs, labels, costs, 1.0, give_up=[math.inf] * (len(costs) - 1), snrs=snrs, favour_snr=favour_snr)
    best, _ = search(ev, max_loss_pp=budget, give_up=True, max_loss_high_snr_pp=high_snr_budget)
    best = search_class_thresholds(ev, best, budget, max_loss_high_snr_pp=high_snr_budget)
    return best["thresholds"], best["give_up"]


def apply_rule(split, thresholds, give_up):
    labels, snrs, probs, _ = split
    predictions = probs.argmax(2)
    exits = simulate_exits(np.stack([entropy10(p) for p in probs]), thresholds, give_up, predictions)
    return exits, pick_by_exit(predictions, exits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True, help="early-exit model whose exits are projected")
    parser.add_argument("--reference", required=True, help="the backbone used as the final stage")
    parser.add_argument("--budgets", nargs="+", default=["0.4:0", "0.4:none", "0.2:0"],
                        help="calibration budgets ALL:HIGH in pp below the final exit on validation, "
                             "HIGH at >= 10 dB or none (default: 0.4:0 0.4:none 0.2:0)")
    parser.add_argument("--favour-snr", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=15, help="paired timing rounds (default: 15)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    model = EarlyExitEngine(args.model, num_threads=1)
    reference = EarlyExitEngine(args.reference, num_threads=1)
    if list(reference.classes) != list(model.classes):
        parser.error(f"{args.reference} has classes {reference.classes}, {args.model} {model.classes}: "
                     "the projection compares answers column by column")
    test_idx = split_indices(ds, "test")
    timed = ds.frames[test_idx[ds.snrs[test_idx] == 20.0][:1024]]
    own_costs, costs = path_times(model, reference, timed, args.repeats)
    print(json.dumps({"model": args.model, "reference": args.reference,
                      "model_path_times": [round(c, 3) for c in own_costs],
                      "design_path_times": [round(c, 3) for c in costs]}), flush=True)
    val = exit_outputs(model, reference, ds, "val")
    test = exit_outputs(model, reference, ds, "test")
    labels, snrs, probs, own_final = test
    reference_answers = probs[-1].argmax(1)

    # MODEL as it is: its own final exit and its calibrated thresholds.
    own_probs = np.concatenate([probs[:-1], own_final[None]])
    exits, answers = apply_rule((labels, snrs, own_probs, None), model.thresholds, model.give_up)
    print(json.dumps({"rule": "the model itself (its final exit, its thresholds)",
                      **score(exits, answers, labels, snrs, reference_answers, own_costs)}), flush=True)

    # Oracle: out at the first exit that gives the reference's answer.
    agree = probs.argmax(2) == reference_answers[None]
    exits = np.argmax(agree, axis=0)
    print(json.dumps({"rule": "oracle (first exit that agrees with the reference)",
                      **score(exits, reference_answers, labels, snrs, reference_answers, costs)}), flush=True)

    # The reference after the last early exit (the design), or after MODEL's own final exit.
    designs = {"the reference after the last early exit": (val, test, costs),
               "the reference after the model's own final exit": (
                   with_own_final(val), with_own_final(test), own_costs + [own_costs[-1] + 1.0])}
    for design, (val_split, test_split, design_costs) in designs.items():
        for spec in args.budgets:
            budget, high = spec.split(":")
            thresholds, give_up = calibrated(val_split, float(budget), None if high == "none" else float(high),
                                             args.favour_snr, design_costs)
            exits, answers = apply_rule(test_split, thresholds, give_up)
            print(json.dumps({"rule": f"{design}, calibrated: {budget} pp all SNRs, {high} pp at >= 10 dB",
                              "path_times": [round(c, 3) for c in design_costs], "give_up": give_up,
                              **score(exits, answers, labels, snrs, reference_answers, design_costs)}),
                  flush=True)


if __name__ == "__main__":
    main()
