"""``amcee bench`` section: the GNU Radio block against the bare engine.

Both classify the same frames with the same model and thresholds in one run
(interleaved repeats); the difference is what the block adds on top of the
engine: the scheduler, copying the stream through, one stream tag and one or
two PMT messages per vector.
"""
import numpy as np

from .bench import time_interleaved


def _complex_frames(frames):
    return (frames[:, 0] + 1j * frames[:, 1]).astype(np.complex64)


def section_block_vs_engine(ctx):
    import torch
    from gnuradio import blocks, gr

    from .classifier import classifier, upstream_buffer

    # The block logs its model at info level on the console, which would break
    # the JSON this command prints on stdout.
    gr.logging().set_default_level(gr.log_levels.warn)
    frames = _complex_frames(ctx.frames[: min(len(ctx.frames), 20000)])
    n, frame_len = frames.shape
    engine = ctx.engine
    threads = torch.get_num_threads()  # the engine's: both sides compute with as many threads

    def flowgraph(min_batch):
        tb = gr.top_block()
        src = blocks.vector_source_c(frames.ravel(), False, frame_len)
        clf = classifier(engine.model.path, threshold=list(engine.thresholds), give_up=list(engine.give_up),
                         min_exit_share=list(engine.min_exit_share),
                         frame_len=frame_len, max_batch=engine.max_batch, num_threads=threads,
                         min_batch=min_batch)
        if min_batch > 1:
            src.set_min_output_buffer(upstream_buffer(min_batch))
        tb.connect(src, clf, blocks.null_sink(gr.sizeof_gr_complex * frame_len))
        return tb, src, clf

    # As placed in a flowgraph (min_batch 1: work() gets what has arrived, a
    # few dozen vectors), rerun after a rewind ...
    tb, src, clf = flowgraph(1)

    def run_block():
        src.rewind()
        tb.run()

    # ... and set up for file replay (min_batch = the engine's batch).  GNU
    # Radio 3.10 cannot rerun a flowgraph whose block asks for a minimum
    # number of items (its buffers come back at the default size), so every
    # run gets a flowgraph of its own, built before the timing.
    batched = [flowgraph(engine.max_batch) for _ in range(ctx.repeats + 1)]  # + the warm-up run
    unused = iter(batched)  # every flowgraph stays alive until the section returns

    def run_batched():
        next(unused)[0].run()

    t = time_interleaved({"block": run_block, "block_batched": run_batched,
                          "engine": lambda: engine.classify(frames)}, ctx.repeats)
    return {"frames": int(n), "block_fps": n / t["block"], "block_batched_fps": n / t["block_batched"],
            "engine_fps": n / t["engine"], "block_over_engine": t["engine"] / t["block"],
            "block_batched_over_engine": t["engine"] / t["block_batched"],
            "min_batch_batched": engine.max_batch, "torch_threads": threads,
            "block_exit_counts": clf.exit_counts(), "block_batched_exit_counts": batched[-1][2].exit_counts()}
