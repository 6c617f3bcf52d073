"""``amcee synth``: generate an RML22-style dataset with GNU Radio flowgraphs."""
from ..data.synth.channel import VARIANTS
from ..data.synth.generate import generate
from . import add_snr_argument, defaults_of

#: Size of the real RML22 (10 classes x 21 SNRs x 2000 frames), for projections.
RML22_FRAMES = 420_000
#: Frames per key of a fidelity report's own regeneration (amcee report, synth --report).
REPORT_FRAMES_PER_KEY = 200


def add_synth_arguments(parser, frames_per_key=None):
    """Generation options shared with ``amcee report`` (which generates fewer frames per key);
    their defaults are :func:`generate`'s."""
    defaults = defaults_of(generate)
    parser.add_argument("--frames-per-key", type=int, default=frames_per_key or defaults["frames_per_key"],
                        help="frames per (class, SNR) key; RML22 has 2000 (default: %(default)s)")
    add_snr_argument(parser, defaults["snrs"], what="SNR grid")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names (default: RML22's 10 classes)")
    parser.add_argument("--variant", default=defaults["variant"], choices=VARIANTS,
                        help="impairments: RML22 is 'all' (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults["seed"],
                        help="generation seed (default: %(default)s)")
    parser.add_argument("--frame-len", type=int, default=defaults["frame_len"],
                        help="samples per frame (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: all cores)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "synth", help="generate an RML22-style dataset with GNU Radio",
        description="Generate RML22-style frames (10 classes, ETU70 fading, clock "
                    "offsets, AWGN) with GNU Radio flowgraphs and save them as .npz.")
    p.add_argument("--out", required=True, help="output dataset (.npz)")
    add_synth_arguments(p)
    p.add_argument("--report", metavar="DIR", default=None,
                   help="also write a fidelity report to DIR (of a small clean/noisy regeneration "
                        f"with at most {REPORT_FRAMES_PER_KEY} frames per key)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def synth_kwargs(args):
    from . import parse_snrs

    classes = defaults_of(generate)["classes"] if not args.classes else tuple(
        c.strip() for c in args.classes.split(",") if c.strip())
    return dict(classes=classes, snrs=parse_snrs(args.snrs), frames_per_key=args.frames_per_key,
                variant=args.variant, seed=args.seed, frame_len=args.frame_len,
                workers=args.workers)


def run(args):
    from . import print_json
    from ..data.npz import save_dataset

    kwargs = synth_kwargs(args)
    ds = generate(progress=not args.quiet, **kwargs)
    save_dataset(args.out, ds)
    seconds = ds.meta["seconds"]
    rate = len(ds.frames) / seconds if seconds > 0 else float("inf")
    print_json({
        "out": str(args.out), "frames": int(len(ds.frames)), "variant": args.variant,
        "seconds": seconds, "frames_per_s": rate, "projected_rml22_seconds": RML22_FRAMES / rate,
        "workers": ds.meta["workers"],
    })
    if args.report:
        from ..data.synth.fidelity import write_report
        kwargs["frames_per_key"] = min(args.frames_per_key, REPORT_FRAMES_PER_KEY)
        write_report(args.report, progress=not args.quiet, **kwargs)
    return 0
