"""amcee demo: classify a synthetic stream of changing modulations, live, no hardware."""


def add_parser(subparsers):
    from . import add_snr_argument

    p = subparsers.add_parser(
        "demo", help="live demo: synthetic stream of changing modulations -> classifier -> table",
        description="Runs a GNU Radio flowgraph that transmits the 10 RML22 modulations in turn "
                    "at changing SNRs through RML22's channel, frames the stream to 128 samples "
                    "and classifies it with the early-exit model. On a terminal it shows a live "
                    "table (per class: frames, accuracy against the known truth, share of frames "
                    "per exit, frames/s), redrawn every --refresh seconds; otherwise (a pipe, a "
                    "log file) one progress line every few seconds. A summary follows at the end.")
    p.add_argument("--model", default="", metavar="MODEL.pt",
                   help="exported model (default: the model shipped with gr-amcee)")
    p.add_argument("--threshold", type=float, nargs="+", default=None, metavar="T",
                   help="entropy threshold, one for all early exits or one per early exit "
                        "(default: the model's calibrated thresholds)")
    add_snr_argument(p, "0:20:2", what="SNRs to cycle through")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this many seconds (default: 10 unless --frames is given)")
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames")
    p.add_argument("--segment-frames", type=int, default=32,
                   help="frames per (modulation, SNR) segment (default: %(default)s)")
    p.add_argument("--hop", type=int, default=128,
                   help="samples from one frame start to the next, >= 128; a larger hop "
                        "skips samples between frames (default: %(default)s)")
    p.add_argument("--channel", choices=("clean", "awgn", "clock", "fading", "all"), default="all",
                   help="RML22 impairments to apply (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
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


def run(args):
    import sys

    from . import one_or_per_exit, parse_snrs, print_json
    from ..tools.demo import LiveTable, demo_flowgraph, format_table, run_gui, run_headless

    if args.frames < 0 or (args.seconds or 0) < 0:
        raise ValueError("--frames and --seconds must be >= 0")
    if args.refresh <= 0:
        raise ValueError("--refresh must be > 0")
    if args.screenshot and not args.gui:
        raise ValueError("--screenshot needs --gui")
    if args.json:  # GNU Radio logs to stdout: keep it for the JSON alone
        from gnuradio import gr
        gr.logging().set_default_level(gr.log_levels.warn)
    seconds = args.seconds or (0.0 if args.frames else 10.0)
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
