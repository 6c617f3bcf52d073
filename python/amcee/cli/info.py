"""amcee info: what an exported model is, its settings and how it was calibrated."""
import json


def add_parser(subparsers):
    p = subparsers.add_parser("info", help="show an exported model's metadata",
                              description="Load an exported model, check it and print a summary of its "
                                          "metadata: version, classes, exits, thresholds, exit gating, "
                                          "calibration.  --json prints the whole metadata as stored.")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped default model)")
    p.add_argument("--json", action="store_true",
                   help="print the metadata as stored in the file (JSON, full precision)")
    p.set_defaults(func=run)
    return p


def _share_list(names, values):
    return ", ".join(f"{name} {value:.4g}" for name, value in zip(names, values))


def format_info(loaded):
    """A model's metadata as a few lines of text, numbers rounded."""
    from ..inference.model_file import format_thresholds

    meta = loaded.meta
    early = loaded.exit_names[:-1]
    lines = [f"{loaded.path}: {loaded.version}"]
    if loaded.description:
        lines.append(f"  {loaded.description}")
    lines += [
        f"classes       {', '.join(loaded.classes)}",
        f"input         {loaded.frame_len} samples per frame; {meta['input_layout']}; "
        f"{meta['normalization']} normalisation",
        f"exits         {', '.join(loaded.exit_names)}",
    ]
    if "exit_macs" in meta:
        lines.append(f"MACs per exit {', '.join(str(m) for m in meta['exit_macs'])} "
                     f"(backbone alone {meta['backbone_macs']})")
    lines.append("thresholds    " + format_thresholds(loaded.default_thresholds, early, loaded.classes))
    give_up = loaded.default_give_up
    lines.append("give-up       " + ", ".join(f"{n} {'off' if g == float('inf') else f'{g:.4g}'}"
                                             for n, g in zip(early, give_up)))
    gating = loaded.default_min_exit_share
    lines.append("exit gating   " + (_share_list(early, gating) + " (min_exit_share)" if any(gating) else "off"))
    calibration = meta.get("calibration")
    if calibration:
        chosen = calibration.get("chosen") or {}
        constraint = ", ".join(f"{k} {v:g}" for k, v in (calibration.get("constraint") or {}).items())
        text = (f"calibrated    on the {calibration.get('split')} split of {calibration.get('data')} "
                f"({calibration.get('frames')} frames), {constraint}")
        if chosen:
            text += (f": accuracy {100 * chosen['accuracy']:.2f} % (final exit "
                     f"{100 * calibration['final_exit_accuracy']:.2f} %), exit shares "
                     + _share_list(loaded.exit_names, chosen["exit_shares"])
                     + f", compute {chosen['compute_fraction']:.3f} of the backbone's")
        lines.append(text)
        if calibration.get("temperatures"):
            lines.append("temperatures  " + _share_list(loaded.exit_names, calibration["temperatures"]))
    lines.append(f"created       {meta.get('created', '?')} with torch {meta.get('torch_version', '?')}; "
                 f"format {meta['format']} {meta['format_version']}")
    return "\n".join(lines)


def run(args):
    from ..inference.model_file import default_model_path, load_model

    loaded = load_model(args.model or default_model_path())
    print(json.dumps(loaded.meta, indent=1) if args.json else format_info(loaded))
