"""amcee train: train the backbone, a paper version V0..V3 or any list of exits.

Runs as one process, or under ``torchrun --nproc_per_node N`` with
DistributedDataParallel (gloo on CPU, NCCL on GPU).

Every training setting is a field of :class:`TrainConfig`, which declares its
default: each option below has the field's name as ``dest`` and the field's
default, and :func:`config_from_args` copies the options by name.
"""
import dataclasses

from ..data.files import DATASET_FORMATS
from ..network.architecture import EXIT_HEADS
from ..training.train import SCHEDULES, SCHEMES, SELECT_METRICS, TrainConfig

#: {field name: default} of every TrainConfig field that has one.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
#: TrainConfig fields that no option sets (their default always applies).
NOT_OPTIONS = ("extra", "layers")  # layers: set by amcee prune


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train an early-exit model",
        description="Train an early-exit network on a dataset file (amcee .npz, RML22/RadioML 2016 "
                    "pickle, SigMF or RadioML 2018.01A HDF5) with the paper's split (10 % test, 10 % of "
                    "the rest validation). The network is built for the dataset's frame length and "
                    "classes, which the exported model records. "
                    f"Defaults are the paper's code: Adam, lr {DEFAULTS['lr']:g}, weight decay "
                    f"{DEFAULTS['weight_decay']:g}, batch {DEFAULTS['batch_size']}, "
                    f"{DEFAULTS['epochs']} epochs.  Writes metrics.jsonl, last.pt/best.pt checkpoints "
                    "and the exported TorchScript model.pt into --out.")
    p.add_argument("--data", required=True,
                   help=f"dataset file ({DATASET_FORMATS})")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, model.pt)")
    _add_model_options(p)
    _add_optimisation_options(p)
    _add_output_options(p)
    p.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="continue from a last.pt/best.pt (same settings; the stored config wins)")
    p.add_argument("--test-only", action="store_true",
                   help="only evaluate --resume's checkpoint on the test split and print JSON")
    _option(p, "--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _option(p, *flags, **kwargs):
    """An option of the TrainConfig field ``dest``, with the field's default."""
    p.add_argument(*flags, default=DEFAULTS[kwargs["dest"]], **kwargs)


def _add_model_options(p):
    """The exits, their heads and how they are trained."""
    p.add_argument("--exits", nargs="+", default=list(DEFAULTS["exits"]),
                   help="early exits in backbone order: paper versions V0..V3 or layer names; "
                        "'none' trains the backbone alone (default: %s, the paper's pick)"
                        % " ".join(DEFAULTS["exits"]))
    _option(p, "--exit-head", dest="exit_head", choices=EXIT_HEADS,
            help="early-exit head: paper (max-pool to 1024 features, three Linear layers) or "
                 "conv (max-pool, one conv block, per-channel mean/max/std, two Linear layers "
                 "with a ReLU; stronger at V0 for fewer MACs) (default: %(default)s)")
    _option(p, "--scheme", dest="scheme", choices=SCHEMES,
            help="paper: Algorithm 1 (exit loss trains shared layers + head, final loss only "
                 "the layers after the branch; with several exits each loss trains its own "
                 "segment); joint: BranchyNet weighted sum of all exit losses (default: %(default)s)")
    _option(p, "--exit-weights", dest="exit_weights", type=float, nargs="+",
            help="joint scheme: loss weight per exit, final exit last (default: 1 each)")
    _option(p, "--distill", dest="distill", type=float,
            help="joint scheme: weight of self-distillation, KL(final exit || early exit) per "
                 "early exit (default: %(default)s = off)")
    _option(p, "--teacher", dest="teacher", metavar="MODEL",
            help="distil from another trained network, a checkpoint or a model file: the final exit "
                 "also matches its final exit (e.g. a narrow or pruned network learning from the "
                 "shipped paper backbone, python/amcee/models/paper_backbone.pt; needs --teacher-weight)")
    _option(p, "--teacher-weight", dest="teacher_weight", type=float,
            help="weight of KL(teacher's final exit || final exit) (default: %(default)s = off)")
    _option(p, "--stem-channels", dest="stem_channels", type=int,
            help="conv1's output channels (default: --init-from's, else the paper's 64); a "
                 "narrower stem makes the frames that leave at V0 cheaper (docs/pruning.md)")
    _option(p, "--init-from", dest="init_from", metavar="CHECKPOINT",
            help="start from a checkpoint's weights with a fresh optimiser and schedule "
                 "(fine-tuning); layers are matched by backbone position and exit, so the "
                 "exits or head kind may differ: new heads start from scratch")
    _option(p, "--freeze-backbone", dest="freeze_backbone", nargs="?", const="final", metavar="LAYER",
            help="with --init-from: keep the backbone as trained; alone, all of it and its final "
                 "exit, so only the early-exit heads train and decide when a frame may leave "
                 "(best.pt by --select mean); with a LAYER (e.g. conv1 or V0), the layers up to "
                 "and including it, so the later layers still learn for the early exits")


def _add_optimisation_options(p):
    """Optimiser, schedule, stopping, seeds and data fractions."""
    _option(p, "--epochs", dest="epochs", type=int, help="epochs (default: %(default)s)")
    _option(p, "--batch-size", dest="batch_size", type=int, help="global batch size (default: %(default)s)")
    _option(p, "--lr", dest="lr", type=float, help="Adam learning rate (default: %(default)s)")
    _option(p, "--weight-decay", dest="weight_decay", type=float, help="Adam weight decay (default: %(default)s)")
    _option(p, "--schedule", dest="schedule", choices=SCHEDULES,
            help="learning-rate schedule: constant (paper) or linear warm-up + cosine decay "
                 "per step (default: %(default)s)")
    _option(p, "--warmup-epochs", dest="warmup_epochs", type=float,
            help="cosine warm-up length (default: %(default)s)")
    _option(p, "--dropout", dest="dropout", type=float, help="dropout of the linear layers (default: %(default)s)")
    _option(p, "--patience", dest="patience", type=int,
            help="stop after this many epochs without a better validation metric (default: %(default)s = off)")
    _option(p, "--select", dest="select", choices=SELECT_METRICS,
            help="best.pt by validation accuracy of the final exit or the mean over exits "
                 "(default: final; mean with the whole backbone frozen)")
    _option(p, "--seed", dest="seed", type=int,
            help="seed of weights, dropout and data order (default: %(default)s)")
    _option(p, "--split-seed", dest="split_seed", type=int, help="seed of the paper split (default: %(default)s)")
    _option(p, "--train-fraction", dest="train_fraction", type=float,
            help="train on this stratified fraction of the training split (default: %(default)s)")
    _option(p, "--val-fraction", dest="val_fraction", type=float,
            help="per-epoch validation on this stratified fraction of the validation split "
                 "(default: %(default)s)")
    _option(p, "--compile", dest="compile", action="store_true",
            help="torch.compile the training forward (experimental: needs a C++ compiler on "
                 "CPU, about a minute to compile; helps on an idle machine only)")


def _add_output_options(p):
    """The exported model, the device and the validation batch."""
    _option(p, "--threshold", dest="threshold", type=float,
            help="default entropy threshold of the exported model and of the validation "
                 "early-exit metric (default: %(default)s, the paper's T)")
    _option(p, "--calibrate", dest="calibrate_max_loss", type=float, metavar="MAX_LOSS_PP",
            help="at the end, calibrate the exported model's thresholds on the validation split "
                 "for at most this accuracy loss in percentage points (see amcee calibrate)")
    _option(p, "--device", dest="device", help="cpu or cuda (default: %(default)s)")
    _option(p, "--threads", dest="threads", type=int, help="torch CPU threads (default: torch's choice)")
    _option(p, "--eval-batch", dest="eval_batch", type=int, help="validation batch size (default: %(default)s)")
    _option(p, "--model-version", dest="model_version",
            help="short version name stored in model.pt, e.g. amcee-default-7 (default: the name "
                 "of the --out folder)")
    _option(p, "--description", dest="description",
            help="what the model is, in words, stored in model.pt beside the version")


def config_from_args(args):
    """The TrainConfig of the parsed options: every field from the option of its name."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if f.name not in NOT_OPTIONS + ("out_dir",)}
    values["out_dir"] = args.out
    values["exits"] = () if [e.lower() for e in args.exits] == ["none"] else tuple(args.exits)
    return TrainConfig(**values)


def run(args):
    from . import print_json
    from ..training import train as training

    if args.test_only:
        if not args.resume:
            raise ValueError("--test-only needs --resume CHECKPOINT")
        print_json(training.test_only(args.resume, args.data, device=args.device,
                                      threshold=args.threshold))
        return 0
    config = config_from_args(args)
    if args.resume:
        # Resuming continues the stored run: its settings win over the flags,
        # except the epoch budget (may be extended), the paths and --calibrate.
        from ..network.checkpoint import load_checkpoint

        _, state = load_checkpoint(args.resume)
        stored = dict(state["train_config"])
        stored.update(epochs=args.epochs, progress=args.progress, out_dir=args.out, data=args.data,
                      calibrate_max_loss=args.calibrate_max_loss)
        config = training.TrainConfig(**stored)
    summary = training.train(config, resume=args.resume)
    if summary is not None:
        print_json(summary)
    return 0
