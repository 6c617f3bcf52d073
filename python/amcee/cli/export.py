"""amcee export: checkpoint -> self-describing TorchScript model; or a model
file written by an earlier version of this package -> the same model with
this version's code."""
from ..training.exit_simulation import PAPER_THRESHOLD
from . import add_threshold_argument


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="export a training checkpoint as a TorchScript model for the block",
        description="Write a TorchScript early-exit model with its metadata (classes, frame "
                    "length, normalisation, exit names, default thresholds) inside the file.")
    p.add_argument("checkpoint", help="checkpoint written by `amcee train` (.pt), or a model file exported "
                                      "by an earlier gr-amcee: written again with this version's code, "
                                      "its weights and metadata kept (with --trust-model-code: its old "
                                      "code runs once to read the weights)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (refused without it)")
    add_threshold_argument(p, what="default entropy threshold written into the model",
                           default=f"the checkpoint's calibrated ones, else {PAPER_THRESHOLD}, the paper's")
    p.add_argument("--model-version", default=None,
                   help="short version name stored in the file, e.g. amcee-default-7 (default: the "
                        "checkpoint's, the name of its run folder)")
    p.add_argument("--description", default=None,
                   help="what the model is, in words, stored beside the version (default: the "
                        "checkpoint's, if any)")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import one_or_per_exit, print_json
    from ..network.checkpoint import load_checkpoint
    from ..atomic import refuse_existing
    from ..network.export import export_model

    if not args.overwrite:
        refuse_existing(args.out, "--out model file")
    from ..inference.model_file import torch_file_kind

    if torch_file_kind(args.checkpoint) == "torchscript":
        from ..network.export import upgrade_model_file

        if args.threshold is not None:
            raise ValueError("--threshold goes with a checkpoint: a model file keeps its calibrated thresholds")
        meta = upgrade_model_file(args.checkpoint, args.out, model_version=args.model_version,
                                  description=args.description)
        print_json({"model": args.out, "upgraded_from": args.checkpoint, "exit_names": meta["exit_names"],
                    "thresholds": meta["thresholds"], "model_version": meta["model_version"]})
        return
    model, state = load_checkpoint(args.checkpoint)
    thresholds = one_or_per_exit(args.threshold) or state.get("thresholds") or PAPER_THRESHOLD
    version = args.model_version or state.get("model_version") or "unversioned"
    description = state.get("description", "") if args.description is None else args.description
    meta = export_model(model, args.out, state["classes"], thresholds, version,
                        extra={"training": state.get("summary", {})}, description=description)
    print_json({"model": args.out, "exit_names": meta["exit_names"],
                "thresholds": meta["thresholds"], "model_version": meta["model_version"]})
