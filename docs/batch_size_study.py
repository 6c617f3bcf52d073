"""Frames per network call: how the engine and the block's speed depend on it.

For MODEL (default: the shipped one) and, for comparison, REFERENCE (a model
with the paper's 64-channel stem), on frames of DATA (all SNRs, or --snr):
the engine's early exit and the block as users run it (stream tags and a
message per frame to a classification_sink), each at every --batches value,
interleaved rounds in one process, with --threads torch threads (the block
and the engine each in a thread of their own, as bench_block does).  Prints
JSON: frames/s per batch and the median of the per-round ratios to batch 256.
The engine's default (inference.engine.default_batch) is the model's
first-layer budget; this is the measurement behind it.

``--untrained-frame-len L`` times instead the backbone alone of an untrained
network of the paper's architecture on random frames of L samples (no data
of that length is needed): how the best batch moves with the frame length.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/batch_size_study.py \\
        --data data/synth_200.npz --reference runs/amcee-default-6.pt --threads 1
"""
import argparse
import json
import statistics

import numpy as np
from gnuradio import blocks, gr

from gnuradio.amcee.blocks.classification_sink import classification_sink
from gnuradio.amcee.blocks.classifier import classifier
from gnuradio.amcee.blocks.schema import CLASSIFICATION_PORT
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.frames import to_complex
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import default_model_path
from gnuradio.amcee.timing import paired_ratio_median, time_interleaved_samples
from gnuradio.amcee.tools.bench_block import _in_own_thread

BASE = 256


def _block(model, frames, batch, threads):
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel(), False, frames.shape[1])
    clf = classifier(model, num_threads=threads, max_batch=batch)
    sink = classification_sink(clf.classes())
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frames.shape[1]))
    tb.msg_connect(clf, CLASSIFICATION_PORT, sink, "in")

    def run():
        src.rewind()
        tb.run()
    return run, (tb, src, clf, sink)


def _untrained(args):
    import tempfile

    import torch

    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.export import export_model

    torch.manual_seed(0)
    length = args.untrained_frame_len
    rng = np.random.default_rng(0)
    frames = (rng.standard_normal((args.frames, length)) + 1j * rng.standard_normal((args.frames, length)))
    frames = frames.astype(np.complex64)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/untrained.pt"
        export_model(EarlyExitNet(ModelConfig(exits=("V0",), num_classes=len(RML22_CLASSES), frame_len=length)).eval(),
                     path, RML22_CLASSES, 0.3)
        engines = {b: EarlyExitEngine(path, max_batch=b) for b in args.batches}
        samples = time_interleaved_samples(
            {b: _in_own_thread((lambda e: lambda: e.backbone_probs(frames))(e), args.threads)
             for b, e in engines.items()}, args.repeats)
        default = EarlyExitEngine(path).max_batch
    return {"frame_len": length, "frames": args.frames, "threads": args.threads, "default_batch": default,
            "backbone": {str(b): {"fps": round(len(frames) / statistics.median(samples[b])),
                                  "over_batch_256": round(paired_ratio_median(samples[BASE], samples[b]), 3)}
                         for b in args.batches}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--reference", default=None, help="a model with the paper's 64-channel stem (engine only)")
    ap.add_argument("--data", default=None, help="required unless --untrained-frame-len")
    ap.add_argument("--snr", type=float, default=None, help="only the frames of this SNR (default: all)")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--batches", type=int, nargs="+", default=[BASE, 512, 1024, 2048])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--untrained-frame-len", type=int, default=None, metavar="L")
    args = ap.parse_args()
    if BASE not in args.batches:
        ap.error(f"--batches must include {BASE}, the ratios' base")
    if args.untrained_frame_len:
        print(json.dumps(_untrained(args), indent=1))
        return
    if not args.data:
        ap.error("--data is required")
    model = args.model or default_model_path()

    ds = load_dataset(args.data)
    frames = ds.frames if args.snr is None else ds.frames[ds.snrs == args.snr]
    frames = to_complex(np.resize(frames, (args.frames,) + frames.shape[1:]))
    candidates, keep = {}, []
    for batch in args.batches:
        engine = EarlyExitEngine(model, max_batch=batch)
        candidates[("engine", batch)] = _in_own_thread((lambda e: lambda: e.classify(frames))(engine), args.threads)
        run, objects = _block(model, frames, batch, args.threads)
        keep.append(objects)
        candidates[("block", batch)] = _in_own_thread(run, args.threads)
        if args.reference:
            ref = EarlyExitEngine(args.reference, max_batch=batch)
            candidates[("reference engine", batch)] = _in_own_thread(
                (lambda e: lambda: e.classify(frames))(ref), args.threads)
    samples = time_interleaved_samples(candidates, args.repeats)
    out = {"model": model, "model_version": EarlyExitEngine(model).model.version, "reference": args.reference,
           "data": args.data, "snr": args.snr, "frames": len(frames), "threads": args.threads,
           "repeats": args.repeats, "default_batch": EarlyExitEngine(model).max_batch, "rows": {}}
    for what in sorted({w for w, _ in candidates}):
        out["rows"][what] = {str(b): {"fps": round(len(frames) / statistics.median(samples[(what, b)])),
                                      "over_batch_256": round(paired_ratio_median(samples[(what, BASE)],
                                                                                  samples[(what, b)]), 3)}
                             for b in args.batches}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
