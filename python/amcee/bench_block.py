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
    from gnuradio import blocks, gr

    from .classifier import classifier

    # The block logs its model at info level on the console, which would break
    # the JSON this command prints on stdout.
    gr.logging().set_default_level(gr.log_levels.warn)
    frames = _complex_frames(ctx.frames[: min(len(ctx.frames), 20000)])
    n, frame_len = frames.shape
    engine = ctx.engine
    import torch
    threads = torch.get_num_threads()  # the engine's: both sides compute with as many threads
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.ravel(), False, frame_len)
    clf = classifier(engine.model.path, threshold=list(engine.thresholds), give_up=list(engine.give_up),
                     frame_len=frame_len, max_batch=engine.max_batch, num_threads=threads)
    sink = blocks.null_sink(gr.sizeof_gr_complex * frame_len)
    tb.connect(src, clf, sink)

    def run_block():
        src.rewind()
        tb.run()

    t = time_interleaved({"block": run_block, "engine": lambda: engine.classify(frames)}, ctx.repeats)
    return {"frames": int(n), "block_fps": n / t["block"], "engine_fps": n / t["engine"],
            "block_over_engine": t["engine"] / t["block"], "torch_threads": threads,
            "block_exit_counts": clf.exit_counts()}
