"""amcee train: train the backbone, a paper version V0..V3 or any list of exits.

Runs as one process, or under ``torchrun --nproc_per_node N`` with
DistributedDataParallel (gloo on CPU, NCCL on GPU).
"""


def get_args_parser(subparsers=None):
    kwargs = dict(
        description="Train an early-exit network on a dataset file (amcee .npz, RML22/RadioML pickle "
                    "or SigMF) with the paper's split (10 % test, 10 % of the rest validation). "
                    "Defaults are the paper's code: Adam, lr 1e-4, weight decay 5e-4, batch 500, "
                    "50 epochs.  Writes metrics.jsonl, last.pt/best.pt checkpoints and the exported "
                    "TorchScript model.pt into --out.")
    if subparsers is None:
        import argparse
        p = argparse.ArgumentParser(prog="amcee train", **kwargs)
    else:
        p = subparsers.add_parser("train", help="train an early-exit model", **kwargs)
    p.add_argument("--data", required=True, help="dataset file (amcee .npz, RML22 pickle, SigMF)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, model.pt)")
    p.add_argument("--exits", nargs="+", default=["V1"],
                   help="early exits in backbone order: paper versions V0..V3 or layer names; "
                        "'none' trains the backbone alone (default: V1, the paper's pick)")
    p.add_argument("--exit-head", choices=("paper", "conv"), default="paper",
                   help="early-exit head: paper (max-pool to 1024 features, three Linear layers) or "
                        "conv (max-pool, one conv block, per-channel mean/max/std, two Linear layers "
                        "with a ReLU; stronger at V0 for fewer MACs) (default: paper)")
    p.add_argument("--scheme", choices=("paper", "joint"), default="paper",
                   help="paper: Algorithm 1 (exit loss trains shared layers + head, final loss only "
                        "the layers after the branch; with several exits each loss trains its own "
                        "segment); joint: BranchyNet weighted sum of all exit losses (default: paper)")
    p.add_argument("--exit-weights", type=float, nargs="+", default=None,
                   help="joint scheme: loss weight per exit, final exit last (default: 1 each)")
    p.add_argument("--distill", type=float, default=0.0,
                   help="joint scheme: weight of self-distillation, KL(final exit || early exit) per "
                        "early exit (default: 0 = off)")
    p.add_argument("--init-from", metavar="CHECKPOINT", default=None,
                   help="start from a checkpoint's weights with a fresh optimiser and schedule "
                        "(fine-tuning); layers are matched by backbone position and exit, so the "
                        "exits or head kind may differ: new heads start from scratch")
    p.add_argument("--epochs", type=int, default=50, help="epochs (default: 50)")
    p.add_argument("--batch-size", type=int, default=500, help="global batch size (default: 500)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="Adam weight decay (default: 5e-4)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning-rate schedule: constant (paper) or linear warm-up + cosine decay "
                        "per step (default: constant)")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="cosine warm-up length (default: 0)")
    p.add_argument("--dropout", type=float, default=0.5, help="dropout of the linear layers (default: 0.5)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a better validation metric (default: 0 = off)")
    p.add_argument("--select", choices=("final", "mean"), default="final",
                   help="best.pt by validation accuracy of the final exit or the mean over exits "
                        "(default: final)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, dropout and data order (default: 0)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the paper split (default: 0)")
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on this stratified fraction of the training split (default: 1)")
    p.add_argument("--val-fraction", type=float, default=1.0,
                   help="per-epoch validation on this stratified fraction of the validation split "
                        "(default: 1)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (experimental: needs a C++ compiler on "
                        "CPU, about a minute to compile; helps on an idle machine only)")
    p.add_argument("--threshold", type=float, default=0.35,
                   help="default entropy threshold of the exported model and of the validation "
                        "early-exit metric (default: 0.35, the paper's T)")
    p.add_argument("--calibrate", type=float, default=None, metavar="MAX_LOSS_PP",
                   help="at the end, calibrate the exported model's thresholds on the validation split "
                        "for at most this accuracy loss in percentage points (see amcee calibrate)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--eval-batch", type=int, default=4096, help="validation batch size (default: 4096)")
    p.add_argument("--model-version", default=None,
                   help="short version name stored in model.pt, e.g. amcee-default-7 (default: the name "
                        "of the --out folder)")
    p.add_argument("--description", default="",
                   help="what the model is, in words, stored in model.pt beside the version")
    p.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="continue from a last.pt/best.pt (same settings; the stored config wins)")
    p.add_argument("--test-only", action="store_true",
                   help="only evaluate --resume's checkpoint on the test split and print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def add_parser(subparsers):
    return get_args_parser(subparsers)


def config_from_args(args):
    from ..training.train import TrainConfig

    exits = () if [e.lower() for e in args.exits] == ["none"] else tuple(args.exits)
    return TrainConfig(
        data=args.data, out_dir=args.out, exits=exits, exit_head=args.exit_head, scheme=args.scheme,
        exit_weights=tuple(args.exit_weights) if args.exit_weights else None,
        distill=args.distill, init_from=args.init_from,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, dropout=args.dropout,
        patience=args.patience, select=args.select, seed=args.seed, split_seed=args.split_seed,
        train_fraction=args.train_fraction, val_fraction=args.val_fraction, compile=args.compile,
        device=args.device, threads=args.threads,
        eval_batch=args.eval_batch, threshold=args.threshold,
        calibrate_max_loss=args.calibrate, model_version=args.model_version,
        description=args.description, progress=not args.quiet)


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
        stored.update(epochs=args.epochs, progress=not args.quiet, out_dir=args.out, data=args.data,
                      calibrate_max_loss=args.calibrate)
        config = training.TrainConfig(**stored)
    summary = training.train(config, resume=args.resume)
    if summary is not None:
        print_json(summary)
    return 0
