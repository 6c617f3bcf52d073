"""amcee info: print the metadata of an exported model."""
import json


def add_parser(subparsers):
    p = subparsers.add_parser("info", help="show an exported model's metadata",
                              description="Load an exported model, check it and print its metadata.")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped default model)")
    p.set_defaults(func=run)


def run(args):
    from ..engine import default_model_path
    from ..export import load_model

    loaded = load_model(args.model or default_model_path())
    print(json.dumps(loaded.meta, indent=1))
