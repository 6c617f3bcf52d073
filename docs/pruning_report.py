"""Write docs/pruning.md (and pruning.json): the paper's backbone, the pruned
backbones of an `amcee prune` run (the segment-wise method and every
baseline), and early-exit models, side by side from one run on the test split.

Usage (from the repository root):
    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/pruning_report.py \
        --data data/synth_v2.npz --reference runs/v2-backbone/best.pt \
        --prune-report runs/v2-pruned/report.json runs/v2-pruned-k1/report.json \
        --early-exit pruned-early-exit=runs/v2-pruned-ee/model.pt \
        --out docs/pruning.md

Per network: parameters, MACs of the backbone (and per frame at the
early-exit operating point), test accuracy over all SNRs, at >= 10 dB and per
class at >= 10 dB, and engine frames/s per SNR subset with the speed-up over
the reference backbone (median of the per-round ratios of interleaved
repeats, one process, one torch thread as the block runs).  A backbone runs
as `engine.backbone_probs` (no head but its classifier); a checkpoint without
early exits is exported for that with one untrained exit head that the
backbone path never runs.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HIGH_SNR_DB = 10.0


def model_file_for_timing(checkpoint, folder):
    """A model file of ``checkpoint``'s network; a network without early exits
    gets one (untrained: only engine.backbone_probs is timed on it)."""
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.checkpoint import load_checkpoint, transfer_weights
    from gnuradio.amcee.network.export import export_model
    from gnuradio.amcee.training.prune import cut_points

    model, state = load_checkpoint(checkpoint)
    if model.num_exits == 1:
        config = ModelConfig.from_dict(dict(model.config.to_dict(), exits=(cut_points(model.config.layers)[0],)))
        net = EarlyExitNet(config)
        transfer_weights(model, net)
        model = net
    path = os.path.join(folder, f"{abs(hash(os.path.abspath(checkpoint)))}.pt")
    export_model(model.eval(), path, state["classes"], 0.0)
    return path


def network_facts(config_dict):
    from gnuradio.amcee.network.architecture import PAPER_STEM_CHANNELS, EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.compute_costs import count_parameters, exit_costs

    config = ModelConfig.from_dict(config_dict)
    net = EarlyExitNet(config)
    costs, backbone = exit_costs(net)
    backbone_params = count_parameters(net) - sum(count_parameters(b.head) for b in list(net.blocks)[:-1])
    layers = [f"conv1({config.stem_channels})" if name == "conv1" and config.stem_channels != PAPER_STEM_CHANNELS
              else name for name in config.layers]
    return {"layers": layers, "exits": list(config.exit_names), "parameters": count_parameters(net),
            "backbone_parameters": backbone_params, "backbone_macs": backbone, "exit_macs": costs,
            "stem_channels": config.stem_channels}


def accuracy(pred, labels, snrs, classes):
    correct = pred == labels
    high = snrs >= HIGH_SNR_DB - 1e-6
    return {"accuracy": float(correct.mean()), "accuracy_high_snr": float(correct[high].mean()),
            "per_class_high_snr": {str(c): float(correct[high & (labels == i)].mean())
                                   for i, c in enumerate(classes) if (high & (labels == i)).any()}}


def named_paths(parser, option, items):
    """NAME=PATH arguments as (name, path) pairs."""
    pairs = []
    for item in items:
        name, _, path = item.rpartition("=")  # names may hold "=" (">= 10 dB"), paths not
        if not name or not path:
            parser.error(f"{option} takes NAME=PATH, got {item!r}")
        pairs.append((name, path))
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--reference", required=True,
                        help="the paper's backbone: training checkpoint or model file")
    parser.add_argument("--reference-name", default="paper backbone", help="its row's name (default: %(default)s)")
    parser.add_argument("--backbone", nargs="*", default=[], metavar="NAME=CHECKPOINT",
                        help="more unpruned backbones to add, e.g. the paper's trained longer (name=path)")
    parser.add_argument("--goal-reference", default=None, metavar="NAME",
                        help="the network speed-ups and goals are measured against: the paper backbone trained "
                             "like the candidates (default: the --reference)")
    parser.add_argument("--prune-report", required=True, nargs="+", help="report.json of amcee prune runs")
    parser.add_argument("--early-exit", nargs="*", default=[], metavar="NAME=MODEL",
                        help="early-exit model files to add (name=path)")
    parser.add_argument("--snrs", type=float, nargs="+", default=[-20, 0, 10, 20])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None,
                        help="frames per network call of every engine (default: each network's own, the "
                             "engine's default_batch for it, as the block and the CLI run it)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="markdown file; the JSON goes beside it")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from gnuradio.amcee.data.dataset import split_indices
    from gnuradio.amcee.data.files import load_dataset
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.frames import to_complex
    from gnuradio.amcee.inference.model_file import torch_file_kind
    from gnuradio.amcee.tools.bench_block import _block_run
    from gnuradio.amcee.timing import host_info, paired_ratio_median, paired_ratio_spread, time_interleaved_samples

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = load_dataset(args.data)
    idx = split_indices(ds, "test", seed=args.split_seed)
    frames, labels, snrs = ds.frames[idx], ds.labels[idx], ds.snrs[idx]
    prune_reports = [json.load(open(path)) for path in args.prune_report]

    args.goal_reference = args.goal_reference or args.reference_name
    networks = [(args.reference_name, "backbone", args.reference)]
    networks += [(name, "backbone", path) for name, path in named_paths(parser, "--backbone", args.backbone)]
    for prune_report in prune_reports:
        k = prune_report["analysis"]["chosen"]["segments"]
        networks += [(f"pruned K={k}: {name}", "backbone", run["checkpoint"])
                     for name, run in prune_report["runs"].items()]
    networks += [(name, "early exit", path) for name, path in named_paths(parser, "--early-exit", args.early_exit)]

    if args.goal_reference not in [name for name, _, _ in networks]:
        parser.error(f"--goal-reference {args.goal_reference!r} names no network of the report")
    folder = tempfile.mkdtemp(prefix="pruning-report-")
    rows, runners, engines, model_paths = [], {}, {}, {}
    for name, kind, path in tqdm(networks, desc="networks", unit="network"):
        model_path = path if torch_file_kind(path) == "torchscript" else model_file_for_timing(path, folder)
        engine = EarlyExitEngine(model_path, max_batch=args.batch)
        engines[name], model_paths[name] = engine, model_path
        row = {"name": name, "kind": kind, "path": os.path.abspath(path), "batch": engine.max_batch,
               **network_facts(engine.meta["config"])}
        if torch_file_kind(path) == "torchscript":
            row["train_seconds"] = (engine.meta.get("training") or {}).get("train_seconds")
            run_checkpoint = os.path.join(os.path.dirname(path), "best.pt")
            if row["train_seconds"] is None and os.path.isfile(run_checkpoint):  # exported by amcee export
                from gnuradio.amcee.network.checkpoint import load_checkpoint

                row["train_seconds"] = load_checkpoint(run_checkpoint)[1].get("train_seconds")
        else:
            from gnuradio.amcee.network.checkpoint import load_checkpoint

            row["train_seconds"] = load_checkpoint(path)[1].get("train_seconds")
        if kind == "backbone":  # its early-exit heads (the timing file's, or a model file's) never run
            row["parameters"] = row["backbone_parameters"]
            row["exits"] = ["final"]
        if kind == "backbone":
            if torch_file_kind(path) == "torchscript":
                probs, _ = engine.backbone_probs(frames)
            else:  # the checkpoint's own weights (the timing file's are the same backbone)
                from gnuradio.amcee.network.checkpoint import load_checkpoint
                from gnuradio.amcee.training.prune import accuracy_figures

                model, _ = load_checkpoint(path)
                probs = None
                figures = accuracy_figures(model, ds, idx)
                row.update(accuracy=figures["accuracy"], accuracy_high_snr=figures["accuracy_high_snr"],
                           per_class_high_snr=figures["accuracy_high_snr_per_class"])
            if probs is not None:
                row.update(accuracy(probs.argmax(1), labels, snrs, ds.classes))
            runners[name] = lambda f, e=engine: e.backbone_probs(f)
        else:
            result = engine.classify(frames)
            row.update(accuracy(result.probs.argmax(1), labels, snrs, ds.classes))
            shares = np.bincount(result.exits, minlength=engine.num_exits) / len(result.exits)
            row["exit_shares"] = shares.tolist()
            row["macs_per_frame"] = float(np.dot(shares, row["exit_macs"]))
            row["model_version"] = engine.meta.get("model_version")
            runners[name] = lambda f, e=engine: e.classify(f)
        rows.append(row)

    speed = {}
    for snr in tqdm(args.snrs, desc="timing", unit="SNR"):
        subset = frames[np.abs(snrs - snr) < 1e-6]
        if not len(subset):
            raise SystemExit(f"no test frames at {snr:g} dB in {args.data}")
        candidates = {("engine", name): (lambda r=r: r(subset)) for name, r in runners.items()}
        flowgraphs = []  # kept alive until timed
        for name, kind, _ in networks:  # as a flowgraph runs it: tags and a message per frame, consumed
            run, objects = _block_run(model_paths[name], to_complex(subset), args.threads,
                                      dict(threshold=0.0, give_up=float("inf")) if kind == "backbone" else {})
            candidates[("block", name)] = run
            flowgraphs.append(objects)
        samples = time_interleaved_samples(candidates, args.repeats)
        speed[snr] = {}
        for where in ("engine", "block"):
            reference = samples[(where, args.goal_reference)]
            speed[snr][where] = {name: {"frames": int(len(subset)), "fps": len(subset) / statistics.median(s),
                                        "speedup": paired_ratio_median(reference, s),
                                        "speedup_quartiles": paired_ratio_spread(reference, s)}
                                 for (w, name), s in samples.items() if w == where}
        del flowgraphs
    for row in rows:
        row["speed"] = {f"{snr:g}": speed[snr]["engine"][row["name"]] for snr in args.snrs}
        row["block_speed"] = {f"{snr:g}": speed[snr]["block"][row["name"]] for snr in args.snrs}
        if row["kind"] == "early exit":
            engine = engines[row["name"]]
            row["exit_shares_per_snr"] = {}
            for snr in args.snrs:
                exits = engine.classify(frames[np.abs(snrs - snr) < 1e-6]).exits
                row["exit_shares_per_snr"][f"{snr:g}"] = (np.bincount(exits, minlength=engine.num_exits)
                                                          / len(exits)).tolist()
    # Where an exit pays: each part of the paper backbone and of each method's pruned backbone, timed
    # here (the figures an amcee prune run stores were taken beside its training).
    from gnuradio.amcee.network.architecture import LAYER_NAMES, PAPER_STEM_CHANNELS
    from gnuradio.amcee.training.prune import TIMING_BATCH, layer_times, normalised

    batch = normalised(frames[:TIMING_BATCH])
    layer_sets = [("paper backbone", LAYER_NAMES, PAPER_STEM_CHANNELS)]
    layer_sets += [(f"K={r['analysis']['chosen']['segments']} pruned backbone", tuple(r["analysis"]["chosen"]["layers"]),
                    PAPER_STEM_CHANNELS) for r in prune_reports]
    stems = sorted({s for s in (row.get("stem_channels") for row in rows) if s and s != PAPER_STEM_CHANNELS})
    layer_sets += [(f"paper backbone with a {s}-channel stem", LAYER_NAMES, s) for s in stems]
    timed = [(label, layer_times(layers, batch, 30, stem_channels=stem))
             for label, layers, stem in tqdm(layer_sets, desc="layer times")]
    report = {"data": os.path.abspath(args.data), "test_frames": int(len(idx)), "threads": args.threads,
              "goal_reference": args.goal_reference,
              "layer_times": timed,
              "batch": args.batch, "repeats": args.repeats, "host": host_info(),
              "prune_reports": [os.path.abspath(path) for path in args.prune_report],
              "prune": [prune_summary(r) for r in prune_reports],
              "networks": rows, "seconds": round(time.perf_counter() - t0, 1),
              "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}
    json_path = os.path.splitext(args.out)[0] + ".json"
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1)
    with open(args.out, "w") as f:
        f.write(markdown(report, ds.classes))
    print(f"wrote {args.out} and {json_path} in {report['seconds']:.0f} s")


def prune_summary(prune_report):
    a = prune_report["analysis"]
    return {"similarity": a["similarity"], "score": a["score"], "layers": a["layers"], "matrix": a["matrix"],
            "scores": a["scores"], "chosen": a["chosen"], "candidates": a["candidates"],
            "config": prune_report["config"],
            "source_layer_times": prune_report["source_network"].get("layer_times"),
            "runs": {name: {k: r.get(k) for k in ("layers", "dropped", "fresh", "epochs", "train_seconds",
                                                  "layer_times")}
                     for name, r in prune_report["runs"].items()}}


INTRO = """\
How the pruned networks are made (`amcee prune`, `python/amcee/training/prune.py` and
`network/layer_pruning.py`): the outputs of the six conv blocks on 1,000 training frames are
compared pairwise (linear CKA; `--similarity cosine` compares the frames' cosine-similarity
matrices instead); the prunable blocks conv2-conv6 are split into K consecutive segments of alike
blocks by Fisher's optimal segmentation (dynamic programming, within-segment cost the sum of
1 - similarity over its pairs divided by its size); the best-scoring block of each segment is kept
(SynFlow, or `--score gradnorm`).  conv1 is the stem and always kept: it is the one block that
reads I and Q, and the inference graph convolves the frames first; the pools stay (they set the
lengths every head is sized for).  Where a dropped block changed the width, the next kept conv
takes the width that reaches it as its in-channels and keeps its own out-channels (the classifier
flattens whatever arrives): no 1x1 projection, which would add a memory-bound layer to a network
made shorter for speed; only that conv's weights (and the classifier's first layer if the last
width changed) start afresh, every other kept layer keeps its trained weights.  Each pruned
network is fine-tuned with `amcee train`'s loop (`training/train.py`, optionally distilling the
unpruned network's final exit).  The baselines drop layers in their own order (from the end:
keep the first k; at random per seed; the globally lowest-scoring first) until their MACs fit the
method's, and are fine-tuned the same way.  A note on SynFlow at the level of layers: in a network
whose every parameter is made positive and fed all ones, the sum of theta x dR/dtheta over one
layer's weights is nearly the same for every layer (SynFlow's layer-wise conservation: with no
biases it would be exactly R for each); the biases make later layers score slightly higher, so
summed per layer the score keeps the last block of each segment (the scores row below: the six
agree to within a few hundredths of a percent and rise with depth).  Layers come whole, so a
baseline's MACs can fall below the method's budget: every table gives each network's MACs.  Early exits are added to the pruned backbone with
`amcee train --init-from` and calibrated with `amcee calibrate`.  Beside layer pruning, a narrower
stem (`amcee train --stem-channels`, `conv1(16)` in the tables): conv1 reads patches of 2 channels x 3
taps, six numbers, with 64 filters in the paper; its output, the pool after it and the V0 head that
reads it run memory-bound, so a frame that leaves at V0 pays mostly for the stem's width, and conv2
reads the narrower output too.  Those networks are trained from scratch with the paper backbone's
recipe (5 epochs, batch 500, Adam lr 3e-3 with warm-up and cosine decay, one thread), joint with a
conv exit head at V0 and self-distillation, then calibrated like the others.  The longer runs: the
paper backbone and the 16-channel stem with exits at V0 and V1 trained 20 epochs the same way, then
10 more each at lr 1e-3 (cosine, no warm-up), the stem's final exit also distilling the 20-epoch
paper backbone (`amcee train --teacher`, weight 1); "no loss at >= 10 dB": calibrated with
`amcee calibrate --max-loss-high-snr 0` besides the 0.4 pp budget over all SNRs.  The goals are
measured against the 30-epoch paper backbone.\
"""


def _pct(x):
    return f"{100 * x:.2f}"


def markdown(report, classes):
    snrs = list(report["networks"][0]["speed"])
    p = report["prune"]
    out = ["# Layer pruning and early exit", "",
           f"Generated by `{report['command']}` ({report['seconds']:.0f} s). Test split of "
           f"`{os.path.basename(report['data'])}` ({report['test_frames']:,} frames); engine frames/s per SNR "
           f"subset, {report['threads']} torch thread(s), "
           + (f"batch {report['batch']}" if report['batch'] else
              "each network at its own default batch (" + ", ".join(sorted({f"{n['batch']}" for n in report['networks']}, key=int))
              + " frames per call)")
           + f", {report['repeats']} "
           f"interleaved repeats; speed-up = median of the per-round ratios against the {report['goal_reference']}. "
           f"Host: {report['host'].get('cpu', report['host'])}.", "",
           INTRO, "", "## Networks", "",
           f"Accuracy in %; fps = engine frames/s (speed-up over the {report['goal_reference']}); MACs/frame: at the "
           "early-exit operating point over the test split; batch: frames per network call of its engine "
           "(and block); training: wall time of the run that made the "
           "network (the pruned ones: their fine-tuning only; the early-exit model: its own run, after "
           "its backbone's pruning and fine-tuning).", "",
           "| network | layers (exits) | parameters | backbone MACs | MACs/frame | accuracy | >= 10 dB | "
           + " | ".join(f"fps {s} dB (x)" for s in snrs) + " | batch | training |",
           "|---|---|---|---|---|---|---|" + "---|" * len(snrs) + "---|---|"]
    for r in report["networks"]:
        layers = " ".join(r["layers"]) + (f" (exits {', '.join(r['exits'][:-1])})" if r["kind"] == "early exit"
                                          else "")
        per_frame = f"{r['macs_per_frame']:,.0f}" if "macs_per_frame" in r else ""
        speeds = " | ".join(f"{r['speed'][s]['fps']:,.0f} ({r['speed'][s]['speedup']:.2f})" for s in snrs)
        trained = f"{r['train_seconds'] / 60:.1f} min" if r.get("train_seconds") else ""
        out.append(f"| {r['name']} | {layers} | {r['parameters']:,} | {r['backbone_macs']:,} | {per_frame} | "
                   f"{_pct(r['accuracy'])} | {_pct(r['accuracy_high_snr'])} | {speeds} | {r.get('batch', '')} | {trained} |")
    out += ["", "## In the block", "",
            "The same frames through `amcee.classifier` in a flowgraph as users run it (`vector_source -> "
            "classifier -> null_sink`, Stream Tags on, the `classification` port to a `classification_sink`; "
            "the backbones with threshold 0), timed in the same interleaved rounds as the engines; "
            f"frames/s (speed-up over the {report['goal_reference']} in the block).", "",
            "| network | " + " | ".join(f"block fps {s} dB (x)" for s in snrs) + " |",
            "|---|" + "---|" * len(snrs)]
    for r in report["networks"]:
        out.append(f"| {r['name']} | " + " | ".join(
            f"{r['block_speed'][s]['fps']:,.0f} ({r['block_speed'][s]['speedup']:.2f})" for s in snrs) + " |")
    out += ["", "## Accuracy per class at >= 10 dB (%)", "",
            "| network | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for r in report["networks"]:
        out.append(f"| {r['name']} | " + " | ".join(_pct(r["per_class_high_snr"].get(str(c), float("nan")))
                                                    for c in classes) + " |")
    by_name = {r["name"]: r for r in report["networks"]}
    for p in report["prune"]:
        k = p["chosen"]["segments"]
        method = by_name.get(f"pruned K={k}: segments")
        baselines = [by_name[f"pruned K={k}: {name}"] for name in p["runs"] if name != "segments"]
        if not method or not baselines:
            continue
        out += ["", f"## The segment-wise method against the baselines (K = {k})", "",
                "Each baseline dropped layers in its own order until its MACs fit the method's (layers come "
                "whole, so its MACs can fall below); accuracy on the test split, all SNRs / >= 10 dB:", ""]
        for b in baselines:
            verdict = ("the method is at least as accurate" if method["accuracy"] >= b["accuracy"]
                       else "**the baseline is more accurate**")
            out.append(f"- {b['name'].split(': ', 1)[1]}: {b['backbone_macs'] / method['backbone_macs']:.2f}x the "
                       f"method's MACs, {_pct(b['accuracy'])} / {_pct(b['accuracy_high_snr'])} against "
                       f"{_pct(method['accuracy'])} / {_pct(method['accuracy_high_snr'])}: {verdict}.")
    early = [r for r in report["networks"] if r["kind"] == "early exit"]
    reference = by_name[report["goal_reference"]]
    if early:
        out += ["", f"## Against the goals (each network against the {reference['name']}, this run)", "",
                "Goals of the shipped model: accuracy over all SNRs at most 0.5 pp lower, at >= 10 dB not "
                "lower; >= 3x the engine frames/s at 20 dB and >= 1.0x at -20 dB, >= 2.7x in the block at "
                "20 dB (frames/s ratios of the same run); WBFM at >= 10 dB at least 73 %.", "",
                "| network | accuracy, all SNRs (pp) | >= 10 dB (pp) | engine 20 dB (quartiles) | "
                "engine -20 dB (quartiles) | block 20 dB (quartiles) | WBFM >= 10 dB | goals met |",
                "|---|---|---|---|---|---|---|---|"]
        wbfm = "WBFM" if "WBFM" in classes else None
        for r in [n for n in report["networks"] if n is not reference]:
            d_all = 100 * (r["accuracy"] - reference["accuracy"])
            d_high = 100 * (r["accuracy_high_snr"] - reference["accuracy_high_snr"])
            met = [d_all >= -0.5, d_high >= 0]
            cells = []
            for speed, goal in ((r["speed"].get("20"), 3.0), (r["speed"].get("-20"), 1.0),
                                (r["block_speed"].get("20"), 2.7)):
                if speed:
                    q = speed["speedup_quartiles"]
                    cells.append(f"{speed['speedup']:.2f}x ({q[0]:.2f}-{q[1]:.2f})")
                    met.append(speed["speedup"] >= goal)
                else:
                    cells.append("not timed")
            if wbfm is not None:
                cells.append(_pct(r["per_class_high_snr"].get(wbfm, float("nan"))))
                met.append(r["per_class_high_snr"].get(wbfm, 0.0) >= 0.73)
            else:
                cells.append("")
            out.append(f"| {r['name']} | {d_all:+.2f} | {d_high:+.2f} | " + " | ".join(cells)
                       + f" | {sum(met)} of {len(met)} |")
        out += ["", "## Early-exit models: exit shares per SNR", ""]
        for r in early:
            shares = "; ".join(f"{s} dB: " + "/".join(f"{100 * v:.0f}" for v in r["exit_shares_per_snr"][s])
                               for s in snrs)
            out.append(f"- {r['name']} (`{r.get('model_version')}`, exits {', '.join(r['exits'])}): {shares} %")
    for i, p in enumerate(report["prune"]):
        out += ["", f"## Pruning run {i + 1}: K = {p['chosen']['segments']}", "",
                f"Similarity {p['similarity']} between the conv blocks' outputs, score {p['score']}, "
                f"{p['chosen']['segments']} segments: "
                + " / ".join(",".join(s) for s in p["chosen"]["segment_layers"])
                + f"; kept {', '.join(p['chosen']['kept'])} ({p['chosen']['macs_fraction']:.3f} of the MACs). "
                f"Fine-tuning of each network: {p['config']['epochs']} epoch(s) on "
                f"{p['config']['train_fraction']:g} of the training split, lr {p['config']['lr']:g} "
                f"{p['config']['schedule']}, distillation weight {p['config']['distill']:g}.", ""]
        if i == 0:
            out += ["Every K (before fine-tuning; time: the exported backbone timed interleaved with the "
                    "paper's, one batch of 256, one thread):", "",
                    "| K | segments | kept | MACs (fraction) | time (fraction) |", "|---|---|---|---|---|"]
            for c in p["candidates"]:
                out.append(f"| {c['segments']} | {' / '.join(','.join(s) for s in c['segment_layers'])} | "
                           f"{', '.join(c['kept'])} | {c['macs']:,} ({c['macs_fraction']:.3f}) | "
                           + (f"{c['time_fraction']:.3f}" if "time_fraction" in c else "") + " |")
            out += ["", "Similarity between the conv blocks (rows/columns) and the layer scores:", "",
                    "| layer | " + " | ".join(p["layers"]) + " |", "|---|" + "---|" * len(p["layers"])]
            for name, row in zip(p["layers"], p["matrix"]):
                out.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
            out.append(f"| {p['score']} | " + " | ".join(f"{p['scores'][n]:.9g}" for n in p["layers"]) + " |")
        out += ["", "| run | layers kept | dropped | weights started afresh | fine-tune |", "|---|---|---|---|---|"]
        for name, r in p["runs"].items():
            out.append(f"| {name} | {' '.join(r['layers'])} | {', '.join(r['dropped'])} | "
                       f"{', '.join(sorted({k.split('.')[0] for k in r['fresh']})) or '-'} | "
                       f"{r['epochs']} epochs, {r['train_seconds']:.0f} s |")
    timed = report.get("layer_times", [])
    if timed:
        out += ["", "## Where an exit pays", "",
                f"Measured time of each part (ms per batch of {timed[0][1]['batch']}, one thread, "
                "`training/time_costs.measure_block_times` on the exported graph), of a "
                f"`{timed[0][1]['exit_head']}` exit head after it, and the share of the frames reaching "
                "that exit that must leave there for the head to save more than it costs "
                "(`time_costs.break_even_shares`):", ""]
        for label, t in timed:
            label = f"the {label}"
            parts = ", ".join(f"{part} {1e3 * sec:.2f}" + (f" (head {1e3 * h:.2f}, break-even {b:.2f})" if b is not None
                                                           else f" (classifier {1e3 * h:.2f})")
                              for part, sec, h, b in zip(t["parts"], t["segment_seconds"],
                                                         t["head_seconds"] + [t["classifier_seconds"]],
                                                         (t.get("break_even_shares")
                                                          or [float("nan")] * len(t["head_seconds"])) + [None]))
            out.append(f"- {label}: {parts}; backbone {1e3 * t['backbone_seconds']:.2f} ms")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
