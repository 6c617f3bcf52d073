"""How fast could an early-exit model be at each SNR with a better exit rule?

For MODEL on the test split of DATA, with the engine's measured time of every
exit path (training.time_costs.measure_engine_path_costs, one thread) and its
backbone's time against REFERENCE's backbone (a model of the paper's
backbone, timed in the same rounds), prints JSON:

* ``rule``: the model's own calibrated rule (the engine's exits);
* ``agree``: each frame leaves at the first exit whose answer equals the
  final exit's (no answer changes: the most any rule can save without
  losing accuracy against the model's own backbone);
* ``right``: each frame leaves at the first exit whose answer is right (else
  at the final exit): an oracle, the bound of the architecture;

each as exit shares and speed-up over REFERENCE's backbone per SNR, and per
class at the top SNR: the share the rule takes at the first exit against
the share whose first exit agrees with the final exit.  Every early head
runs for a frame that goes past it (the rule must see its answer).

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/exit_ceiling_study.py \\
        --model python/amcee/models/amcee_default.pt --reference runs/amcee-default-6.pt \\
        --data data/synth_v2.npz
"""
import argparse
import json

import numpy as np
import torch

from gnuradio.amcee.data.dataset import split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.frames import to_complex
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.timing import paired_ratio_median, time_interleaved_samples
from gnuradio.amcee.training.time_costs import measure_engine_path_costs

TIMING_FRAMES = 4096


def _first_exit(ok):
    """Index of the first True along axis 0 of [K, N], the last exit where none is."""
    first = np.argmax(ok, axis=0)
    return np.where(ok.any(axis=0), first, ok.shape[0] - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", required=True,
                    help="a model file whose backbone is the paper's (its heads do not run)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--snrs", type=float, nargs="+", default=[-20, 0, 10, 20])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(1)

    ds = load_dataset(args.data)
    idx = split_indices(ds, "test", 0)
    frames, labels, snrs = to_complex(ds.frames[idx]), ds.labels[idx], ds.snrs[idx]
    engine = EarlyExitEngine(args.model)
    reference = EarlyExitEngine(args.reference)
    sample = frames[:TIMING_FRAMES]
    costs = measure_engine_path_costs(engine, sample, repeats=args.repeats)
    rounds = time_interleaved_samples({"reference": lambda: reference.backbone_probs(sample),
                                       "model": lambda: engine.backbone_probs(sample)}, args.repeats)
    backbone_time = paired_ratio_median(rounds["model"], rounds["reference"])  # of the reference's
    k = engine.num_exits
    # every early head before the exit runs (the rule reads its answer)
    path_cost = np.array([costs[(j, (True,) * j)] for j in range(k)]) * backbone_time

    probs, valid = engine.all_exit_probs(frames)
    answers = probs.argmax(axis=2)                     # [K, N]
    rule_exits = engine.classify(frames).exits[valid]
    labels, snrs = labels[valid], snrs[valid]
    exits = {"rule": rule_exits,
             "agree": _first_exit(answers == answers[-1][None, :]),
             "right": _first_exit(answers == labels[None, :])}
    out = {"model": args.model, "reference": args.reference, "data": args.data,
           "path_cost_of_reference_backbone": [round(float(c), 4) for c in path_cost],
           "model_backbone_time_of_reference": round(float(backbone_time), 4), "per_snr": []}
    for snr in args.snrs:
        m = snrs == snr
        row = {"snr": snr}
        for name, e in exits.items():
            shares = np.bincount(e[m], minlength=k) / max(1, m.sum())
            row[name] = {"exit_shares": [round(float(s), 4) for s in shares],
                         "speedup": round(float(1.0 / (shares @ path_cost)), 3),
                         "accuracy": round(float(np.mean(answers[e[m], np.flatnonzero(m)] == labels[m])), 4)}
        out["per_snr"].append(row)
    top = snrs == max(args.snrs)
    out["per_class_at_top_snr"] = {
        name: {"first_exit_rule": round(float(np.mean(rule_exits[top & (labels == c)] == 0)), 3),
               "first_exit_agrees": round(float(np.mean(exits["agree"][top & (labels == c)] == 0)), 3),
               "first_exit_right": round(float(np.mean(answers[0][top & (labels == c)] == c)), 3)}
        for c, name in enumerate(engine.classes)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
