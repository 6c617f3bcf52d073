"""amcee bench: frames/s of the batched early-exit engine vs the backbone alone."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench", help="benchmark the engine against the backbone alone (JSON)",
        description="Print JSON: frames/s of the batched early-exit engine and of the backbone alone "
                    "per batch size and per SNR (interleaved medians, one process), the per-frame "
                    "Python loop of the paper's code for reference, and peak memory.")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped model)")
    p.add_argument("--data", default=None, help="dataset for real frames and per-SNR numbers")
    p.add_argument("--split", default="test", help="split of --data (default: test)")
    p.add_argument("--frames", type=int, default=20000,
                   help="frames sampled from --data (default: 20000)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256, 1024, 4096],
                   help="batch sizes (default: 1 16 64 256 1024 4096)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="batch of the per-SNR section (default: the engine's, 256)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (default: 5)")
    p.add_argument("--loop-frames", type=int, default=300, help="frames of the per-frame loop (default: 300)")
    p.add_argument("--threshold", type=float, nargs="+", default=None,
                   help="entropy threshold(s) (default: the model's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--block-frames", type=int, default=10000,
                   help="frames per subset of the block_vs_engine section (default: 10000)")
    p.add_argument("--latency-seconds", type=float, default=10.0,
                   help="length of the slow stream whose waits block_vs_engine measures (default: 10)")
    p.add_argument("--sections", nargs="+", default=None,
                   help="sections to run: batch_sizes, per_snr, per_frame_loop, ... (default: all)")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import one_or_per_exit, print_json
    from ..tools.bench import run_bench

    thresholds = one_or_per_exit(args.threshold)
    report = run_bench(args.model, data=args.data, split=args.split, frames=args.frames,
                       repeats=args.repeats, batch_sizes=args.batch_sizes, max_batch=args.max_batch,
                       threads=args.threads, device=args.device, thresholds=thresholds,
                       loop_frames=args.loop_frames, sections=args.sections,
                       block_frames=args.block_frames, latency_seconds=args.latency_seconds)
    print_json(report, indent=1)
    return 0
