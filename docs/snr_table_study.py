"""How finely may `amcee calibrate --snr-aware` fit its table?  Tables fitted
on the validation split, scored on the test split (held out), all by
simulation from every exit's outputs (training.exit_simulation, the
engine's rule bit for bit) with each frame's SNR estimated by the module's
estimator and one fixed per-frame time per exit path (the exit it leaves
at and the heads it ran: time_costs.measure_engine_path_costs).

Printed per setting (grid points per exit in a bin, accuracy budget, per-bin
speed bound): validation accuracy of the table and of the plain rule, test
accuracy of both and their difference, and per true SNR of the test frames
the expected speed-up over the backbone of the plain rule / the table.

  PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/snr_table_study.py \\
      --model python/amcee/models/amcee_default.pt --data data/synth_1000.npz
"""
import argparse

import numpy as np

from gnuradio.amcee.data.dataset import labels_for_model, split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.snr_table import estimate_snr_db, validate_snr_table
from gnuradio.amcee.training import calibrate
from gnuradio.amcee.training.exit_simulation import entropy10, pick_by_exit, simulate_exits, simulate_exits_by_snr

#: (grid points, budget in pp, min speed-up per bin)
SETTINGS = ((2, 0.4, 0.8), (4, 0.4, 0.8), (10, 0.4, 0.8), (16, 0.4, 0.8), (2, 0.5, 0.95), (2, 0.5, 1.0),
            (2, 0.6, 1.0), (2, 0.7, 1.0), (2, 1.0, 1.0))


def split_outputs(engine, ds, labels, split):
    idx = split_indices(ds, split)
    idx = idx[labels[idx] >= 0]
    probs, valid = engine.all_exit_probs(ds.frames[idx])
    idx, probs = idx[valid], probs[:, valid]
    return probs, labels[idx], ds.snrs[idx], estimate_snr_db(ds.frames[idx])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    engine = EarlyExitEngine(args.model)
    ds = load_dataset(args.data)
    labels, _ = labels_for_model(ds, engine.classes, engine.frame_len)
    record = ((engine.meta.get("calibration") or {}).get("snr_table") or {}).get("exit_path_costs")
    if record:  # the times the model's table was fitted with
        path_costs = {(p["exit"], tuple(p["heads_before"])): p["time"] for p in record}
    else:
        from gnuradio.amcee.training.time_costs import TIMING_BATCH, measure_engine_path_costs

        path_costs = measure_engine_path_costs(engine, ds.frames[:4 * TIMING_BATCH])
    every_head = calibrate.setting_costs(path_costs, [0.0] * (engine.num_exits - 1),
                                          [float("inf")] * (engine.num_exits - 1), engine.num_exits)
    val = split_outputs(engine, ds, labels, "val")
    test_probs, test_labels, test_snr, test_est = split_outputs(engine, ds, labels, "test")
    plain_t, plain_g = engine.model.default_thresholds, engine.model.default_give_up
    entropies = np.stack([entropy10(p) for p in test_probs])
    predictions = test_probs.argmax(2)
    correct = predictions == test_labels[None]
    plain_exits = simulate_exits(entropies, plain_t, plain_g, predictions)
    print(f"exit path costs { {str(k): round(v, 3) for k, v in path_costs.items()} }; "
          f"test frames {len(test_labels)}")
    plain_times = calibrate.setting_costs(path_costs, plain_t, plain_g, engine.num_exits)[plain_exits]
    for grid, budget, speed in SETTINGS:
        calibrate.SNR_GRID_POINTS = grid
        ev = calibrate.Evaluator(val[0], val[1], every_head, 1.0)
        try:
            table, summary = calibrate.fit_snr_table(ev, val[3], path_costs, plain_t, plain_g,
                                                     calibrate.SNR_EDGES_DB, budget, speed)
        except ValueError as exc:
            print(f"grid {grid}, budget {budget} pp, bins >= {speed}x: none ({exc})")
            continue
        table = validate_snr_table(table, engine.num_exits, len(engine.classes))
        exits = simulate_exits_by_snr(entropies, predictions, table, test_est, plain_t, plain_g)
        bins, times = table.bins(test_est), np.empty(len(exits))
        for b in np.unique(bins):
            t, g = (plain_t, plain_g) if b < 0 else (table.thresholds[b], table.give_up[b])
            times[bins == b] = calibrate.setting_costs(path_costs, t, g, engine.num_exits)[exits[bins == b]]
        acc, plain_acc = pick_by_exit(correct, exits).mean(), pick_by_exit(correct, plain_exits).mean()
        print(f"grid {grid}, budget {budget} pp, bins >= {speed}x: val {100 * summary['accuracy']:.2f} % "
              f"(plain {100 * summary['plain_accuracy']:.2f}), test {100 * acc:.2f} % (plain {100 * plain_acc:.2f}, "
              f"{100 * (acc - plain_acc):+.2f} pp)")
        print("   " + " ".join(f"{s:g}:{1 / plain_times[test_snr == s].mean():.2f}/"
                               f"{1 / times[test_snr == s].mean():.2f}" for s in np.unique(test_snr)))


if __name__ == "__main__":
    main()
