"""amcee calibrate: pick per-exit thresholds (and temperatures) on validation data."""
from ..data.dataset import SPLITS
from ..data.files import DATASET_FORMATS
from ..training.calibrate import GIVE_UP_GRID_POINTS, GRID_POINTS, SNR_EDGES_DB, calibrate
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
                    "into the metadata of --out and prints the chosen point as JSON.  With "
                    "--snr-aware it instead fits the SNR-conditioned exit table on top of the "
                    "model's thresholds (docs/snr-aware-exit.md).")
    p.add_argument("model", help="exported model file (.pt)")
    p.add_argument("--data", required=True, help=f"dataset file (the one the model was trained on; {DATASET_FORMATS})")
    p.add_argument("--out", required=True, help="calibrated model file to write (may equal MODEL, with "
                                                "--overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (refused without it); the file is replaced "
                        "atomically, whole or not at all")
    p.add_argument("--max-loss", type=float, default=defaults["max_loss_pp"],
                   help="largest accuracy loss against the final exit, percentage points (default: %(default)s)")
    p.add_argument("--max-loss-high-snr", type=float, default=None, metavar="PP",
                   help="also: largest accuracy loss against the final exit on the frames at >= 10 dB, "
                        "percentage points (0: strong signals keep the backbone's accuracy) (default: "
                        "no such bound)")
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
    p.add_argument("--snr-aware", action="store_true",
                   help="fit the SNR-conditioned exit table instead (thresholds untouched): per SNR bin "
                        "of the frames' estimated SNR (the snr_estimator's code, not the dataset's "
                        "SNR), the thresholds and give-up values with the least measured time (one "
                        "thread, this machine) within --max-loss of the final exit's accuracy, no bin "
                        "slower than the plain rule or the backbone alone")
    p.add_argument("--min-speedup", type=float, default=None, metavar="X",
                   help="with --snr-aware: no SNR bin slower than 1/X of the backbone by the measured exit "
                        "times (default: 1.0)")
    p.add_argument("--snr-edges", type=float, nargs="+", default=None, metavar="DB",
                   help="bin edges of the SNR table in dB, increasing (default: "
                        f"{SNR_EDGES_DB[0]:g}, {SNR_EDGES_DB[1]:g}, ... {SNR_EDGES_DB[-1]:g})")
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
    from ..training.calibrate import calibrate_snr_table

    if not args.overwrite:
        refuse_existing(args.out, "--out model file")
    if args.snr_aware:
        other = [flag for flag, on in (("--target-compute", args.target_compute is not None),
                                       ("--temperature", args.temperature), ("--give-up", args.give_up),
                                       ("--favour-snr", args.favour_snr is not None),
                                       ("--min-snr-ceiling", args.min_snr_ceiling is not None),
                                       ("--max-loss-high-snr", args.max_loss_high_snr is not None),
                                       ("--class-thresholds", args.class_thresholds)) if on]
        if other:
            raise ValueError(f"--snr-aware fits the SNR table only; {', '.join(other)} belong to the plain "
                             "calibration (run it first, then --snr-aware)")
        record = calibrate_snr_table(args.model, args.data, args.out, max_loss_pp=args.max_loss,
                                     split=args.split, split_seed=args.split_seed,
                                     edges_db=args.snr_edges or SNR_EDGES_DB,
                                     min_speedup=1.0 if args.min_speedup is None else args.min_speedup,
                                     progress=not args.quiet)
        print_json({k: record[k] for k in ("model", "model_version", "max_loss_pp", "min_speedup",
                                           "final_exit_accuracy", "accuracy", "accuracy_loss_pp", "plain_accuracy",
                                           "time_fraction", "plain_time_fraction", "floor_db")})
        return 0
    if args.snr_edges or args.min_speedup is not None:
        raise ValueError("--snr-edges and --min-speedup go with --snr-aware")

    record = calibrate(args.model, args.data, args.out, max_loss_pp=args.max_loss,
                       target_compute=args.target_compute, temperature=args.temperature,
                       split=args.split, split_seed=args.split_seed, points=args.grid_points,
                       give_up=args.give_up, favour_snr=args.favour_snr,
                       min_snr_ceiling=args.min_snr_ceiling,
                       class_thresholds=args.class_thresholds, progress=not args.quiet,
                       max_loss_high_snr_pp=args.max_loss_high_snr)
    print_json({"model": record["model"], "model_version": record["model_version"],
                "constraint": record["constraint"], "temperatures": record["temperatures"],
                "favour_snr": record["favour_snr"], "min_snr_ceiling_bound": record["min_snr_ceiling"],
                "final_exit_accuracy": record["final_exit_accuracy"], **record["chosen"]})
    return 0
