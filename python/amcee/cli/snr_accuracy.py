"""``amcee snr-accuracy``: error of the per-frame SNR estimator per class and SNR."""
from ..data.files import DATASET_FORMATS
from ..data.synth.channel import VARIANTS
from ..labels import RML22_SNRS
from ..tools.snr_accuracy import DEFAULT_VARIANTS, measure
from . import add_snr_argument, defaults_of, snr_text


def add_parser(subparsers):
    defaults = defaults_of(measure)
    p = subparsers.add_parser(
        "snr-accuracy", help="measure the per-frame SNR estimator on frames of known SNR",
        description="Generate frames of every class at known SNRs through the RML22 channel (and "
                    "through AWGN alone) with their clean twins, estimate each frame's SNR with the "
                    "estimator of the snr_estimator block, and print the error (estimate - the "
                    "frame's realised SNR, dB) per channel, class and SNR bin: mean, standard "
                    "deviation, 10/50/90 % quantiles.  With --data, the frames of a dataset file "
                    "instead, against its SNR labels.")
    p.add_argument("--frames-per-key", type=int, default=defaults["frames_per_key"],
                   help="frames per (class, SNR) key and variant (default: %(default)s)")
    add_snr_argument(p, RML22_SNRS, what="SNR bins")
    p.add_argument("--classes", default=None, help="comma-separated class names (default: RML22's 10)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated channel variants with noise, of {', '.join(VARIANTS)} "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="generation seed (default: %(default)s)")
    p.add_argument("--frame-len", type=int, default=defaults["frame_len"],
                   help="samples per frame (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help=f"measure on this dataset file ({DATASET_FORMATS}) instead (reference: its SNR labels, which under "
                        "fading are below the frames' realised SNR)")
    p.add_argument("--out", default=None, metavar="FILE.md", help="also write the tables as markdown")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def command_line(args):
    """The command that makes this report (every option that decides the numbers)."""
    import shlex

    if args.data:
        return f"amcee snr-accuracy --data {shlex.quote(str(args.data))}"
    from . import parse_snrs

    parts = ["amcee snr-accuracy", f"--frames-per-key {args.frames_per_key}",
             f"--snrs {snr_text(parse_snrs(args.snrs))}", f"--variants {args.variants}",
             f"--seed {args.seed}", f"--frame-len {args.frame_len}"]
    if args.classes:
        parts.append(f"--classes {shlex.quote(args.classes)}")
    return " ".join(parts)


def run(args):
    from . import parse_snrs, print_json
    from ..atomic import atomic_open
    from ..tools.snr_accuracy import markdown, measure_file

    if args.data:
        report = measure_file(args.data)
    else:
        classes = None if not args.classes else tuple(c.strip() for c in args.classes.split(",") if c.strip())
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        report = measure(classes=classes, snrs=parse_snrs(args.snrs), frames_per_key=args.frames_per_key,
                         variants=variants, seed=args.seed, frame_len=args.frame_len, workers=args.workers,
                         progress=not args.quiet)
    if args.out:
        with atomic_open(args.out) as f:
            f.write(markdown(report, command_line(args)))
    print_json(report)
    return 0
