"""amcee bench: frames/s of the batched early-exit engine vs the backbone alone."""
from ..data.dataset import SPLITS
from ..data.files import DATASET_FORMATS
from ..tools.bench import SECTIONS, run_bench
from . import add_threshold_argument, defaults_of


def add_parser(subparsers):
    defaults = defaults_of(run_bench)
    p = subparsers.add_parser(
        "bench", help="benchmark the engine against the backbone alone (JSON)",
        description="Print JSON: frames/s of the batched early-exit engine and of the backbone alone "
                    "per batch size and per SNR (interleaved medians, one process), the per-frame "
                    "Python loop of the paper's code for reference, the block, the SNR estimator, the "
                    "model against the shipped paper backbone (section reference), and peak memory.")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped model)")
    p.add_argument("--data", default=None, help=f"dataset for real frames and per-SNR numbers ({DATASET_FORMATS})")
    p.add_argument("--split", default=defaults["split"], choices=SPLITS,
                   help="split of --data (default: %(default)s)")
    p.add_argument("--frames", type=int, default=defaults["frames"],
                   help="frames sampled from --data (default: %(default)s)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(defaults["batch_sizes"]),
                   help="batch sizes (default: " + " ".join(map(str, defaults["batch_sizes"])) + ")")
    p.add_argument("--max-batch", type=int, default=None,
                   help="batch of the per-SNR section (default: the engine's for the model)")
    p.add_argument("--repeats", type=int, default=defaults["repeats"],
                   help="interleaved repeats (default: %(default)s)")
    p.add_argument("--loop-frames", type=int, default=defaults["loop_frames"],
                   help="frames of the per-frame loop (default: %(default)s)")
    add_threshold_argument(p)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default=defaults["device"], help="cpu or cuda (default: %(default)s)")
    p.add_argument("--block-frames", type=int, default=defaults["block_frames"],
                   help="frames per subset of the block_vs_engine section (default: %(default)s)")
    p.add_argument("--latency-seconds", type=float, default=defaults["latency_seconds"],
                   help="length of the slow stream whose waits block_vs_engine measures "
                        "(default: %(default)s)")
    p.add_argument("--reference", default=None, metavar="MODEL",
                   help="model file the reference section compares with (default: the shipped paper "
                        "backbone, trained like the default model on the same data)")
    p.add_argument("--sections", nargs="+", default=None, choices=tuple(SECTIONS), metavar="SECTION",
                   help="sections to run: " + ", ".join(SECTIONS) + " (default: all)")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import one_or_per_exit, print_json

    thresholds = one_or_per_exit(args.threshold)
    report = run_bench(args.model, data=args.data, split=args.split, frames=args.frames,
                       repeats=args.repeats, batch_sizes=args.batch_sizes, max_batch=args.max_batch,
                       threads=args.threads, device=args.device, thresholds=thresholds,
                       loop_frames=args.loop_frames, sections=args.sections,
                       block_frames=args.block_frames, latency_seconds=args.latency_seconds,
                       reference=args.reference)
    print_json(report, indent=1)
    return 0
