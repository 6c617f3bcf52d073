"""The ``amcee`` command: one program, one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)``, which registers its
arguments and sets ``func`` to its ``run(args)``.  Subcommand modules import
torch, GNU Radio and friends inside ``run`` so that ``amcee --help`` is instant.
"""
import argparse
import importlib
import sys

#: Subcommands in the order ``amcee --help`` lists them.
SUBCOMMANDS = (
    "synth", "export-stream", "report", "train", "eval", "calibrate",
    "export", "replay", "demo", "bench", "info",
)


def _module_name(subcommand):
    return "." + subcommand.replace("-", "_")


def one_or_per_exit(values):
    """A ``--threshold`` given with nargs='+': None, one float for every early
    exit, or a list with one value per early exit (checked by the engine)."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


def get_parser():
    parser = argparse.ArgumentParser(
        prog="amcee",
        description="Early-exit automatic modulation classification for GNU Radio.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(_module_name(name), __name__).add_parser(sub)
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input is reported in one line, never as a traceback.
        print(f"amcee {args.command}: error: {exc}", file=sys.stderr)
        return 2
