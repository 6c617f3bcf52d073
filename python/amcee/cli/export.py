"""amcee export: checkpoint -> self-describing TorchScript model."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="export a training checkpoint as a TorchScript model for the block",
        description="Write a TorchScript early-exit model with its metadata (classes, frame "
                    "length, normalisation, exit names, default thresholds) inside the file.")
    p.add_argument("checkpoint", help="checkpoint written by `amcee train` (.pt)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--threshold", type=float, nargs="+", default=None,
                   help="default entropy threshold(s): one for all early exits or one per early "
                        "exit (default: the checkpoint's calibrated ones, else 0.35, the paper's)")
    p.add_argument("--model-version", default=None,
                   help="short version name stored in the file, e.g. amcee-default-7 (default: the "
                        "checkpoint's, the name of its run folder)")
    p.add_argument("--description", default=None,
                   help="what the model is, in words, stored beside the version (default: the "
                        "checkpoint's, if any)")
    p.set_defaults(func=run)


def run(args):
    from . import one_or_per_exit, print_json
    from ..network.checkpoint import load_checkpoint
    from ..network.export import export_model

    model, state = load_checkpoint(args.checkpoint)
    thresholds = one_or_per_exit(args.threshold) or state.get("thresholds") or 0.35
    version = args.model_version or state.get("model_version") or "unversioned"
    description = state.get("description", "") if args.description is None else args.description
    meta = export_model(model, args.out, state["classes"], thresholds, version,
                        extra={"training": state.get("summary", {})}, description=description)
    print_json({"model": args.out, "exit_names": meta["exit_names"],
                "thresholds": meta["thresholds"], "model_version": meta["model_version"]})
