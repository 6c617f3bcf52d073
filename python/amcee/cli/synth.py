"""``amcee synth``: generate an RML22-style dataset with GNU Radio flowgraphs."""
import json

#: Size of the real RML22 (10 classes x 21 SNRs x 2000 frames), for projections.
RML22_FRAMES = 420_000


def parse_snrs(text):
    """``"-20:20:2"`` (start:stop:step, stop included) or ``"0,10,20"`` -> list of floats."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            count = int(round((stop - start) / step)) + 1
            return [start + i * step for i in range(count) if start + i * step <= stop + 1e-9]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"bad --snrs {text!r}: use START:STOP:STEP (e.g. -20:20:2) "
                         "or a comma list (e.g. 0,10,20)") from None


def add_synth_arguments(parser, out_required=True):
    """Generation options shared with ``amcee report``."""
    parser.add_argument("--frames-per-key", type=int, default=2000,
                        help="frames per (class, SNR) key (default: 2000, as RML22)")
    parser.add_argument("--snrs", default="-20:20:2",
                        help="SNR grid in dB, START:STOP:STEP or a comma list; write negative "
                             "starts with = (--snrs=-10:20:2) (default: -20:20:2)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names (default: RML22's 10 classes)")
    parser.add_argument("--variant", default="all",
                        choices=("clean", "awgn", "clock", "fading", "all"),
                        help="impairments: RML22 is 'all' (default)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    parser.add_argument("--frame-len", type=int, default=128,
                        help="samples per frame (default: 128)")
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
                   help="also write a fidelity report (small clean/noisy regeneration) to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def synth_kwargs(args):
    from ..labels import RML22_CLASSES

    classes = RML22_CLASSES if not args.classes else tuple(
        c.strip() for c in args.classes.split(",") if c.strip())
    return dict(classes=classes, snrs=parse_snrs(args.snrs), frames_per_key=args.frames_per_key,
                variant=args.variant, seed=args.seed, frame_len=args.frame_len,
                workers=args.workers)


def run(args):
    from ..datasets import save_dataset
    from ..synth import generate

    kwargs = synth_kwargs(args)
    ds = generate(progress=not args.quiet, **kwargs)
    save_dataset(args.out, ds)
    seconds = ds.meta["seconds"]
    rate = len(ds.frames) / seconds if seconds > 0 else float("inf")
    print(json.dumps({
        "out": str(args.out), "frames": int(len(ds.frames)), "variant": args.variant,
        "seconds": round(seconds, 2), "frames_per_s": round(rate, 1),
        "projected_rml22_seconds": round(RML22_FRAMES / rate, 1),
        "workers": ds.meta["workers"],
    }))
    if args.report:
        from ..fidelity import write_report
        kwargs["frames_per_key"] = min(args.frames_per_key, 200)
        write_report(args.report, **kwargs)
    return 0
