"""amcee eval: accuracy, exits, timing and compute of a model on a dataset split."""
from ..data.dataset import SPLITS
from ..data.files import DATASET_FORMATS
from ..training.evaluate import SNR_SOURCES, evaluate_model
from ..training.exit_simulation import PAPER_THRESHOLDS
from . import add_threshold_argument, defaults_of


def add_parser(subparsers):
    defaults = defaults_of(evaluate_model)
    p = subparsers.add_parser(
        "eval", help="evaluate a model: accuracy, exit shares, speed-up and plots per SNR",
        description="Evaluate an exported model on a dataset split: accuracy per SNR of the backbone "
                    "alone and of the early-exit engine, exit shares, accuracy of early-exited frames, "
                    "time per SNR (engine vs backbone, interleaved medians), compute ceiling, "
                    "confusion matrices and a threshold sweep.  Writes eval.json, predictions.npz, "
                    "PNG figures (after the paper's Figures 4-6) and summary.md into --out.")
    p.add_argument("model", help="exported model file (.pt)")
    p.add_argument("--data", required=True, help=f"dataset file ({DATASET_FORMATS})")
    p.add_argument("--split", default=defaults["split"], choices=SPLITS,
                   help="paper split to evaluate on (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=defaults["split_seed"],
                   help="seed of the paper split (default: %(default)s)")
    p.add_argument("--out", required=True, help="output directory")
    add_threshold_argument(p, what="entropy threshold of the engine")
    p.add_argument("--sweep", type=float, nargs="+", default=None,
                   help="thresholds of the sweep (default: 0..0.95 fine, plus "
                        + ", ".join(f"{t:g}" for t in PAPER_THRESHOLDS) + ")")
    p.add_argument("--repeats", type=int, default=defaults["repeats"],
                   help="timing repeats per SNR (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="engine batch size (default: the engine's for the model)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default=defaults["device"], help="cpu or cuda (default: %(default)s)")
    p.add_argument("--no-timing", action="store_true", help="skip the timing measurements")
    p.add_argument("--snr", choices=SNR_SOURCES, default=defaults["snr_source"],
                   help="each frame's SNR value for a model with an SNR table: the estimator's (as "
                        "amcee.snr_estimator or the classifier's estimate_snr give it; amcee replay "
                        "--estimate-snr), or none (the plain rule, the classifier's without either); "
                        "a --threshold overrides the table (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress line or bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import one_or_per_exit, print_json
    from ..training.evaluate import SWEEP_THRESHOLDS, write_outputs

    thresholds = one_or_per_exit(args.threshold)
    report, predictions = evaluate_model(
        args.model, args.data, split=args.split, split_seed=args.split_seed, thresholds=thresholds,
        sweep=args.sweep or SWEEP_THRESHOLDS, repeats=args.repeats, max_batch=args.max_batch,
        threads=args.threads, device=args.device, timing=not args.no_timing,
        snr_source=args.snr, progress=not args.quiet)
    write_outputs(report, predictions, args.out)
    o = report["overall"]
    print_json({"out": args.out, "model_version": report["model_version"], "thresholds": report["thresholds"],
                **{k: o[k] for k in ("accuracy_backbone", "accuracy_early_exit",
                                     "accuracy_backbone_high_snr", "accuracy_early_exit_high_snr",
                                     "accuracy_loss_pp", "exit_shares", "compute_ceiling")},
                **({"accuracy_plain_rule": o["accuracy_plain_rule"]} if "accuracy_plain_rule" in o else {}),
                **({"speedup": o["speedup"]} if "speedup" in o else {})})
    return 0
