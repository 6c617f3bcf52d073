"""How much of a model's accuracy is its network's, and how much its exits'?

For each MODEL on the validation and test splits of DATA, prints one JSON line:
the final exit alone and the early-exit rule (the model's calibrated
thresholds, no SNR values), over all SNRs and at >= HIGH_SNR_DB, WBFM at
>= HIGH_SNR_DB, every exit alone (each frame answered there), and the exit
shares at >= HIGH_SNR_DB (accuracies in %).
The calibration is fitted on the validation split, so the two splits side by
side show how far its bounds hold on frames it did not see.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/final_exit_study.py \\
        --data data/synth_v2.npz python/amcee/models/amcee_default.pt python/amcee/models/paper_backbone.pt
"""
import argparse
import json

import numpy as np

from gnuradio.amcee.data.dataset import labels_for_model, split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.training.evaluate import HIGH_SNR_DB


def percent(right, mask):
    return round(100.0 * float(right[mask].mean()), 2) if mask.any() else None


def study(path, ds):
    engine = EarlyExitEngine(path, num_threads=1)
    labels, _ = labels_for_model(ds, engine.classes, engine.frame_len, path)
    out = {"model": path, "model_version": engine.meta.get("model_version")}
    for split in ("val", "test"):
        idx = split_indices(ds, split)
        frames, truth, snrs = ds.frames[idx], labels[idx], ds.snrs[idx]
        exits = engine.all_exit_probs(frames)[0].argmax(axis=2) == truth  # [K, N]: each exit alone
        final = exits[-1]
        result = engine.classify(frames)
        early = result.classes == truth
        high = (snrs >= HIGH_SNR_DB) & (truth >= 0)
        wbfm = high & (truth == list(engine.classes).index("WBFM")) if "WBFM" in engine.classes \
            else np.zeros_like(high)
        out[split] = {"final_exit": percent(final, truth >= 0), "final_exit_high_snr": percent(final, high),
                      "early_exit": percent(early, truth >= 0), "early_exit_high_snr": percent(early, high),
                      "final_exit_wbfm_high_snr": percent(final, wbfm),
                      "early_exit_wbfm_high_snr": percent(early, wbfm),
                      "each_exit": [percent(right, truth >= 0) for right in exits],
                      "each_exit_high_snr": [percent(right, high) for right in exits],
                      "exit_shares_high_snr": [round(float(np.mean(result.exits[high] == k)), 3)
                                               for k in range(engine.num_exits)]}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    ds = load_dataset(args.data)
    for path in args.models:
        print(json.dumps(study(path, ds)), flush=True)


if __name__ == "__main__":
    main()
