"""amcee demo: classify a synthetic stream of changing modulations, live, no hardware."""
from ..data.synth.channel import VARIANTS
from ..tools.demo import demo_flowgraph
from . import add_snr_argument, add_threshold_argument, defaults_of

#: How long the demo runs when neither --seconds nor --frames says.
DEFAULT_SECONDS = 10.0


def add_parser(subparsers):
    defaults = defaults_of(demo_flowgraph.__init__)
    p = subparsers.add_parser(
        "demo", help="live demo: synthetic stream of changing modulations -> classifier -> table",
        description="Runs a GNU Radio flowgraph that transmits the 10 RML22 modulations in turn "
                    "at changing SNRs through RML22's channel, frames the stream to the model's "
                    "frame length (128 samples for the shipped model) and classifies it with the early-exit model. On a terminal it shows a live "
                    "table (per class: frames, accuracy against the known truth, share of frames "
                    "per exit, frames/s), redrawn every --refresh seconds; otherwise (a pipe, a "
                    "log file) one progress line every few seconds. A summary follows at the end.")
    p.add_argument("--model", default="", metavar="MODEL.pt",
                   help="exported model (default: the model shipped with gr-amcee)")
    add_threshold_argument(p)
    add_snr_argument(p, defaults["snrs"], what="SNRs to cycle through")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"stop after this many seconds (default: {DEFAULT_SECONDS:g} unless --frames is given)")
    p.add_argument("--frames", type=int, default=defaults["max_frames"],
                   help="stop after this many frames (default: %(default)s = no limit)")
    p.add_argument("--segment-frames", type=int, default=defaults["segment_frames"],
                   help="frames per (modulation, SNR) segment (default: %(default)s)")
    p.add_argument("--hop", type=int, default=defaults["hop"],
                   help="samples from one frame start to the next, >= the frame length; a larger hop "
                        "skips samples between frames (default: %(default)s = the model's frame length)")
    p.add_argument("--channel", choices=VARIANTS, default=defaults["variant"],
                   help="RML22 impairments to apply (default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults["seed"],
                   help="seed of sources, channel and schedule (default: %(default)s)")
    p.add_argument("--realtime", action="store_true",
                   help="throttle to the real sample rate (about 30 kHz, 234 frames/s)")
    p.add_argument("--refresh", type=float, default=1.0,
                   help="seconds between live table updates on a terminal (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no live table or progress, only the summary")
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON on stdout (the live table or progress goes to stderr)")
    p.add_argument("--gui", action="store_true", help="open the live display (QT GUI)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="with --gui: save the display to this file just before the end")
    p.set_defaults(func=run)
    return p


def run(args):
    import sys

    from . import one_or_per_exit, parse_snrs, print_json
    from ..tools.demo import LiveTable, format_table, run_gui, run_headless

    if args.frames < 0 or (args.seconds or 0) < 0:
        raise ValueError("--frames and --seconds must be >= 0")
    if args.refresh <= 0:
        raise ValueError("--refresh must be > 0")
    if args.screenshot and not args.gui:
        raise ValueError("--screenshot needs --gui")
    if args.json:  # GNU Radio logs to stdout: keep it for the JSON alone
        from gnuradio import gr
        gr.logging().set_default_level(gr.log_levels.warn)
    seconds = args.seconds or (0.0 if args.frames else DEFAULT_SECONDS)
    threshold = one_or_per_exit(args.threshold)
    fg = demo_flowgraph(model_path=args.model, threshold=threshold, snrs=parse_snrs(args.snrs),
                        segment_frames=args.segment_frames, hop=args.hop, variant=args.channel,
                        seed=args.seed, max_frames=args.frames, realtime=args.realtime)
    table = None if args.quiet else LiveTable(sys.stderr if args.json else sys.stdout)
    runner = run_gui if args.gui else run_headless
    extra = {"screenshot": args.screenshot} if args.gui else {}
    summary = runner(fg, seconds=seconds, refresh=args.refresh, table=table, **extra)
    summary["model"] = fg.classifier.model_path
    if args.json:
        print_json(summary, indent=1)
    else:
        print("\nsummary per class:\n" + format_table(summary))
        print("\nper SNR:\n" + format_table(summary, key="snr", rows=summary["per_snr"]))
