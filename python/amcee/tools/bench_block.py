"""``amcee bench`` section: the GNU Radio block as users run it, against the
bare engine.

The block runs with its default parameters (batching with its latency bound,
nothing set by hand) in ``vector_source -> classifier -> null_sink`` with its
``classification`` port connected to a ``classification_sink``, so that the
time includes the tags, the messages and a consumer of them.  With early
exit it also runs as a high-rate flowgraph would use it: no stream tags and
the ``batch`` port (one message per work() call) to the consumer.  The
engine classifies the same frames with the same settings in the same
process, in interleaved rounds.  Both run with early exit (the model's settings) and as
the backbone alone (threshold 0), on the full SNR mix and on the highest and
lowest SNR (``ctx.block_frames`` each, tiled where a subset has fewer), at 1
and 2 torch threads.

A second part feeds the block one frame at a time at RML22's rate and
measures how long each frame waits in the block: from the moment the source
hands it over to the moment its message reaches the consumer.
"""
import statistics
import threading
import time

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr

from ..blocks.batching import DEFAULT_MAX_LATENCY_MS
from ..blocks.classification_sink import classification_sink
from ..blocks.classifier import classifier
from ..blocks.schema import BATCH_PORT, CLASSIFICATION_PORT
from ..data.sigmf_recording import DEFAULT_SAMPLE_RATE
from ..frames import to_complex
from ..inference.engine import EarlyExitEngine
from ..timing import paired_ratio_median, paired_ratio_spread, time_interleaved_samples

#: RML22's frame rate: its sample rate / 128 samples.
RML22_FRAME_RATE = DEFAULT_SAMPLE_RATE / 128
#: An RTL-SDR's full rate, in samples/s (the question the bench answers).
RTL_SDR_RATE = 2.4e6


def _subsets(ctx):
    """[(SNR or None for the mix, complex frames)]: the mix, the highest and the lowest SNR."""
    size = ctx.block_frames
    subsets = [(None, np.resize(ctx.frames, (size,) + ctx.frames.shape[1:]))]
    if ctx.snrs is not None:
        for snr in (float(ctx.snrs.max()), float(ctx.snrs.min())):
            frames = ctx.frames[ctx.snrs == snr]
            subsets.append((snr, np.resize(frames, (size,) + frames.shape[1:])))
    return [(snr, to_complex(f)) for snr, f in subsets]


def _settings(engine, backbone):
    """The classifier's settings: the engine's, or every frame to the final exit."""
    if backbone:
        return dict(threshold=0.0, give_up=float("inf"))
    return dict(threshold=list(engine.thresholds), give_up=list(engine.give_up))


def _block_run(model_path, frames, threads, settings, batch=False):
    """A flowgraph as users build it, and a function that runs it once;
    ``batch``: no stream tags, the decisions on the batch port."""
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel(), False, frames.shape[1])
    clf = classifier(model_path, frame_len=frames.shape[1], num_threads=threads, stream_tags=not batch,
                     **settings)
    sink = classification_sink(clf.classes())
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frames.shape[1]))
    if batch:
        tb.msg_connect(clf, BATCH_PORT, sink, BATCH_PORT)
    else:
        tb.msg_connect(clf, CLASSIFICATION_PORT, sink, "in")

    def run():
        src.rewind()
        tb.run()
    return run, (tb, src, clf, sink)


def _in_own_thread(call, threads):
    """``call`` run by a thread of its own with ``threads`` torch threads, as
    the block runs its engine in its scheduler thread.  Timed in the main
    thread instead, the engine left an OpenMP team there for the block's runs
    to compete with: GNU OpenMP then shortens every worker's spin-wait, and
    the block's two-thread inference ran a third slower than alone
    (docs/performance.md, "Torch threads in a flowgraph")."""
    def run():
        failure = []

        def body():
            torch.set_num_threads(threads)
            try:
                call()
            except BaseException as exc:  # raised again in the caller's thread
                failure.append(exc)
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
    return run


def _throughput(ctx, threads):
    engine = ctx.engine
    path = engine.model.path
    engines = {"early_exit": engine,
               "backbone": EarlyExitEngine(path, max_batch=engine.max_batch,
                                           thresholds=0.0, give_up=float("inf"))}
    rows = []
    for snr, frames in _subsets(ctx):
        keep, candidates = [], {}
        for mode, mode_engine in engines.items():
            for output, batch in (("block", False), ("block_batch", True)):
                run, objects = _block_run(path, frames, threads, _settings(engine, mode == "backbone"), batch)
                keep.append(objects)
                candidates[f"{output}_{mode}"] = run
            candidates[f"engine_{mode}"] = _in_own_thread((lambda e: lambda: e.classify(frames))(mode_engine), threads)
        samples = time_interleaved_samples(candidates, ctx.repeats)
        fps = {k: len(frames) / statistics.median(v) for k, v in samples.items()}
        row = {"snr": snr, "frames": int(len(frames)), "torch_threads": threads,
               **{f"{k}_fps": v for k, v in fps.items()}}
        row["early_exit_speedup_engine"] = paired_ratio_median(samples["engine_backbone"], samples["engine_early_exit"])
        for output in ("block", "block_batch"):
            for mode in engines:
                row[f"{output}_over_engine_{mode}"] = paired_ratio_median(samples[f"engine_{mode}"],
                                                                          samples[f"{output}_{mode}"])
                row[f"{output}_over_engine_{mode}_quartiles"] = paired_ratio_spread(samples[f"engine_{mode}"],
                                                                                    samples[f"{output}_{mode}"])
            row[f"early_exit_speedup_{output}"] = paired_ratio_median(samples[f"{output}_backbone"],
                                                                      samples[f"{output}_early_exit"])
            row[f"{output}_speedup_over_engine_speedup"] = (row[f"early_exit_speedup_{output}"]
                                                            / row["early_exit_speedup_engine"])
            row[f"{output}_samples_per_s"] = fps[f"{output}_early_exit"] * frames.shape[1]
        clf = keep[0][2]
        row["block_exit_shares"] = (np.asarray(clf.exit_counts()) / max(1, sum(clf.exit_counts()))).tolist()
        rows.append(row)
    return rows


def _slow_stream_waits(ctx, seconds, rate):
    """Frames handed to the block one by one at ``rate``; how long each waits."""
    n = max(1, int(seconds * rate))
    frames = to_complex(np.resize(ctx.frames, (n,) + ctx.frames.shape[1:]))
    sent = np.zeros(n)
    received = np.full(n, np.nan)

    class paced_source(gr.sync_block):
        def __init__(self):
            gr.sync_block.__init__(self, "paced_source", in_sig=None, out_sig=[(np.complex64, frames.shape[1])])
            self.t0 = None

        def work(self, input_items, output_items):
            i = self.nitems_written(0)
            if i >= n:
                return -1
            if self.t0 is None:
                self.t0 = time.monotonic()
            delay = self.t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            output_items[0][0] = frames[i]
            sent[i] = time.monotonic()
            return 1

    class arrival_clock(gr.basic_block):
        def __init__(self):
            gr.basic_block.__init__(self, "arrival_clock", in_sig=None, out_sig=None)
            self.message_port_register_in(pmt.intern("in"))
            self.set_msg_handler(pmt.intern("in"), self.handle)

        def handle(self, msg):
            received[pmt.to_uint64(pmt.dict_ref(msg, pmt.intern("offset"), pmt.PMT_NIL))] = time.monotonic()

    tb = gr.top_block()
    src = paced_source()
    clf = classifier(ctx.engine.model.path, frame_len=frames.shape[1], num_threads=1)
    calls = []
    classify = clf.engine.classify
    clf.engine.classify = lambda x, *a, **k: (calls.append(len(x)), classify(x, *a, **k))[1]
    clock = arrival_clock()
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frames.shape[1]))
    tb.msg_connect(clf, CLASSIFICATION_PORT, clock, "in")
    tb.run()
    waits_ms = (received - sent) * 1000.0
    done = np.isfinite(waits_ms)
    return {"rate_frames_per_s": rate, "frames": int(n), "frames_received": int(done.sum()),
            "max_latency_ms": clf.get_max_latency(),
            "wait_ms_p50": float(np.percentile(waits_ms[done], 50)),
            "wait_ms_p99": float(np.percentile(waits_ms[done], 99)),
            "wait_ms_max": float(waits_ms[done].max()),
            "network_calls": len(calls), "frames_per_call_median": float(np.median(calls)),
            "frames_per_call_max": int(max(calls))}


def block_against_reference(ctx, reference, threads=1):
    """The block as users run it (default parameters, tags, a message per
    frame to a classification_sink) with the model and with the
    ``reference`` engine's file, on the highest and lowest SNR
    (``ctx.block_frames`` each), timed in the same interleaved rounds; each
    block with its file's own settings (the model's: the bench's)."""
    gr.logging().set_default_level(gr.log_levels.warn)  # the block's info lines would break the JSON
    saved_threads = torch.get_num_threads()
    rows = []
    try:
        for snr, frames in _subsets(ctx)[1:]:
            # The flowgraphs' Python blocks must outlive their runs (a block
            # whose Python object is freed crashes the scheduler): kept in ``alive``.
            model_run, *alive = _block_run(ctx.engine.model.path, frames, threads, _settings(ctx.engine, False))
            reference_run, *more = _block_run(reference.model.path, frames, threads, {})
            alive += more
            samples = time_interleaved_samples({"model": _in_own_thread(model_run, threads),
                                                "reference": _in_own_thread(reference_run, threads)}, ctx.repeats)
            rows.append({"snr": snr, "frames": int(len(frames)), "torch_threads": threads,
                         "model_fps": len(frames) / statistics.median(samples["model"]),
                         "reference_fps": len(frames) / statistics.median(samples["reference"]),
                         "speedup": paired_ratio_median(samples["reference"], samples["model"]),
                         "speedup_quartiles": paired_ratio_spread(samples["reference"], samples["model"])})
    finally:
        torch.set_num_threads(saved_threads)
    return rows


def section_block_vs_engine(ctx):
    """The block as users run it against the bare engine; waits on a slow stream."""
    # The block logs its model at info level on the console, which would break
    # the JSON this command prints on stdout.
    gr.logging().set_default_level(gr.log_levels.warn)
    saved_threads = torch.get_num_threads()
    try:
        rows = [row for threads in (1, 2) for row in _throughput(ctx, threads)]
    finally:
        torch.set_num_threads(saved_threads)
    # The RTL-SDR question: 2 threads at the highest SNR (most frames leave early).
    top = max(rows, key=lambda r: (r["torch_threads"], -np.inf if r["snr"] is None else r["snr"]))
    return {"default_max_latency_ms": DEFAULT_MAX_LATENCY_MS,
            "throughput": rows,
            "slow_stream": _slow_stream_waits(ctx, ctx.latency_seconds, RML22_FRAME_RATE),
            "rtl_sdr": {"needed_samples_per_s": RTL_SDR_RATE, "snr": top["snr"],
                        "torch_threads": top["torch_threads"],
                        "block_samples_per_s": top["block_samples_per_s"],
                        "block_batch_samples_per_s": top["block_batch_samples_per_s"],
                        "sustained": bool(top["block_samples_per_s"] >= RTL_SDR_RATE)}}
