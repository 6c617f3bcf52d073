"""Layer pruning of a trained network (``amcee prune``): the segment-wise
method of Lu et al. (network.layer_pruning), its baselines at equal MACs,
fine-tuning with this package's training loop (training.train, the
unpruned network as an optional teacher), and a report.

The pruned network is a checkpoint like any other (its ModelConfig names
the kept layers): ``amcee train --init-from`` adds early exits to it and
``amcee export`` writes a model file of it.
"""
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

import numpy as np
import torch

from ..atomic import FileExistsRefusal, atomic_open, atomic_path
from ..data.dataset import split_indices
from ..data.files import load_dataset
from ..frames import l1_normalize_frames
from ..network.architecture import LAYER_NAMES, PAPER_STEM_CHANNELS, PRUNABLE_LAYERS, EarlyExitNet, ModelConfig
from ..network.checkpoint import load_checkpoint, load_network, save_checkpoint, transfer_weights
from ..network.compute_costs import count_parameters, exit_costs
from ..network.layer_pruning import (SCORES, SIMILARITIES, backbone_macs, baseline_orders, conv_block_outputs,
                                     drop_until, fisher_segments, gradnorm_scores, kept_layers,
                                     segment_choice, similarity_matrix, synflow_scores)
from ..network.model_code import script_for_export
from ..timing import paired_ratio_median, time_interleaved_samples
from .evaluate import HIGH_SNR_DB
from .time_costs import TIMING_BATCH, break_even_shares, measure_block_times
from .train import TrainConfig, train

#: Name of the segment-wise method's run in the output folder.
METHOD = "segments"


@dataclass
class PruneConfig:
    """Every setting of an ``amcee prune`` run (stored in its report)."""

    source: str                      # training checkpoint of the network to prune
    data: str
    out_dir: str
    segments: Optional[int] = None   # K; None: from macs
    macs: Optional[float] = None     # target fraction of the source backbone's MACs (largest K that fits)
    similarity: str = "cka"          # layer_pruning.SIMILARITIES
    score: str = "synflow"           # layer_pruning.SCORES
    per_segment: int = 1             # layers kept per segment
    sample_frames: int = 1000        # frames of the training split whose representations are compared
    baselines: bool = False
    random_seeds: Tuple[int, ...] = (0, 1, 2)
    epochs: int = 3                  # fine-tuning of each pruned network
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.3
    batch_size: int = 500
    train_fraction: float = 1.0
    distill: float = 0.0             # weight of distillation from the source's final exit; 0 = none
    threads: int = 0
    seed: int = 0
    split_seed: int = 0
    timing_repeats: int = 20         # measured layer times (0 = skip)
    analysis_only: bool = False      # similarity, segments, scores and times only: no fine-tuning
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.random_seeds = tuple(int(s) for s in self.random_seeds)
        if (self.segments is None) == (self.macs is None):
            raise ValueError("give exactly one of --segments K and --macs FRACTION")
        if self.segments is not None and not 1 <= self.segments <= len(PRUNABLE_LAYERS):
            raise ValueError(f"--segments must be 1 to {len(PRUNABLE_LAYERS)} (the prunable layers "
                             f"{', '.join(PRUNABLE_LAYERS)}), got {self.segments}")
        if self.macs is not None and not 0 < self.macs <= 1:
            raise ValueError(f"--macs must be a fraction in (0, 1], got {self.macs}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; use one of {', '.join(SIMILARITIES)}")
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; use one of {', '.join(SCORES)}")
        if self.per_segment < 1 or self.sample_frames < 10 or self.epochs < 1:
            raise ValueError("per_segment and epochs must be >= 1 and sample_frames >= 10")
        if self.distill < 0:
            raise ValueError(f"distill must be >= 0, got {self.distill}")


# ------------------------------------------------------------------- inputs
def load_source(path):
    """(network, class names) of the network to prune: a training checkpoint,
    or a model file rebuilt as a network (checkpoint.network_from_model_file)."""
    model, classes = load_network(path)
    if model.config.pruned:
        raise ValueError(f"{path} is already pruned (layers {', '.join(model.config.layers)}): "
                         "prune the unpruned network")
    return model, classes


def normalised(frames):
    return torch.from_numpy(l1_normalize_frames(frames))


# ----------------------------------------------------------------- analysis
def analyse(model, ds, train_idx, config):
    """Similarity matrix, segments (of the prunable layers), scores and the
    layers the method keeps; the MAC budget it sets for the baselines."""
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(train_idx, min(config.sample_frames, len(train_idx)), replace=False))
    frames = normalised(ds.frames[sample])
    outputs = conv_block_outputs(model, frames)
    names, matrix = similarity_matrix(outputs, config.similarity)
    if config.score == "synflow":
        scores = synflow_scores(model)
    else:
        scores = gradnorm_scores(model, frames, torch.from_numpy(ds.labels[sample]))
    first = names.index(PRUNABLE_LAYERS[0])
    prunable = names[first:]
    sub = matrix[first:, first:]
    frame_len, classes, stem = model.config.frame_len, model.config.num_classes, model.config.stem_channels

    def macs_of(layers):
        return backbone_macs(layers, classes, frame_len, stem)

    source_macs = macs_of(LAYER_NAMES)
    candidates = []
    for k in range(1, len(prunable) + 1):
        segments = fisher_segments(sub, k)
        keep = segment_choice(segments, prunable, scores, config.per_segment)
        layers = kept_layers([n for n in prunable if n not in keep])
        candidates.append({"segments": k, "segment_layers": [prunable[a:b + 1] for a, b in segments],
                           "kept": list(keep), "layers": list(layers),
                           "macs": macs_of(layers), "macs_fraction": macs_of(layers) / source_macs})
    if config.segments is not None:
        chosen = candidates[config.segments - 1]
    else:
        fitting = [c for c in candidates if c["macs_fraction"] <= config.macs + 1e-9]
        if not fitting:
            raise ValueError(f"no segmentation fits {config.macs:.3f} of the MACs: the fewest "
                             f"({candidates[0]['macs_fraction']:.3f}) keep one layer")
        chosen = fitting[-1]
    return {"sample_frames": int(len(sample)), "similarity": config.similarity, "score": config.score,
            "layers": names, "matrix": matrix.tolist(), "scores": scores, "source_macs": source_macs,
            "candidates": candidates, "chosen": chosen}, macs_of


def plan_runs(analysis, macs_of, config):
    """{run name: kept backbone layers}: the method's, and the baselines
    pruned in their own order until their MACs fit the method's."""
    runs = {METHOD: tuple(analysis["chosen"]["layers"])}
    if config.baselines:
        budget = analysis["chosen"]["macs"]
        for name, order in baseline_orders(analysis["scores"], config.random_seeds).items():
            runs[name] = kept_layers(drop_until(order, budget, lambda dropped: macs_of(kept_layers(dropped))))
    return runs


# ---------------------------------------------------------------- fine-tune
def pruned_network(source, layers):
    """A network of ``layers`` (no early exit) with every weight of
    ``source`` that still fits; returns (network, keys that start afresh)."""
    config = ModelConfig(exits=(), num_classes=source.config.num_classes, frame_len=source.config.frame_len,
                         dropout=source.config.dropout, layers=layers, stem_channels=source.config.stem_channels)
    net = EarlyExitNet(config)
    fresh = transfer_weights(source, net, reshaped=True)
    return net, fresh


def fine_tune(source, source_path, layers, name, classes, config):
    """Fine-tune the pruned network ``layers`` in out_dir/name with
    training.train (``source_path``: the source's checkpoint or model file, the
    teacher when distilling); returns (its best checkpoint, train summary, fresh keys)."""
    net, fresh = pruned_network(source, layers)
    init = os.path.join(config.out_dir, "init", f"{name}.pt")
    save_checkpoint(init, net, classes, pruned_from=os.path.abspath(source_path))
    run = TrainConfig(data=config.data, out_dir=os.path.join(config.out_dir, name), exits=(), scheme="joint",
                      init_from=init, layers=tuple(layers), epochs=config.epochs, lr=config.lr,
                      schedule=config.schedule, warmup_epochs=config.warmup_epochs,
                      batch_size=config.batch_size, train_fraction=config.train_fraction,
                      teacher=source_path if config.distill else None, teacher_weight=config.distill,
                      dropout=source.config.dropout, threads=config.threads, seed=config.seed,
                      split_seed=config.split_seed, progress=config.progress,
                      description=f"{name} pruning of {os.path.basename(source_path)}: {' '.join(layers)}")
    summary = train(run)
    return os.path.join(config.out_dir, name, "best.pt"), summary, fresh


# ----------------------------------------------------------------- measure
@torch.no_grad()
def accuracy_figures(model, ds, idx, batch=4096):
    """Accuracy of the network's final exit on frames ``idx``: over all,
    at SNR >= HIGH_SNR_DB, and per class at SNR >= HIGH_SNR_DB."""
    model = model.eval()
    preds = []
    for start in range(0, len(idx), batch):
        x = normalised(ds.frames[idx[start:start + batch]])
        preds.append(model.exit_logits(x)[-1].argmax(1).numpy())
    correct = np.concatenate(preds) == ds.labels[idx]
    high = ds.snrs[idx] >= HIGH_SNR_DB - 1e-6
    per_class = {}
    for c, cls in enumerate(ds.classes):
        rows = high & (ds.labels[idx] == c)
        if rows.any():
            per_class[str(cls)] = float(correct[rows].mean())
    return {"accuracy": float(correct.mean()), "accuracy_high_snr": float(correct[high].mean()) if high.any()
            else float("nan"), "accuracy_high_snr_per_class": per_class, "frames": int(len(idx))}


def cut_points(layers):
    """Layers after which a timing network can place an exit without
    changing the inference graph: every layer but the last that is not a
    conv followed by its pool (the graph fuses those two)."""
    out = []
    for here, after in zip(layers[:-1], layers[1:]):
        if not (here.startswith("conv") and after.startswith("pool")):
            out.append(here)
    return tuple(out)


def layer_times(layers, frames, repeats, num_classes=10, exit_head="conv", stem_channels=PAPER_STEM_CHANNELS):
    """Measured seconds per batch of TIMING_BATCH of every part of the
    backbone made of ``layers`` (time_costs.measure_block_times on the
    exported inference graph, untrained weights: time does not depend on
    them) with an ``exit_head`` head after each part: {part: seconds}, the
    head after each part, and the classifier."""
    cuts = cut_points(layers)
    config = ModelConfig(exits=cuts, num_classes=num_classes, frame_len=frames.shape[2], exit_head=exit_head,
                         layers=layers, stem_channels=stem_channels)
    with torch.random.fork_rng(devices=[]):
        module = script_for_export(EarlyExitNet(config).eval())
    segments, heads, gathers = measure_block_times(module, frames[:TIMING_BATCH], repeats)
    ends = list(cuts) + [layers[-1]]
    parts, start = [], 0
    for end in ends:
        stop = layers.index(end) + 1
        parts.append("+".join(layers[start:stop]))
        start = stop
    return {"batch": int(min(TIMING_BATCH, len(frames))), "threads": torch.get_num_threads(), "parts": parts,
            "segment_seconds": segments, "exit_head": exit_head, "head_seconds": heads[:-1],
            "classifier_seconds": heads[-1], "gather_seconds": gathers[:-1],
            "backbone_seconds": float(sum(segments) + heads[-1]),
            # Where an exit pays: the share of frames that must leave there for
            # its head to save more time than it costs.
            "break_even_shares": break_even_shares(segments, heads, gathers)}


def backbone_time_fractions(layer_sets, frames, repeats, num_classes=10, stem_channels=PAPER_STEM_CHANNELS):
    """[(seconds per batch, fraction of the paper backbone's time)] of the
    exported backbone of each of ``layer_sets`` on ``frames`` (one batch),
    timed interleaved with the paper backbone: the fraction is the median of
    the per-round ratios (timing.paired_ratio_median), so that a machine
    that slows down for a while slows both sides alike."""
    modules = {}
    with torch.random.fork_rng(devices=[]):
        for key, layers in [("paper", LAYER_NAMES)] + list(enumerate(layer_sets)):
            config = ModelConfig(exits=(), num_classes=num_classes, frame_len=frames.shape[2], layers=layers,
                                 stem_channels=stem_channels)
            modules[key] = script_for_export(EarlyExitNet(config).eval())
    batch = frames[:TIMING_BATCH]
    with torch.inference_mode():
        samples = time_interleaved_samples({key: (lambda m=m: m.backbone(batch)) for key, m in modules.items()},
                                           repeats, warmup=3)
    return [(float(np.median(samples[i])), paired_ratio_median(samples[i], samples["paper"]))
            for i in range(len(layer_sets))]


def network_figures(model):
    costs, backbone = exit_costs(model)
    return {"layers": list(model.config.layers), "parameters": count_parameters(model), "backbone_macs": backbone,
            "exit_macs": costs}


# --------------------------------------------------------------------- run
def refuse_earlier_prune(out_dir):
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsRefusal(f"--out {out_dir} already holds files (an earlier prune?): give an empty "
                                "or new folder")


def prune(config: PruneConfig):
    """Run the method (and the baselines), fine-tune each, write report.json,
    report.md and similarity.png into out_dir; returns the report."""
    refuse_earlier_prune(config.out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    t0 = time.perf_counter()
    source, classes = load_source(config.source)
    ds = load_dataset(config.data)
    if list(classes) != list(ds.classes) or source.config.frame_len != ds.frame_length:
        raise ValueError(f"{config.source} classifies {len(classes)} classes of {source.config.frame_len}-sample "
                         f"frames, {config.data} has {len(ds.classes)} classes of {ds.frame_length}: prune on "
                         "the data the network was trained on")
    train_idx = split_indices(ds, "train", seed=config.split_seed)
    test_idx = split_indices(ds, "test", seed=config.split_seed)
    os.makedirs(os.path.join(config.out_dir, "init"), exist_ok=True)
    analysis, macs_of = analyse(source, ds, train_idx, config)
    runs = plan_runs(analysis, macs_of, config)
    report = {"config": asdict(config), "source": os.path.abspath(config.source), "analysis": analysis,
              "runs": {}, "classes": list(ds.classes)}
    source_entry = dict(network_figures(source), **accuracy_figures(source, ds, test_idx))
    report["source_network"] = source_entry
    timing_frames = normalised(ds.frames[test_idx[:TIMING_BATCH]])
    if config.timing_repeats:
        stem = source.config.stem_channels
        report["source_network"]["layer_times"] = layer_times(LAYER_NAMES, timing_frames, config.timing_repeats,
                                                              source.config.num_classes, stem_channels=stem)
        # What each K would cost in time, before any training.
        fractions = backbone_time_fractions([tuple(c["layers"]) for c in analysis["candidates"]], timing_frames,
                                            config.timing_repeats, source.config.num_classes, stem)
        for candidate, (seconds, fraction) in zip(analysis["candidates"], fractions):
            candidate["backbone_seconds"], candidate["time_fraction"] = seconds, fraction
    from tqdm import tqdm

    if config.analysis_only:
        runs = {}
    for name, layers in tqdm(list(runs.items()), desc="fine-tune", unit="network", disable=not config.progress):
        best, summary, fresh = fine_tune(source, config.source, layers, name, ds.classes, config)
        model, _ = load_checkpoint(best)
        entry = dict(network_figures(model), checkpoint=os.path.abspath(best), fresh=fresh,
                     train_seconds=summary["train_seconds"], epochs=summary["epochs_run"],
                     dropped=[n for n in PRUNABLE_LAYERS if n not in layers],
                     macs_fraction=macs_of(layers) / analysis["source_macs"], **accuracy_figures(model, ds, test_idx))
        if config.timing_repeats:
            entry["layer_times"] = layer_times(tuple(layers), timing_frames, config.timing_repeats,
                                               source.config.num_classes, stem_channels=source.config.stem_channels)
        report["runs"][name] = entry
        _write(report, config)  # each finished network is on disk at once
    report["seconds"] = round(time.perf_counter() - t0, 1)
    _write(report, config)
    return report


def _write(report, config):
    with atomic_open(os.path.join(config.out_dir, "report.json")) as f:
        json.dump(report, f, indent=1)
    similarity_figure(report["analysis"], os.path.join(config.out_dir, "similarity.png"))
    with atomic_open(os.path.join(config.out_dir, "report.md")) as f:
        f.write(report_markdown(report))


# ------------------------------------------------------------------- report
def similarity_figure(analysis, path):
    """The layer-by-layer similarity matrix, the chosen segments outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names, matrix = analysis["layers"], np.asarray(analysis["matrix"])
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] < 0.6 else "black")
    for segment in analysis["chosen"]["segment_layers"]:
        a, b = names.index(segment[0]), names.index(segment[-1])
        ax.add_patch(Rectangle((a - 0.5, a - 0.5), b - a + 1, b - a + 1, fill=False, edgecolor="red", lw=2))
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    kept = ", ".join(analysis["chosen"]["kept"])
    ax.set_title(f"{analysis['similarity'].upper()} between conv blocks\n"
                 f"{analysis['chosen']['segments']} segments (red), kept: {kept}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.2f} %"


def report_markdown(report):
    a = report["analysis"]
    lines = ["# Layer pruning report", "",
             f"Source: `{report['source']}`; data `{report['config']['data']}`; similarity "
             f"{a['similarity']} on {a['sample_frames']} training frames; score {a['score']}.", "",
             "![similarity](similarity.png)", "", "## Scores", "",
             "| layer | " + " | ".join(a["scores"]) + " |", "|---|" + "---|" * len(a["scores"]),
             f"| {a['score']} | " + " | ".join(f"{v:.9g}" for v in a["scores"].values()) + " |", "",
             "## Segmentations (Fisher, over the prunable layers)", "",
             "| K | segments | kept | MACs (fraction) | measured time (fraction) |", "|---|---|---|---|---|"]
    for c in a["candidates"]:
        mark = " **(chosen)**" if c["segments"] == a["chosen"]["segments"] else ""
        segs = " / ".join(",".join(s) for s in c["segment_layers"])
        time_text = (f"{1e3 * c['backbone_seconds']:.2f} ms ({c['time_fraction']:.3f})"
                     if "backbone_seconds" in c else "")
        lines.append(f"| {c['segments']}{mark} | {segs} | {', '.join(c['kept'])} | "
                     f"{c['macs']:,} ({c['macs_fraction']:.3f}) | {time_text} |")
    lines += ["", "## Fine-tuned networks (test split)", "",
              "| network | layers | params | MACs | accuracy | >= 10 dB | fine-tune |",
              "|---|---|---|---|---|---|---|"]
    src = report["source_network"]
    lines.append(f"| source | {' '.join(src['layers'])} | {src['parameters']:,} | {src['backbone_macs']:,} | "
                 f"{_pct(src['accuracy'])} | {_pct(src['accuracy_high_snr'])} | |")
    for name, r in report["runs"].items():
        lines.append(f"| {name} | {' '.join(r['layers'])} | {r['parameters']:,} | {r['backbone_macs']:,} "
                     f"({r['macs_fraction']:.3f}) | {_pct(r['accuracy'])} | {_pct(r['accuracy_high_snr'])} | "
                     f"{r['epochs']} epochs, {r['train_seconds']:.0f} s |")
    times = [(name, r["layer_times"]) for name, r in [("source", src)] + list(report["runs"].items())
             if "layer_times" in r]
    if times:
        lines += ["", "## Measured time per part (ms per batch of "
                  f"{times[0][1]['batch']}, {times[0][1]['threads']} thread(s)), with a "
                  f"{times[0][1]['exit_head']} exit head after each part", ""]
        for name, t in times:
            parts = ", ".join(f"{p} {1e3 * s:.2f} (+head {1e3 * h:.2f}{f', break-even share {b:.2f}' if b else ''})"
                              for p, s, h, b in zip(t["parts"], t["segment_seconds"],
                                                    t["head_seconds"] + [t["classifier_seconds"]],
                                                    t["break_even_shares"] + [None]))
            lines.append(f"- {name}: {parts}; backbone {1e3 * t['backbone_seconds']:.2f}")
    if report["runs"]:
        best = report["runs"].get(METHOD)
        if best:
            lines += ["", f"The method's network: `{best['checkpoint']}` (`amcee train --init-from` adds "
                          "early exits to it; `amcee export` writes a model file of a network with exits)."]
    return "\n".join(lines) + "\n"
