"""amcee replay: a dataset file through a GNU Radio flowgraph, with accuracy per SNR."""
import json

from ..data.dataset import SPLITS
from ..data.files import DATASET_FORMATS
from ..frames import LAYOUTS
from ..tools.replay import SOURCES, replay
from . import add_threshold_argument, defaults_of


def add_parser(subparsers):
    defaults = defaults_of(replay)
    p = subparsers.add_parser(
        "replay", help="replay a dataset through a GNU Radio flowgraph and score it",
        description="Replays a dataset file (RML22 / RadioML pickle, amcee .npz or SigMF replay "
                    "recording) through a GNU Radio flowgraph: file_source or "
                    "amcee.dataset_source -> amcee.classifier -> message sink. Prints accuracy "
                    "and the share of frames per exit for every SNR, and frames/s. The decisions "
                    "equal amcee eval's for the same model, thresholds and frames, frame for frame "
                    "(with a model that has an SNR table: --estimate-snr is eval's --snr estimate, "
                    "without it both use the plain rule).")
    p.add_argument("dataset", help=f"dataset file ({DATASET_FORMATS}; a recording by its .sigmf-meta or .sigmf-data)")
    p.add_argument("--model", default="", metavar="MODEL.pt",
                   help="exported model (default: the model shipped with gr-amcee)")
    add_threshold_argument(p)
    p.add_argument("--split", choices=SPLITS, default=defaults["split"],
                   help="part of the paper's stratified split to replay, as amcee eval "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="seed of the split (default: %(default)s)")
    p.add_argument("--source", choices=SOURCES, default=defaults["source"],
                   help="file: blocks.file_source over raw frames (the SigMF data file, or a "
                        "temporary file); dataset: amcee.dataset_source with truth tags; auto: "
                        "file for SigMF recordings, dataset otherwise (default: %(default)s)")
    p.add_argument("--layout", choices=tuple(LAYOUTS), default=None,
                   help="stream layout: complex vectors of L or float RML rows of 2L "
                        "(default: the recording's, else complex)")
    p.add_argument("--max-frames", type=int, default=defaults["max_frames"],
                   help="replay only the first N frames of the split (file source) "
                        "(default: %(default)s = all)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="frames per network call (default: the engine's for the model)")
    p.add_argument("--estimate-snr", action="store_true",
                   help="the classifier estimates each frame's SNR itself for the model's SNR table "
                        "(its estimate_snr option; without it: the plain rule)")
    p.add_argument("--trusted", action="store_true",
                   help="read a pickle with plain pickle, which can run code in the file; "
                        "only for files you trust")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", metavar="REPORT.json", help="also write the report to this file")
    p.add_argument("--predictions", metavar="PRED.npz",
                   help="write per-frame decisions (index, exit, class, entropy, ...) like amcee eval")
    p.set_defaults(func=run)


def run(args):
    import numpy as np

    from . import one_or_per_exit, print_json
    from ..tools.replay import format_report

    if args.max_frames < 0:
        raise ValueError("--max-frames must be >= 0")
    if args.json:  # GNU Radio logs to stdout: keep it for the JSON alone
        from gnuradio import gr
        gr.logging().set_default_level(gr.log_levels.warn)
    threshold = one_or_per_exit(args.threshold)
    predictions, report = replay(args.dataset, model_path=args.model, threshold=threshold,
                                 split=args.split, seed=args.seed, source=args.source,
                                 layout=args.layout, max_frames=args.max_frames,
                                 trusted=args.trusted, max_batch=args.max_batch,
                                 estimate_snr=args.estimate_snr)
    if args.predictions:
        np.savez(args.predictions, **predictions)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if args.json:
        print_json(report, indent=1)
    else:
        print(format_report(report))
