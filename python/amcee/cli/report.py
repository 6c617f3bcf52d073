"""``amcee report``: fidelity report of a dataset, or of a freshly generated one."""


from ..data.files import DATASET_FORMATS
from .synth import REPORT_FRAMES_PER_KEY, add_synth_arguments


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="fidelity report (SNR table, statistics, example plots)",
        description="Write fidelity.json/.md/.png for DATASET, or, without DATASET, for a "
                    "small set generated with the synth options (clean and noisy twins, so "
                    "that the SNR can be measured).  For amcee synth data with WBFM or AM-DSB "
                    "it adds the synthetic speech's long-term spectrum against the published "
                    "one (Byrne et al. 1994) and the first generator's (speech.png).")
    p.add_argument("dataset", nargs="?", default=None,
                   help=f"dataset to describe ({DATASET_FORMATS}); omit to regenerate")
    p.add_argument("--out", required=True, help="output folder")
    add_synth_arguments(p, frames_per_key=REPORT_FRAMES_PER_KEY)
    p.add_argument("--trusted", action="store_true",
                   help="allow a full pickle load of a trusted RML file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import print_json
    from ..data.synth.fidelity import write_report

    if args.dataset:
        from ..data.files import load_dataset
        report = write_report(args.out, ds=load_dataset(args.dataset, trusted=args.trusted))
    else:
        from .synth import synth_kwargs
        report = write_report(args.out, progress=not args.quiet, **synth_kwargs(args))
    summary = {"out": str(args.out), "frames": report["frames"]}
    if "snr" in report:
        summary["snr"] = {f"{r['nominal_db']:g}": round(r["measured_db"], 2) for r in report["snr"]}
    print_json(summary)
    return 0
