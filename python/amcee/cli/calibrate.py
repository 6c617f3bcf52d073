"""amcee calibrate: pick per-exit thresholds (and temperatures) on validation data."""
from ..data.dataset import SPLITS
from ..inference.exit_gating import PROBE_ROWS
from ..training.calibrate import GIVE_UP_GRID_POINTS, GRID_POINTS, calibrate
from . import defaults_of


def _per_exits(points):
    """'400 / 60 / 24 for 1 / 2 / 3' of a {early exits: value} table."""
    return " / ".join(map(str, points.values())) + " for " + " / ".join(map(str, points))


def add_parser(subparsers):
    defaults = defaults_of(calibrate)
    p = subparsers.add_parser(
        "calibrate", help="choose per-exit thresholds on the validation split",
        description="Choose the entropy threshold of every early exit on the validation split: the "
                    "largest compute saving (expected MACs from exit shares) within --max-loss "
                    "percentage points of the final exit's accuracy, or the most accurate point "
                    "within --target-compute.  Writes the thresholds (and the calibration record) "
                    "into the metadata of --out and prints the chosen point as JSON.")
    p.add_argument("model", help="exported model file (.pt)")
    p.add_argument("--data", help="dataset file (the one the model was trained on); required unless "
                                  "--exit-gating-only")
    p.add_argument("--out", required=True, help="calibrated model file to write (may equal MODEL, with "
                                                "--overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (refused without it); the file is replaced "
                        "atomically, whole or not at all")
    p.add_argument("--max-loss", type=float, default=defaults["max_loss_pp"],
                   help="largest accuracy loss against the final exit, percentage points (default: %(default)s)")
    p.add_argument("--target-compute", type=float, default=None,
                   help="instead: largest expected compute as a fraction of the backbone's (e.g. 0.4)")
    p.add_argument("--temperature", action="store_true",
                   help="also fit one temperature per exit on validation NLL and bake it into the heads")
    p.add_argument("--give-up", action="store_true",
                   help="also search per-exit give-up entropies (frames that unsure leave early; "
                        "saves compute at low SNR) under the same accuracy budget")
    p.add_argument("--favour-snr", type=float, default=None, metavar="DB",
                   help="maximise the compute saving of the frames at SNR >= DB only (e.g. 20 for a "
                        "strong live signal), under the same accuracy budget over all frames "
                        "(default: of all frames)")
    p.add_argument("--min-snr-ceiling", type=float, default=None, metavar="X",
                   help="also require every SNR's compute ceiling to be >= X (1.0: no SNR slower than "
                        "the backbone alone by compute) (default: no such bound)")
    p.add_argument("--class-thresholds", action="store_true",
                   help="also search one threshold per early exit and predicted class under the same "
                        "accuracy budget (lets a class that no exit separates, e.g. QAM16/QAM64 at high "
                        "SNR, leave early), and keep it if it saves more than per-exit thresholds")
    p.add_argument("--min-exit-share", default=defaults["min_exit_share"], metavar="auto|off|X[,Y...]",
                   help="exit gating written into the model: an early exit's head runs on a whole "
                        f"batch only if at least this share of {PROBE_ROWS} probed rows leave there. 'auto' = "
                        "the break-even shares measured on this machine (head time and row copies "
                        "against the time the leaving frames save, 1 thread), 'off', or one share per "
                        "early exit (default: %(default)s)")
    p.add_argument("--exit-gating-only", action="store_true",
                   help="only measure the exit gating break-even shares on this machine and write them "
                        "(thresholds untouched): the shares depend on the CPU, so re-measure a model "
                        "calibrated elsewhere on the machine that runs it")
    p.add_argument("--split", default=defaults["split"], choices=SPLITS,
                   help="split to calibrate on (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=defaults["split_seed"],
                   help="seed of the paper split (default: %(default)s)")
    p.add_argument("--grid-points", type=int, default=None,
                   help=f"candidate thresholds per exit (default: {_per_exits(GRID_POINTS)} early exits; "
                        f"{' / '.join(map(str, GIVE_UP_GRID_POINTS.values()))} with --give-up)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import print_json
    from ..atomic import refuse_existing
    from ..training.calibrate import calibrate_exit_gating

    if not args.overwrite:
        refuse_existing(args.out, "--out model file")
    if args.exit_gating_only:
        gating = calibrate_exit_gating(args.model, args.out, data=args.data, split=args.split,
                                       split_seed=args.split_seed)
        print_json({"model": args.out, "min_exit_share": gating["min_exit_share"],
                    "previous_min_exit_share": gating["previous_min_exit_share"],
                    "segment_seconds": gating["segment_seconds"], "head_seconds": gating["head_seconds"],
                    "gather_seconds": gating["gather_seconds"]})
        return 0
    if not args.data:
        raise ValueError("amcee calibrate needs --data (unless --exit-gating-only)")

    record = calibrate(args.model, args.data, args.out, max_loss_pp=args.max_loss,
                       target_compute=args.target_compute, temperature=args.temperature,
                       split=args.split, split_seed=args.split_seed, points=args.grid_points,
                       give_up=args.give_up, favour_snr=args.favour_snr,
                       min_snr_ceiling=args.min_snr_ceiling,
                       min_exit_share=_parse_min_exit_share(args.min_exit_share),
                       class_thresholds=args.class_thresholds, progress=not args.quiet)
    print_json({"model": record["model"], "model_version": record["model_version"],
                "constraint": record["constraint"], "temperatures": record["temperatures"],
                "favour_snr": record["favour_snr"], "min_snr_ceiling_bound": record["min_snr_ceiling"],
                "final_exit_accuracy": record["final_exit_accuracy"],
                "min_exit_share": record["exit_gating"]["min_exit_share"], **record["chosen"]})
    return 0


def _parse_min_exit_share(text):
    if text in ("auto", "off"):
        return text
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--min-exit-share must be auto, off or comma-separated numbers, got {text!r}") from None
