"""The ``amcee`` command: one program, one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)``, which adds the
subcommand's parser (help, description, arguments), sets ``func`` to the
module's ``run(args)`` and returns the parser.  An option's default comes
from the function the subcommand runs (``defaults_of``) and its choices from
the constants of the modules that define them; its help shows the default
with ``%(default)s``.  Those modules are imported when the parser is built,
which costs little: ``import gnuradio.amcee`` has loaded torch and GNU Radio
already.  What only ``run`` needs (tqdm, matplotlib, ...) loads in ``run``.

What every subcommand shares lives here: the SNR list syntax, the rounding of
printed numbers, and the creation of missing parent folders of output paths.
"""
import argparse
import importlib
import inspect
import json
import math
import os
import re
import sys

from ..version import __version__

#: Subcommands in the order ``amcee --help`` lists them.
SUBCOMMANDS = (
    "synth", "export-stream", "report", "train", "prune", "eval", "calibrate",
    "export", "replay", "demo", "bench", "snr-accuracy", "info",
)

#: Subcommands that load model files: they take --trust-model-code.
MODEL_LOADING_SUBCOMMANDS = ("eval", "calibrate", "export", "replay", "demo", "bench", "info")

#: Arguments that name a file or folder a subcommand writes: their missing
#: parent folders are created before the subcommand runs.
OUTPUT_ARGUMENTS = ("out", "report", "predictions", "screenshot")

#: Step of an SNR range written LO:HI: RML22's 2 dB grid.
DEFAULT_SNR_STEP = 2.0

#: Significant digits of the numbers a subcommand prints (files keep full precision).
PRINTED_DIGITS = 4

# A value such as -10:20:2 or -10,0,10 that argparse would take for an option
# (it only lets plain negative numbers like -10 through).
_NEGATIVE_LIST = re.compile(r"-\.?\d[0-9.:,+-]*")


def _module_name(subcommand):
    return "." + subcommand.replace("-", "_")


def defaults_of(function):
    """{parameter: default} of ``function``'s parameters that have one: the
    defaults of a subcommand's options, declared once, by the function it runs."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def add_threshold_argument(parser, default="the model's calibrated thresholds", what="entropy threshold"):
    """``--threshold T [T ...]``: one for all early exits or one per early exit
    (``one_or_per_exit`` turns it into what the engine takes)."""
    parser.add_argument("--threshold", type=float, nargs="+", default=None, metavar="T",
                        help=f"{what}, one for all early exits or one per early exit (default: {default})")


def one_or_per_exit(values):
    """A ``--threshold`` given with nargs='+': None, one float for every early
    exit, or a list with one value per early exit (checked by the engine)."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


# ------------------------------------------------------------------ SNR lists
def snr_text(snrs):
    """An SNR list in the ``--snrs`` syntax: LO:HI:STEP when evenly spaced."""
    snrs = [float(s) for s in snrs]
    steps = {round(b - a, 9) for a, b in zip(snrs, snrs[1:])}
    if len(snrs) > 2 and len(steps) == 1 and steps.pop() > 0:
        return f"{snrs[0]:g}:{snrs[-1]:g}:{snrs[1] - snrs[0]:g}"
    return ",".join(f"{s:g}" for s in snrs)


def add_snr_argument(parser, default, what="SNRs"):
    """``--snrs`` (alias ``--snr``): one syntax for every subcommand that takes SNRs;
    ``default`` is a list of SNRs in dB."""
    parser.add_argument(
        "--snrs", "--snr", dest="snrs", nargs="+", default=snr_text(default), metavar="DB",
        help=f"{what} in dB: numbers and LO:HI[:STEP] ranges (HI included, STEP "
             f"{DEFAULT_SNR_STEP:g} when left out), separated by spaces or commas, e.g. "
             "-20:20:2 or 0 10 20 (default: %(default)s)")


def parse_snrs(values):
    """SNRs in dB from ``--snrs`` values (a string or a list of strings):
    numbers and ``LO:HI[:STEP]`` ranges, separated by spaces or commas."""
    if isinstance(values, str):
        values = [values]
    tokens = [t.strip() for value in values for t in str(value).split(",") if t.strip()]
    snrs = []
    for token in tokens:
        try:
            if ":" in token:
                parts = [float(p) for p in token.split(":")]
                if len(parts) not in (2, 3):
                    raise ValueError
                lo, hi = parts[:2]
                step = parts[2] if len(parts) == 3 else DEFAULT_SNR_STEP
                if not step > 0 or not hi >= lo or not math.isfinite(hi - lo):
                    raise ValueError
                count = int(math.floor((hi - lo) / step + 1e-9)) + 1
                # Rounded so that 0:1:0.1 gives 0.3, not 0.30000000000000004.
                snrs += [round(lo + i * step, 9) for i in range(count)]
            else:
                snrs.append(float(token))
        except ValueError:
            raise ValueError(
                f"bad SNR {token!r}: give numbers in dB and LO:HI[:STEP] ranges (HI >= LO, "
                f"STEP > 0, {DEFAULT_SNR_STEP:g} when left out), e.g. -20:20:2 or 0 10 20") from None
    if not snrs:
        raise ValueError("no SNR given")
    bad = [s for s in snrs if not math.isfinite(s)]
    if bad:
        raise ValueError(f"SNRs must be finite, got {bad[0]}")
    snrs = [s + 0.0 for s in snrs]  # -0.0 -> 0.0
    twice = sorted({s for s in snrs if snrs.count(s) > 1})
    if twice:
        raise ValueError("SNR listed more than once: " + ", ".join(f"{s:g}" for s in twice))
    return snrs


def _protect_negative_lists(argv):
    """argv with values like -10:20:2 marked as values: a leading space makes
    argparse read them as arguments, not options (parse_snrs strips it)."""
    return [" " + a if _NEGATIVE_LIST.fullmatch(a) and (":" in a or "," in a) else a for a in argv]


# ------------------------------------------------------------------ printing
def rounded(value, digits=PRINTED_DIGITS):
    """``value`` with every float rounded to ``digits`` significant digits, but
    never into its integer part (in dicts, lists and tuples too):
    0.5000000000000004 -> 0.5, 0.123456 -> 0.1235, 1027941.77 -> 1027942.0."""
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return value
        return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def print_json(value, indent=None):
    """Print a subcommand's result as JSON, numbers rounded (rounded())."""
    print(json.dumps(rounded(value), indent=indent))


# ------------------------------------------------------------------ outputs
def make_output_parents(args):
    """Create the missing parent folders of every output path in ``args``."""
    for name in OUTPUT_ARGUMENTS:
        path = getattr(args, name, None)
        if path:
            parent = os.path.dirname(os.path.abspath(os.fspath(path)))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                option = "--" + name.replace("_", "-")
                raise OSError(f"cannot create the folder {parent} of {option} {path}: "
                              f"{exc.strerror or exc}") from None


# ------------------------------------------------------------------ the program
def get_parser():
    parser = argparse.ArgumentParser(
        prog="amcee",
        description="Early-exit automatic modulation classification for GNU Radio.",
        epilog="Run `amcee COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(_module_name(name), __name__).add_parser(sub)
        if name in MODEL_LOADING_SUBCOMMANDS:
            sub.choices[name].add_argument(
                "--trust-model-code", action="store_true",
                help="load model files whose TorchScript code this package did not write (the "
                     "code runs inside torch and can read and write files): only files you trust")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [os.fspath(a) for a in argv]
    parser = get_parser()
    if not argv:
        # No command is a request for the command list, not a mistake: print it, exit 0.
        parser.print_help()
        return 0
    args = parser.parse_args(_protect_negative_lists(argv))
    try:
        make_output_parents(args)
        if args.command in MODEL_LOADING_SUBCOMMANDS:
            # The model-file check's reference built in this process (torch is
            # loaded for these commands anyway), not in a subprocess.
            from ..network import model_code  # noqa: F401
        if getattr(args, "trust_model_code", False):
            from ..inference.model_file import trusted_model_code  # torch: only when asked

            with trusted_model_code():
                return args.func(args) or 0
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input is reported in one line, never as a traceback.
        print(f"amcee {args.command}: error: {exc}", file=sys.stderr)
        return 2
