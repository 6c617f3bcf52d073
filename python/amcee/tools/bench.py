"""Throughput of the early-exit engine against the backbone alone (``amcee bench``).

The benchmark is a list of named sections, each a function of a shared
:class:`BenchContext` returning a JSON-able dict; ``SECTIONS`` is the registry
(add a section by writing one function and listing it).  Timings are medians of
interleaved repeats, so that CPU contention shared by the compared candidates
hits them alike; a speed-up is the median of the per-round ratios
(paired_ratio_median).
"""
import math
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..data.dataset import DatasetError, labels_for_model, split_indices
from ..data.files import load_dataset
from ..inference.engine import EarlyExitEngine
from ..inference.exit_rule import entropy10
from ..inference.model_file import default_model_path, reference_model_path, thresholds_to_json
from ..inference.snr_table import estimate_snr_db
from ..network.compute_costs import compute_ceiling
from ..timing import host_info, paired_ratio_median, paired_ratio_spread, time_interleaved, time_interleaved_samples
from ..training.evaluate import HIGH_SNR_DB
from ..training.time_costs import measure_exit_time_costs

DEFAULT_BATCH_SIZES = (1, 16, 64, 256, 1024, 4096)


def peak_rss_mib():
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class BenchContext:
    engine: object                  # inference.engine.EarlyExitEngine
    frames: np.ndarray              # float32 [N, 2, L] frames to classify
    snrs: Optional[np.ndarray]      # per-frame SNR (None without a dataset)
    labels: Optional[np.ndarray] = None  # per-frame class in the model's order (None without a dataset)
    repeats: int = 5
    batch_sizes: tuple = DEFAULT_BATCH_SIZES
    loop_frames: int = 300
    block_frames: int = 10000       # frames per subset of the block section
    latency_seconds: float = 10.0   # length of the block section's slow stream
    reference: Optional[str] = None  # model file of the reference section (None: the shipped paper backbone)
    results: dict = field(default_factory=dict)  # sections already run


def _engine_with_batch(ctx, batch):
    """The same engine object, chunking at ``batch`` (cheap: no model reload)."""
    ctx.engine.max_batch = int(batch)
    return ctx.engine


def section_batch_sizes(ctx):
    """Frames/s of the batched early exit vs the backbone alone per batch size."""
    out = []
    saved = ctx.engine.max_batch
    for batch in ctx.batch_sizes:
        n = min(len(ctx.frames), max(batch * 4, 2048))
        frames = ctx.frames[:n]
        engine = _engine_with_batch(ctx, batch)
        samples = time_interleaved_samples({"engine": lambda: engine.classify(frames),
                                            "backbone": lambda: engine.backbone_probs(frames)}, ctx.repeats)
        t = {name: statistics.median(v) for name, v in samples.items()}
        out.append({"batch": int(batch), "frames": int(n),
                    "engine_fps": n / t["engine"], "backbone_fps": n / t["backbone"],
                    "speedup": paired_ratio_median(samples["backbone"], samples["engine"]),
                    "speedup_quartiles": paired_ratio_spread(samples["backbone"], samples["engine"])})
    ctx.engine.max_batch = saved
    return out


def section_per_snr(ctx):
    """Frames/s of both per SNR subset at the engine's max_batch, with exit
    shares and the ceilings they allow by MACs and by measured time
    (training.time_costs); with a model that has an SNR table also the
    SNR-aware rule, each frame given the estimator's SNR (the estimate's own
    time not counted: amcee.snr_estimator's section), in the same run, and
    the accuracy of both."""
    if ctx.snrs is None:
        return {"skipped": "needs --data"}
    snr_aware = ctx.engine.uses_snr_table
    estimated = estimate_snr_db(ctx.frames) if snr_aware else None
    times = measure_exit_time_costs(ctx.engine, ctx.frames)
    meta = ctx.engine.meta
    out = []
    for snr in np.unique(ctx.snrs):
        m = ctx.snrs == snr
        frames = ctx.frames[m]
        candidates = {"engine": lambda: ctx.engine.classify(frames),
                      "backbone": lambda: ctx.engine.backbone_probs(frames)}
        if snr_aware:
            candidates["snr_aware"] = lambda: ctx.engine.classify(frames, snr_db=estimated[m])
        samples = time_interleaved_samples(candidates, ctx.repeats)
        t = {name: statistics.median(v) for name, v in samples.items()}
        plain = ctx.engine.classify(frames)
        row = {"snr": float(snr), "frames": int(len(frames)),
               "engine_fps": len(frames) / t["engine"], "backbone_fps": len(frames) / t["backbone"],
               "speedup": paired_ratio_median(samples["backbone"], samples["engine"]),
               "speedup_quartiles": paired_ratio_spread(samples["backbone"], samples["engine"]),
               "speedup_of_medians": t["backbone"] / t["engine"],
               "exit_shares": _shares(plain.exits, ctx)}
        row["compute_ceiling"] = compute_ceiling(row["exit_shares"], meta["exit_macs"], meta["backbone_macs"])
        row["time_ceiling"] = times.ceiling(row["exit_shares"])
        if ctx.labels is not None:
            row["accuracy"] = float(np.mean(plain.classes == ctx.labels[m]))
        if snr_aware:
            aware = ctx.engine.classify(frames, snr_db=estimated[m])
            row.update({"snr_aware_fps": len(frames) / t["snr_aware"],
                        "snr_aware_speedup": paired_ratio_median(samples["backbone"], samples["snr_aware"]),
                        "snr_aware_speedup_quartiles": paired_ratio_spread(samples["backbone"], samples["snr_aware"]),
                        "snr_aware_over_plain": paired_ratio_median(samples["engine"], samples["snr_aware"]),
                        "snr_aware_exit_shares": _shares(aware.exits, ctx),
                        "estimated_snr_median": float(np.median(estimated[m]))})
            if ctx.labels is not None:
                row["snr_aware_accuracy"] = float(np.mean(aware.classes == ctx.labels[m]))
        out.append(row)
    return out


def _shares(exits, ctx):
    return (np.bincount(exits[exits >= 0], minlength=ctx.engine.num_exits) / max(1, len(exits))).tolist()


def paper_style_loop(module, frames, thresholds):
    """One frame at a time, as the paper's inference code: run a segment and its
    head, exit if the entropy is <= T (with class thresholds, the T of the
    predicted class), else go on (features are reused here; the
    paper's timing path even recomputed the shared layers)."""
    exits = []
    num_blocks = len(thresholds) + 1
    blocks = [getattr(module.blocks, str(k)) for k in range(num_blocks)]
    with torch.inference_mode():
        for i in range(len(frames)):
            x = frames[i:i + 1]
            for k, block in enumerate(blocks):
                x, logits = block(x)
                e = float(entropy10(torch.softmax(logits, 1)))
                if k == num_blocks - 1:
                    exits.append(k)
                    break
                t = thresholds[k]
                if isinstance(t, tuple):  # class thresholds: the predicted class's
                    t = t[int(logits.argmax())]
                if e <= t:
                    exits.append(k)
                    break
    return exits


def section_per_frame_loop(ctx):
    """The paper's per-frame loop vs the backbone frame by frame (reference only)."""
    n = min(ctx.loop_frames, len(ctx.frames))
    x = torch.from_numpy(ctx.engine._prepare(ctx.frames[:n])[0])
    module = ctx.engine.model.module
    thresholds = ctx.engine.thresholds

    def backbone_loop():
        with torch.inference_mode():
            for i in range(len(x)):
                module.backbone(x[i:i + 1])

    t = time_interleaved({"loop": lambda: paper_style_loop(module, x, thresholds),
                          "backbone_loop": backbone_loop}, max(1, min(ctx.repeats, 3)))
    return {"frames": int(n), "loop_fps": n / t["loop"], "backbone_loop_fps": n / t["backbone_loop"],
            "speedup": t["backbone_loop"] / t["loop"]}


def section_block_vs_engine(ctx):
    """The GNU Radio block against the bare engine (imports GNU Radio lazily)."""
    from .bench_block import section_block_vs_engine as run  # GNU Radio only for this section

    return run(ctx)


def _estimator_flowgraph(frames, estimate):
    """Seconds to run ``frames`` (complex64 [N, L]) through a flowgraph of
    vector source -> amcee.snr_estimator -> null sink (without the estimator
    if not ``estimate``)."""
    from gnuradio import blocks, gr

    from ..amcee_python import snr_estimator

    n, frame_len = frames.shape
    tb = gr.top_block()
    chain = [blocks.vector_source_c(frames.ravel().tolist(), False, frame_len)]
    if estimate:
        chain.append(snr_estimator(frame_len))
    tb.connect(*chain, blocks.null_sink(gr.sizeof_gr_complex * frame_len))
    t0 = time.perf_counter()
    tb.run()
    return time.perf_counter() - t0


def section_snr_estimator(ctx):
    """Cost of the per-frame SNR estimate (amcee.estimate_snr_db, the code of
    the amcee.snr_estimator block) against the engine's time per frame on the
    same frames, timed interleaved; and what the block adds to a flowgraph
    (source -> block -> sink against source -> sink: the estimate, the copy,
    the tags and the extra block's scheduling)."""
    from ..frames import to_complex

    frames = np.ascontiguousarray(to_complex(ctx.frames, np.complex64))
    n = len(frames)
    samples = time_interleaved_samples({"estimator": lambda: estimate_snr_db(frames),
                                        "engine": lambda: ctx.engine.classify(ctx.frames)}, ctx.repeats)
    t = {name: statistics.median(v) for name, v in samples.items()}
    out = {"frames": int(n), "frame_len": int(frames.shape[1]),
           "estimator_us_per_frame": t["estimator"] / n * 1e6, "engine_us_per_frame": t["engine"] / n * 1e6,
           "estimator_over_engine": paired_ratio_median(samples["estimator"], samples["engine"]),
           "estimator_over_engine_quartiles": paired_ratio_spread(samples["estimator"], samples["engine"])}
    # block_frames frames (the data's, repeated if fewer): a run of a few
    # thousand frames lasts tens of ms, too short for a difference of two runs.
    block_frames = np.resize(frames, (ctx.block_frames, frames.shape[1]))
    flow = time_interleaved_samples({"with_block": lambda: _estimator_flowgraph(block_frames, True),
                                     "without": lambda: _estimator_flowgraph(block_frames, False)}, ctx.repeats)
    added = np.array([a - b for a, b in zip(flow["with_block"], flow["without"])]) / len(block_frames)
    out.update({"block_frames": int(len(block_frames)),
                "block_added_us_per_frame": float(np.median(added)) * 1e6,
                "block_added_us_per_frame_quartiles": (np.percentile(added, [25, 75]) * 1e6).tolist(),
                "block_added_over_engine": float(np.median(added)) / (t["engine"] / n)})
    return out


def section_reference(ctx):
    """The model against a reference model file, by default the shipped paper
    backbone (inference.model_file.REFERENCE_MODEL_NAME: the paper's network
    without exits, trained like the default model on the same data): accuracy
    over all SNRs and at >= HIGH_SNR_DB, and engine frames/s per SNR subset,
    both engines at their own default batch and timed in the same
    interleaved rounds; the frames only one of the two gets right (paired);
    and the block as users run it with each file, at the
    highest and lowest SNR, one torch thread (bench_block).  The model runs
    with the settings the bench was given (plain per-frame rule: no SNR
    values)."""
    if ctx.snrs is None:
        return {"skipped": "needs --data"}
    path = ctx.reference or reference_model_path()
    reference = EarlyExitEngine(path, device=ctx.engine.device)
    if reference.frame_len != ctx.engine.frame_len:
        problem = (f"the reference {path} takes frames of {reference.frame_len} samples, "
                   f"the model {ctx.engine.frame_len}")
        if ctx.reference is None:  # the shipped reference does not fit this model (e.g. RadioML 2018): no comparison
            return {"skipped": problem + ": give --reference"}
        raise ValueError(problem)
    # Scored by class name: the two files may order (or hold) the classes differently.
    truth = np.array(list(ctx.engine.classes) + [""])[ctx.labels]  # label -1 (a class the model lacks): ""
    model_names = np.array(ctx.engine.classes)[ctx.engine.classify(ctx.frames).classes]
    reference_names = np.array(reference.classes)[reference.classify(ctx.frames).classes]
    scored = ctx.labels >= 0
    high = scored & (ctx.snrs >= HIGH_SNR_DB)

    def accuracy(names, m):
        return float(np.mean(names[m] == truth[m])) if m.any() else None

    model_right, reference_right = model_names == truth, reference_names == truth

    def paired(m):
        """The two on the same frames: the frames only one of them gets right
        decide the difference, and their count its standard error (the
        normal approximation of McNemar's test), so a difference can be told
        from the noise of one test split; per true class, where it comes from."""
        only_model, only_reference = model_right & ~reference_right & m, reference_right & ~model_right & m
        n, a, b = int(m.sum()), int(only_model.sum()), int(only_reference.sum())
        return {"frames": n, "only_model": a, "only_reference": b,
                "difference_pp": 100.0 * (a - b) / n if n else None,
                "standard_error_pp": 100.0 * math.sqrt(a + b) / n if n else None,
                "per_class": {name: [int((only_model & (truth == name)).sum()),
                                     int((only_reference & (truth == name)).sum())]
                              for name in ctx.engine.classes}}

    out = {"reference": os.path.abspath(path), "reference_version": reference.meta.get("model_version"),
           "reference_max_batch": reference.max_batch, "high_snr_db": HIGH_SNR_DB,
           "accuracy": accuracy(model_names, scored), "reference_accuracy": accuracy(reference_names, scored),
           "accuracy_high_snr": accuracy(model_names, high),
           "reference_accuracy_high_snr": accuracy(reference_names, high),
           "paired": {"all": paired(scored), "high_snr": paired(high)}, "per_snr": []}
    for snr in np.unique(ctx.snrs):
        frames = ctx.frames[ctx.snrs == snr]
        samples = time_interleaved_samples({"model": lambda: ctx.engine.classify(frames),
                                            "reference": lambda: reference.classify(frames)}, ctx.repeats)
        t = {name: statistics.median(v) for name, v in samples.items()}
        m = scored & (ctx.snrs == snr)
        out["per_snr"].append({
            "snr": float(snr), "frames": int(len(frames)),
            "model_fps": len(frames) / t["model"], "reference_fps": len(frames) / t["reference"],
            "speedup": paired_ratio_median(samples["reference"], samples["model"]),
            "speedup_quartiles": paired_ratio_spread(samples["reference"], samples["model"]),
            "accuracy": accuracy(model_names, m), "reference_accuracy": accuracy(reference_names, m)})
    from .bench_block import block_against_reference  # GNU Radio only here

    out["block"] = block_against_reference(ctx, reference)
    return out


#: Sections in output order: name -> function(ctx) -> JSON-able result.
SECTIONS = {
    "batch_sizes": section_batch_sizes,
    "per_snr": section_per_snr,
    "per_frame_loop": section_per_frame_loop,
    "block_vs_engine": section_block_vs_engine,
    "snr_estimator": section_snr_estimator,
    "reference": section_reference,
}


def run_bench(model_path=None, data=None, split="test", frames=20000, repeats=5,
              batch_sizes=DEFAULT_BATCH_SIZES, max_batch=None, threads=0, device="cpu",
              thresholds=None, loop_frames=300, sections=None, seed=0, block_frames=10000,
              latency_seconds=10.0, reference=None):
    """Run the chosen ``sections`` (default all) and return one JSON-able dict;
    ``reference``: model file the reference section compares with (None: the
    shipped paper backbone)."""
    model_path = model_path or default_model_path()
    unknown = [s for s in (sections or ()) if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown bench section(s) {unknown}; known: {', '.join(SECTIONS)}")
    if any(int(b) < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    engine = EarlyExitEngine(model_path, thresholds=thresholds, device=device,
                             num_threads=threads, max_batch=max_batch)
    snrs = labels = None
    if data:
        ds = load_dataset(data)
        if ds.frame_length != engine.frame_len:
            raise DatasetError(f"{data} has frames of {ds.frame_length} samples, the model {model_path} takes "
                               f"{engine.frame_len}")
        idx = split_indices(ds, split)
        if frames and len(idx) > frames:  # keep every SNR: an even sample
            idx = np.sort(np.random.default_rng(seed).choice(idx, frames, replace=False))
        x, snrs, labels = ds.frames[idx], ds.snrs[idx], labels_for_model(ds, engine.classes, engine.frame_len)[0][idx]
    else:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((frames or 20000, 2, engine.frame_len)).astype(np.float32)
    ctx = BenchContext(engine=engine, frames=x, snrs=snrs, labels=labels, repeats=repeats,
                       batch_sizes=tuple(batch_sizes), loop_frames=loop_frames,
                       block_frames=int(block_frames), latency_seconds=float(latency_seconds),
                       reference=reference)
    report = {"model": os.path.abspath(model_path), "model_version": engine.meta.get("model_version"),
              "exit_names": list(engine.exit_names), "thresholds": thresholds_to_json(engine.thresholds),
              "snr_table": engine.uses_snr_table,
              "data": data, "frames": int(len(x)), "threads": torch.get_num_threads(),
              "device": str(engine.device), "max_batch": engine.max_batch, "repeats": int(repeats),
              "host": host_info()}
    for name in sections or SECTIONS:
        t0 = time.perf_counter()
        ctx.results[name] = SECTIONS[name](ctx)
        report[name] = ctx.results[name]
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 2)
    report["peak_rss_mib"] = peak_rss_mib()
    return report
