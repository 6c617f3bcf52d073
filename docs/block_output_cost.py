"""What the classifier block's output costs: the block as users run it by
default (stream tags, and a message per frame to a classification_sink),
with its tags only (no message consumer connected: no message is built),
with one batch message per work() call to a classification_sink and no
stream tags, and with no output at all (the decision publisher replaced by
one that does nothing), against the bare engine on the same frames in its
own thread, interleaved rounds.  Prints JSON: frames/s per variant and the
median of the per-round ratios to the bare engine.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/block_output_cost.py \\
        --data data/synth_200.npz --frames 20000 --repeats 9 --threads 1
"""
import argparse
import json
import statistics

import numpy as np
from gnuradio import blocks, gr

from gnuradio.amcee.blocks.classification_sink import classification_sink
from gnuradio.amcee.blocks.classifier import classifier
from gnuradio.amcee.blocks.schema import BATCH_PORT, CLASSIFICATION_PORT
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.frames import to_complex
from gnuradio.amcee.inference.engine import EarlyExitEngine
from gnuradio.amcee.inference.model_file import default_model_path
from gnuradio.amcee.timing import paired_ratio_median, time_interleaved_samples
from gnuradio.amcee.tools.bench_block import _in_own_thread


class _NoOutput:
    """A decision publisher that writes nothing."""

    def publish(self, *args):
        pass

    def reset(self):
        pass


def _block(model, frames, output, threads):
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel(), False, frames.shape[1])
    clf = classifier(model, num_threads=threads, stream_tags=output in ("tags and messages", "tags only"))
    sink = classification_sink(clf.classes())
    tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frames.shape[1]))
    if output == "tags and messages":
        tb.msg_connect(clf, CLASSIFICATION_PORT, sink, "in")
    elif output == "batch messages":
        tb.msg_connect(clf, BATCH_PORT, sink, BATCH_PORT)
    elif output == "nothing":
        clf._publisher = _NoOutput()

    def run():
        src.rewind()
        tb.run()
    return run, (tb, src, clf, sink)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=default_model_path())
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the engine and the block")
    args = parser.parse_args()
    ds = load_dataset(args.data)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(ds.frames), min(args.frames, len(ds.frames)), replace=False))
    frames = to_complex(np.asarray(ds.frames[pick]))
    engine = EarlyExitEngine(args.model)
    candidates, keep = {"engine": _in_own_thread(lambda: engine.classify(frames), args.threads)}, []
    for output in ("tags and messages", "tags only", "batch messages", "nothing"):
        run, objects = _block(args.model, frames, output, args.threads)
        candidates[f"block, {output}"] = run
        keep.append(objects)
    samples = time_interleaved_samples(candidates, args.repeats)
    print(json.dumps({"frames": len(frames), "repeats": args.repeats, "torch_threads": args.threads, "variants": {
        name: {"fps": round(len(frames) / statistics.median(v)),
               "over_engine": round(paired_ratio_median(samples["engine"], v), 3)}
        for name, v in samples.items()}}, indent=1))


if __name__ == "__main__":
    main()
