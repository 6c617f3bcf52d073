"""How fast would a model be if its frames left where another model's do?

The engine's speed over a reference at one SNR is the reference backbone's
time over the model's mean path time, and the path times depend on the
network (its stem's width, its heads), the shares on how it was trained.
For each MODEL this measures, on frames of the test split at --snr:
its backbone's time against the reference's (paired rounds), and the time
of each exit path with every early exit before it on, against its own
backbone (training.time_costs.measure_engine_path_costs); then prints one
JSON line with the speed-up the exit shares --shares (early exits first,
final last) would give it.  With a model's own measured shares it should
match `amcee bench`'s figure; with a trained model's shares it tells whether
a wider network trained the same way could reach a speed goal before
training it.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/exit_share_projection.py \\
        --data data/synth_v2.npz --reference python/amcee/models/paper_backbone.pt \\
        python/amcee/models/amcee_default.pt MODEL ... --shares 0.57 0.36 0.07
"""
import argparse
import json

import torch

from gnuradio.amcee.data.dataset import split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.timing import paired_ratio_median, time_interleaved_samples
from gnuradio.amcee.training.time_costs import measure_engine_path_costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--reference", required=True, help="model file the speed-ups are measured against")
    parser.add_argument("--shares", type=float, nargs="+", required=True,
                        help="exit shares, early exits first, final last (summing to 1)")
    parser.add_argument("--snr", type=float, default=20.0, help="SNR of the timed frames (default: 20)")
    parser.add_argument("--frames", type=int, default=1024, help="frames timed (default: 1024)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default: 15)")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    if abs(sum(args.shares) - 1) > 1e-6 or min(args.shares) < 0:
        parser.error(f"--shares must be >= 0 and sum to 1, got {args.shares}")
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    idx = split_indices(ds, "test")
    idx = idx[ds.snrs[idx] == args.snr][:args.frames]
    if not len(idx):
        parser.error(f"the test split of {args.data} has no frames at {args.snr:g} dB")
    frames = ds.frames[idx]
    engines = {path: EarlyExitEngine(path, num_threads=1) for path in [args.reference] + args.models}
    for path in args.models:
        if engines[path].num_exits != len(args.shares):
            parser.error(f"{path} has {engines[path].num_exits} exits, --shares gives {len(args.shares)}")
    backbones = {path: (lambda e: lambda: e.backbone_probs(frames))(e) for path, e in engines.items()}
    with torch.inference_mode():
        samples = time_interleaved_samples(backbones, args.repeats)
    for path in args.models:
        backbone = paired_ratio_median(samples[path], samples[args.reference])
        costs = measure_engine_path_costs(engines[path], frames, repeats=args.repeats)
        paths = [costs[(k, (True,) * k)] for k in range(len(args.shares))]
        mean_time = backbone * sum(share * cost for share, cost in zip(args.shares, paths))
        print(json.dumps({"model": path, "model_version": engines[path].meta.get("model_version"),
                          "snr": args.snr, "frames": len(idx), "backbone_time_vs_reference": round(backbone, 3),
                          "path_times_vs_own_backbone": [round(c, 3) for c in paths], "shares": args.shares,
                          "projected_speedup": round(1.0 / mean_time, 2)}), flush=True)


if __name__ == "__main__":
    main()
