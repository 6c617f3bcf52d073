"""amcee info: what an exported model is, its settings and how it was calibrated."""
import json


def add_parser(subparsers):
    p = subparsers.add_parser("info", help="show an exported model's metadata",
                              description="Load an exported model, check it and print a summary of its "
                                          "metadata: version, classes, exits, thresholds, SNR table, "
                                          "calibration.  --json prints the whole metadata as stored.")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped default model)")
    p.add_argument("--json", action="store_true",
                   help="print the metadata as stored in the file (JSON, full precision)")
    p.add_argument("--snr-table", action="store_true",
                   help="also print the SNR table's thresholds bin by bin")
    p.set_defaults(func=run)
    return p


def _share_list(names, values):
    return ", ".join(f"{name} {value:.4g}" for name, value in zip(names, values))


def _rule_lines(loaded, early, snr_bins):
    """The exit rule's lines of format_info: thresholds, give-up values, SNR table."""
    from ..inference.model_file import format_thresholds
    from ..inference.snr_table import model_snr_table

    lines = ["thresholds    " + format_thresholds(loaded.default_thresholds, early, loaded.classes)]
    if not early:  # a backbone alone (e.g. the shipped reference): no give-up value, no SNR table
        return lines
    give_up = loaded.default_give_up
    lines.append("give-up       " + ", ".join(f"{n} {'off' if g == float('inf') else f'{g:.4g}'}"
                                             for n, g in zip(early, give_up)))
    table = model_snr_table(loaded)
    if table is None:
        lines.append("SNR table     none (every frame held to the thresholds above)")
    else:
        floor = table.floor_db
        lines.append(f"SNR table     {table.num_bins} bins, edges {table.edges_db[0]:g} .. {table.edges_db[-1]:g} dB"
                     if table.edges_db else f"SNR table     1 bin")
        if floor is not None:
            lines[-1] += f"; below {floor:g} dB every frame leaves at {early[0]}"
        if not snr_bins:
            lines[-1] += " (bin by bin: --snr-table)"
        for b, (t, g) in enumerate(zip(table.thresholds, table.give_up) if snr_bins else ()):
            low = "-inf" if b == 0 else f"{table.edges_db[b - 1]:g}"
            high = "inf" if b == len(table.edges_db) else f"{table.edges_db[b]:g}"
            lines.append(f"  [{low}, {high}) dB: " + format_thresholds(t, early, loaded.classes) + "; give-up "
                         + ", ".join(f"{n} {'off' if v == float('inf') else f'{v:.4g}'}" for n, v in zip(early, g)))
    return lines


def format_info(loaded, snr_bins=False):
    """A model's metadata as a few lines of text, numbers rounded; the SNR
    table's bins one line each with ``snr_bins``."""
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
    lines += _rule_lines(loaded, early, snr_bins)
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
    print(json.dumps(loaded.meta, indent=1) if args.json else format_info(loaded, snr_bins=args.snr_table))
