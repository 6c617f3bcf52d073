"""amcee prune: layer pruning of a trained network (training.prune)."""
import dataclasses

from ..data.files import DATASET_FORMATS
from ..network.layer_pruning import SCORES, SIMILARITIES
from ..training.prune import PruneConfig
from ..training.train import SCHEDULES

#: {field name: default} of every PruneConfig field that has one.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(PruneConfig) if f.default is not dataclasses.MISSING}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "prune", help="prune conv layers of a trained network and fine-tune it",
        description="Layer pruning after Lu et al. (arXiv 2406.07929): compare the conv blocks' outputs "
                    "on training frames (linear CKA or cosine), split the prunable blocks (conv2-conv6; "
                    "conv1 is the stem) into K consecutive segments of alike layers (Fisher's optimal "
                    "segmentation), keep the best-scoring block(s) of each segment (SynFlow or gradient "
                    "norm), fine-tune with amcee train's loop and write the checkpoint "
                    "OUT/segments/best.pt (amcee train --init-from adds early exits to it, then amcee "
                    "export writes its model file). With "
                    "--baselines also keep-the-first-layers, random drops and the globally "
                    "lowest-scoring drops at the same MACs, fine-tuned alike. Writes report.json, "
                    "report.md and similarity.png into --out.")
    p.add_argument("source", help="training checkpoint of the network to prune (best.pt of amcee train)")
    p.add_argument("--data", required=True, help=f"dataset file the source was trained on ({DATASET_FORMATS})")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--segments", type=int, metavar="K", help="number of segments (layers kept: K x --per-segment)")
    budget.add_argument("--macs", type=float, metavar="FRACTION",
                        help="target fraction of the source backbone's MACs: the largest K that fits")
    p.add_argument("--similarity", default=DEFAULTS["similarity"], choices=SIMILARITIES,
                   help="similarity between layers (default: %(default)s)")
    p.add_argument("--score", default=DEFAULTS["score"], choices=SCORES,
                   help="importance score of a layer (default: %(default)s)")
    p.add_argument("--per-segment", type=int, default=DEFAULTS["per_segment"],
                   help="layers kept per segment (default: %(default)s)")
    p.add_argument("--sample-frames", type=int, default=DEFAULTS["sample_frames"],
                   help="training frames whose representations are compared (default: %(default)s)")
    p.add_argument("--baselines", action="store_true", help="also fine-tune the baselines at equal MACs")
    p.add_argument("--random-seeds", type=int, nargs="+", default=list(DEFAULTS["random_seeds"]),
                   help="seeds of the random-drop baseline (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                   help="fine-tuning epochs of each pruned network (default: %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="fine-tuning Adam lr (default: %(default)s)")
    p.add_argument("--schedule", default=DEFAULTS["schedule"], choices=SCHEDULES,
                   help="learning-rate schedule (default: %(default)s)")
    p.add_argument("--warmup-epochs", type=float, default=DEFAULTS["warmup_epochs"],
                   help="warm-up of the cosine schedule (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="batch (default: %(default)s)")
    p.add_argument("--train-fraction", type=float, default=DEFAULTS["train_fraction"],
                   help="stratified fraction of the training split for fine-tuning (default: %(default)s)")
    p.add_argument("--distill", type=float, default=DEFAULTS["distill"], metavar="WEIGHT",
                   help="weight of distillation from the source's final exit (default: %(default)s = none)")
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"],
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=DEFAULTS["split_seed"],
                   help="seed of the paper split (default: %(default)s)")
    p.add_argument("--timing-repeats", type=int, default=DEFAULTS["timing_repeats"],
                   help="repeats of the measured layer times, one thread each (0 = skip; default: %(default)s)")
    p.add_argument("--analysis-only", action="store_true",
                   help="only the similarity, segmentations, scores and measured times (choose K): no fine-tuning")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import print_json
    from ..training.prune import prune

    config = PruneConfig(source=args.source, data=args.data, out_dir=args.out, segments=args.segments,
                         macs=args.macs, similarity=args.similarity, score=args.score,
                         per_segment=args.per_segment, sample_frames=args.sample_frames, baselines=args.baselines,
                         random_seeds=tuple(args.random_seeds), epochs=args.epochs, lr=args.lr,
                         schedule=args.schedule, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size,
                         train_fraction=args.train_fraction, distill=args.distill, threads=args.threads,
                         seed=args.seed, split_seed=args.split_seed, timing_repeats=args.timing_repeats,
                         analysis_only=args.analysis_only, progress=args.progress)
    report = prune(config)
    if config.analysis_only:
        print_json([{key: c.get(key) for key in ("segments", "kept", "macs_fraction", "time_fraction")}
                    for c in report["analysis"]["candidates"]], indent=1)
        return 0
    print_json({name: {key: r[key] for key in ("layers", "backbone_macs", "accuracy", "accuracy_high_snr",
                                                "checkpoint")}
                for name, r in report["runs"].items()}, indent=1)
    return 0
