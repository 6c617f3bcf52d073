"""Does a calibrated accuracy bound hold on frames the calibration did not see?

`amcee calibrate --max-loss 0.4 --max-loss-high-snr 0` chooses thresholds
whose loss against the model's own final exit is within the budget on the
validation split.  For each --margins Z this runs the same search (give-up
values, then one threshold per exit and predicted class; the model's
heads as they are, temperatures already in them) with the budgets tightened
by Z standard errors of each point's loss (the square root of the frames
whose answer the rule changes from right to wrong or back, over the
frames), then scores the chosen thresholds on the test split.  Prints one
JSON line per margin: the losses on validation and on test (pp, all SNRs
and >= HIGH_SNR_DB) and the compute at 20 dB as a share of the backbone's
MACs (the search's objective).

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/calibration_margin_study.py \\
        --data data/synth_v2.npz --model python/amcee/models/amcee_default.pt --margins 0 1 2
"""
import argparse
import json
import math

import numpy as np

from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.training import calibrate
from gnuradio.amcee.training.exit_simulation import pick_by_exit, simulate_exits


class MarginEvaluator(calibrate.Evaluator):
    """calibrate's Evaluator whose points also carry the standard errors of their losses."""

    def point(self, thresholds):
        p = super().point(thresholds)
        exits = simulate_exits(self.entropies, thresholds, self.give_up, self.predictions)
        changed = pick_by_exit(self.correct, exits) != self.correct[-1]
        p["standard_error_pp"] = 100 * math.sqrt(changed.sum()) / len(changed)
        p["high_snr_standard_error_pp"] = 100 * math.sqrt(changed[self.high_snr].sum()) / self.high_snr.sum()
        return p


def margin_budget(margin):
    """calibrate.within_budget with both losses raised by ``margin`` standard errors."""
    def within(p, max_loss_pp, max_loss_high_snr_pp=None):
        if p["accuracy_loss_pp"] + margin * p["standard_error_pp"] > max_loss_pp + 1e-9:
            return False
        return max_loss_high_snr_pp is None or (
            p["high_snr_accuracy_loss_pp"] + margin * p["high_snr_standard_error_pp"] <= max_loss_high_snr_pp + 1e-9)
    return within


def split_outputs(engine, data, split):
    """(probabilities [K, N, C], labels, SNRs) of the frames of ``split`` that calibrate itself scores."""
    ds, rows, labels, probs = calibrate._split_outputs(engine, data, split, split_seed=0)
    return probs, labels, ds.snrs[rows]


def evaluator(split, costs, backbone, give_up):
    probs, labels, snrs = split
    return MarginEvaluator(probs, labels, costs, backbone, give_up=list(give_up), snrs=snrs, favour_snr=20.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--max-loss", type=float, default=0.4)
    parser.add_argument("--max-loss-high-snr", type=float, default=0.0)
    args = parser.parse_args()
    engine = EarlyExitEngine(args.model, num_threads=1)
    costs, backbone = engine.meta["exit_macs"], engine.meta["backbone_macs"]
    val, test = split_outputs(engine, args.data, "val"), split_outputs(engine, args.data, "test")
    no_give_up = [math.inf] * (engine.num_exits - 1)
    for margin in args.margins:
        calibrate.within_budget = margin_budget(margin)  # search and search_class_thresholds read it
        ev = evaluator(val, costs, backbone, no_give_up)
        best, _ = calibrate.search(ev, max_loss_pp=args.max_loss, give_up=True,
                                   max_loss_high_snr_pp=args.max_loss_high_snr)
        best = calibrate.search_class_thresholds(ev, best, args.max_loss,
                                                 max_loss_high_snr_pp=args.max_loss_high_snr)
        give_up = [math.inf if g is None else g for g in best["give_up"]]
        on_test = evaluator(test, costs, backbone, give_up).point(
            [np.asarray(t) for t in best["thresholds"]])
        print(json.dumps({
            "model": args.model, "margin_standard_errors": margin,
            "budget_pp": [args.max_loss, args.max_loss_high_snr],
            "validation_loss_pp": [round(best["accuracy_loss_pp"], 2), round(best["high_snr_accuracy_loss_pp"], 2)],
            "test_loss_pp": [round(on_test["accuracy_loss_pp"], 2), round(on_test["high_snr_accuracy_loss_pp"], 2)],
            "test_standard_error_pp": [round(on_test["standard_error_pp"], 2),
                                       round(on_test["high_snr_standard_error_pp"], 2)],
            "compute_at_20db": [round(best["objective_compute"], 3), round(on_test["objective_compute"], 3)],
            "give_up": best["give_up"]}), flush=True)


if __name__ == "__main__":
    main()
