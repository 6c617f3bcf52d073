"""What a head's gather costs against running the head: the rule behind
architecture.MIN_SHARE_CLOSED_TO_GATHER.

For each early exit of MODEL (default: the shipped one), on the features of
--batch random frames: the time of the exit's head on every row against the
time of gathering all rows but a few of its features (index_select, what the
forward does before running the head on the rows that may leave), one
thread, medians of --repeats.  Prints JSON.

    PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/head_gather_cost.py
"""
import argparse
import json
import statistics
import time

import torch

from gnuradio.amcee.inference.model_file import default_model_path, load_model


def _median_seconds(fn, repeats):
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = load_model(args.model or default_model_path())
    blocks = [getattr(model.module.blocks, str(k)) for k in range(model.num_exits)]
    x = torch.randn(args.batch, 2, model.frame_len)
    keep = torch.arange(args.batch - max(1, args.batch // 64))  # all rows but a few
    out = {"model": model.version, "batch": args.batch, "exits": []}
    with torch.inference_mode():
        for k, block in enumerate(blocks[:-1]):
            x = block.segment(x)
            head = _median_seconds(lambda: block.head(x), args.repeats)
            gather = _median_seconds(lambda: x.index_select(0, keep), args.repeats)
            out["exits"].append({"exit": model.exit_names[k], "head_ms": round(head * 1e3, 3),
                                 "gather_ms": round(gather * 1e3, 3), "gather_over_head": round(gather / head, 3)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
