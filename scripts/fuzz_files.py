#!/usr/bin/env python3
"""Fuzz the readers of every file the module loads: datasets (.npz, RML
pickles of protocols 2, 4 and 5, SigMF recordings), model files and training
checkpoints, with mutated copies of valid files and crafted attacks.

Each input is rebuilt from (kind, seed, index) alone, so a worker process can
be restarted after a crash (SIGSEGV, OOM kill) and the input that killed it
is counted as a crash.  Prints a JSON summary: counts by input kind, outcome
and exception type, crashes, and the peak memory each input took
(tracemalloc: Python and numpy allocations) against its size on disk.

    .venv/bin/python scripts/fuzz_files.py --datasets 10000 --models 2000 --checkpoints 500

The expected outcomes: a dataset loads or raises DatasetError; a model file
loads with the intact model's outputs, or raises ModelFileError; a
checkpoint loads or raises CheckpointError.  Anything else is a finding.
"""
import argparse
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Input kinds and the loader's promised error type.
KINDS = ("npz", "pickle", "sigmf", "model", "checkpoint")
#: An input may take this many times its own size plus this many bytes.
MEMORY_RATIO, MEMORY_SLACK = 20, 16 << 20


# ---------------------------------------------------------------- seed files
def _tiny_dataset():
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(0)
    n = len(RML22_CLASSES) * 2
    frames = rng.standard_normal((n, 2, 16)).astype(np.float32)
    return Dataset(frames=frames, labels=np.repeat(np.arange(len(RML22_CLASSES)), 2).astype(np.int64),
                   snrs=np.tile(np.array([0, 10], np.float32), len(RML22_CLASSES)),
                   classes=tuple(RML22_CLASSES), meta={"source": "fuzz"})


def make_seeds(folder):
    """Valid files of every kind in ``folder``; returns {kind: bytes or {suffix: bytes}}."""
    import torch

    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.data.sigmf_recording import save_replay
    from gnuradio.amcee.labels import RML22_CLASSES
    from gnuradio.amcee.network.architecture import EarlyExitNet, ModelConfig
    from gnuradio.amcee.network.checkpoint import save_checkpoint
    from gnuradio.amcee.network.export import export_model

    ds = _tiny_dataset()
    seeds = {}
    save_dataset(os.path.join(folder, "d.npz"), ds)
    seeds["npz"] = open(os.path.join(folder, "d.npz"), "rb").read()
    by_key = {}
    for label in range(len(ds.classes)):
        for snr in (0, 10):
            rows = (ds.labels == label) & (ds.snrs == snr)
            by_key[(ds.classes[label], snr)] = ds.frames[rows]
    seeds["pickle"] = [pickle.dumps(by_key, protocol=p) for p in (2, 4, 5)]
    data, meta = save_replay(os.path.join(folder, "rec"), ds)
    seeds["sigmf"] = {"data": open(data, "rb").read(), "meta": open(meta, "rb").read()}
    torch.manual_seed(0)
    net = EarlyExitNet(ModelConfig(exits=("V0",), num_classes=len(RML22_CLASSES), frame_len=128)).eval()
    export_model(net, os.path.join(folder, "m.pt"), RML22_CLASSES, 0.3)
    # The export time and torch's save id are all that differ between runs: fixed, the
    # inputs of a seed are the same bytes in every run.
    seeds["model"] = rezip(open(os.path.join(folder, "m.pt"), "rb").read(), _fixed_export_time)
    with open(os.path.join(folder, "m.pt"), "wb") as f:
        f.write(seeds["model"])
    save_checkpoint(os.path.join(folder, "c.pt"), net, RML22_CLASSES, epoch=1)
    seeds["checkpoint"] = open(os.path.join(folder, "c.pt"), "rb").read()
    return seeds


def _fixed_export_time(name, data):
    if name.endswith("/.data/serialization_id"):  # torch's random id of each save
        return b"0" * len(data)
    if not name.endswith("/extra/amcee.json"):
        return data
    meta = json.loads(data)
    meta["created"] = "2000-01-01T00:00:00+00:00"
    return json.dumps(meta, indent=1).encode()


# ---------------------------------------------------------------- mutations
def flip(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def mutate_bytes(rng, data):
    choice = rng.randrange(6)
    if choice == 0 or not data:
        return flip(rng, data)
    i = rng.randrange(len(data))
    if choice == 1:
        return data[:i]  # truncated
    if choice == 2:
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + data[i:]
    if choice == 3:
        return data[:i] + b"\x00" * rng.randint(1, 256) + data[i + 256:]
    if choice == 4:
        j = rng.randrange(len(data))
        return data[:i] + data[min(i, j):max(i, j)] + data[i:]
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 2048)))


def rezip(data, change):
    """A zip archive rebuilt with ``change(name, bytes) -> bytes or None (drop)``: a
    deliberate edit, with valid CRCs."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            content = change(info.filename, old.read(info.filename))
            if content is not None:
                new.writestr(info, content)
    return out.getvalue()


def random_json(rng, depth=0):
    """A random JSON value: every type, odd numbers, nested containers."""
    scalars = [None, True, False, 0, -1, 10 ** 30, 1e308, -1e308, "x", "", 0.5, "../x"]
    if depth >= 3 or rng.random() < 0.7:
        return rng.choice(scalars)
    if rng.random() < 0.5:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "core:label", "amcee:snr_db"]): random_json(rng, depth + 1)}


def mutate_json(rng, doc):
    """Set one random field (at any depth) of a JSON document to a random value."""
    if rng.random() < 0.05:
        return "[" * 100000  # nesting deeper than the parser's recursion
    doc = json.loads(json.dumps(doc))
    node = doc
    for _ in range(rng.randint(1, 3)):
        if isinstance(node, dict) and node:
            key = rng.choice(sorted(node))
            if rng.random() < 0.5 or not isinstance(node[key], (dict, list)) or not node[key]:
                node[key] = random_json(rng)
                return doc
            node = node[key]
        elif isinstance(node, list) and node:
            i = rng.randrange(len(node))
            if rng.random() < 0.5 or not isinstance(node[i], (dict, list)) or not node[i]:
                node[i] = random_json(rng)
                return doc
            node = node[i]
    if isinstance(node, dict):
        node[rng.choice(["core:dataset", "amcee:frame_length", "amcee:classes", "core:sha512", "extra"])] = \
            rng.choice(["../../etc/passwd", "/etc/passwd", random_json(rng)])
    return doc


class _Call:
    """Pickles as a call of ``func(*args)`` (what a crafted pickle can ask for)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def crafted_pickles():
    """Attacks of the probe: arrays over memory the file does not hold, huge
    shapes, deep nesting, a huge memo index, huge declared lengths."""
    key = ("BPSK", 0)
    return [
        pickle.dumps({key: _Call(np.ndarray, (1 << 28,), np.dtype("f4"))}, protocol=2),
        pickle.dumps({key: _Call(np.ndarray, (16,), np.dtype("f4"), b"x" * 8, -1 << 30)}, protocol=2),
        pickle.dumps({key: _Call(np.ndarray, (4, 2, 8), np.dtype("f4"), b"x" * 8, 4096)}, protocol=4),
        b"\x80\x02}" + b"K\x00" + b"\x85" * 200000 + b"K\x01s.",
        b"\x80\x02}r\xff\xff\xff\x7f.",
        b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc.",
        b"\x80\x02" + b"]" * 200000 + b"a" * 199999 + b".",
        pickle.dumps({key: _Call(eval, "1+1")}, protocol=2),
        pickle.dumps({key: np.zeros((2, 2, 4), dtype=object)}, protocol=2),
        pickle.dumps({key: np.zeros((2, 2, 4), dtype=[("a", "f4")])}, protocol=4),
    ]


def _npy(header_shape, descr="<f4", payload=b"\x00" * 64):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": header_shape})
    return f.getvalue() + payload


def _npy_of(value):
    f = io.BytesIO()
    np.save(f, value, allow_pickle=True)
    return f.getvalue()


def crafted_npz(rng, seed):
    member = rng.choice(["frames", "labels", "snrs", "classes", "meta_json", "format_version"])
    replacement = rng.choice([
        _npy((10 ** 12, 2, 16)), _npy((1 << 40,), "<i8"), _npy_of(np.array("1")), _npy_of(np.array([[1]])),
        _npy_of(np.array("BPSK")), _npy_of(np.array(1.5)), _npy_of(np.array([None], dtype=object)),
        _npy_of(np.array("[" * 50000)), _npy_of(np.array('"text"')), _npy_of(np.zeros((3, 2, 16), np.float64)),
        _npy_of(np.array(True)), None])
    return rezip(seed, lambda name, data: replacement if name == member + ".npy" else data)


def crafted_model(rng, seed):
    choice = rng.randrange(3)
    if choice == 0:  # a metadata field of another type or value
        def change(name, data):
            if not name.endswith("/extra/amcee.json"):
                return data
            return json.dumps(mutate_json(rng, json.loads(data))).encode()
    elif choice == 1:  # code the exporter did not write
        def change(name, data):
            if "/code/" in name and name.endswith(".py") and rng.random() < 0.5:
                return data + rng.choice([b"\n# comment\n", b"def f(x: int) -> int:\n  return x\n"])
            return data
    else:  # other weights (a retrained file would look the same)
        def change(name, data):
            if "/data/" in name and rng.random() < 0.3:
                return flip(rng, data)
            return data
    return rezip(seed, change), ("reweighted" if choice == 2 else "crafted")


def make_input(kind, seeds, index, seed):
    """(files {suffix: bytes}, label) of input ``index`` of ``kind``."""
    rng = random.Random(f"{seed}-{kind}-{index}")
    if kind == "npz":
        if rng.random() < 0.3:
            return {"": crafted_npz(rng, seeds["npz"])}, "crafted"
        return {"": mutate_bytes(rng, seeds["npz"])}, "mutated"
    if kind == "pickle":
        crafted = crafted_pickles()
        if index < len(crafted):
            return {"": crafted[index]}, f"attack-{index}"
        return {"": mutate_bytes(rng, rng.choice(seeds["pickle"]))}, "mutated"
    if kind == "sigmf":
        meta, data = seeds["sigmf"]["meta"], seeds["sigmf"]["data"]
        choice = rng.randrange(3)
        if choice == 0:
            meta = json.dumps(mutate_json(rng, json.loads(meta))).encode()
        elif choice == 1:
            meta = mutate_bytes(rng, meta)
        else:
            data = mutate_bytes(rng, data)
        return {".sigmf-meta": meta, ".sigmf-data": data}, ("meta" if choice < 2 else "data")
    if kind == "model":
        if rng.random() < 0.5:
            return {"": mutate_bytes(rng, seeds["model"])}, "mutated"
        data, label = crafted_model(rng, seeds["model"])
        return {"": data}, label
    if kind == "checkpoint":
        if rng.random() < 0.7:
            return {"": mutate_bytes(rng, seeds["checkpoint"])}, "mutated"
        return {"": rezip(seeds["checkpoint"], lambda n, d: flip(rng, d) if n.endswith("data.pkl") else d)}, \
            "crafted"
    raise ValueError(kind)


# ---------------------------------------------------------------- running
class Runner:
    """Loads inputs in this process and classifies the outcome."""

    def __init__(self, folder):
        import torch

        from gnuradio.amcee.inference.model_file import load_model

        self.folder = folder
        self.seeds = make_seeds(folder)
        self.frames = torch.randn(32, 2, 128, generator=torch.Generator().manual_seed(0))
        self.frames /= self.frames.abs().sum(dim=(1, 2), keepdim=True)
        self.reference = self._outputs(load_model(os.path.join(folder, "m.pt")))

    def _outputs(self, loaded):
        import torch

        k = loaded.num_exits - 1
        with torch.inference_mode():
            return loaded.module(self.frames, torch.full((k,), 0.3), torch.full((k,), float("inf")))[0]

    def run(self, kind, index, seed):
        import torch

        from gnuradio.amcee.data.dataset import DatasetError
        from gnuradio.amcee.data.files import load_dataset
        from gnuradio.amcee.inference.model_file import ModelFileError, load_model
        from gnuradio.amcee.network.checkpoint import CheckpointError, load_checkpoint

        files, label = make_input(kind, self.seeds, index, seed)
        base = os.path.join(self.folder, f"in-{kind}-{index}")
        for suffix, data in files.items():
            with open(base + (".bin" if not suffix else "") + suffix, "wb") as f:
                f.write(data)
        path = base + (".bin" if "" in files else ".sigmf-meta")
        size = sum(len(d) for d in files.values())
        expected = {"model": ModelFileError, "checkpoint": CheckpointError}.get(kind, DatasetError)
        tracemalloc.start()
        try:
            if kind == "model":
                loaded = load_model(path)
                same = torch.allclose(self._outputs(loaded), self.reference, atol=1e-6)
                outcome = "ok_same" if same else "ok_changed"
            elif kind == "checkpoint":
                load_checkpoint(path)
                outcome = "ok"
            else:
                load_dataset(path)
                outcome = "ok"
            error = None
        except expected as exc:
            outcome, error = "refused", type(exc).__name__
        except Exception as exc:  # a finding: not the promised error type
            outcome, error = "wrong_error", f"{type(exc).__name__}: {str(exc)[:120]}"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            for suffix in files:
                os.remove(base + (".bin" if not suffix else "") + suffix)
        return {"kind": kind, "index": index, "label": label, "outcome": outcome, "error": error,
                "bytes": size, "peak": peak}


def _worker(args):
    folder = tempfile.mkdtemp(prefix="amcee-fuzz-")
    runner = Runner(folder)
    for index in range(args.start, args.stop):
        print(json.dumps(runner.run(args.kind, index, args.seed)), flush=True)


def run_kind(kind, count, seed, log=None):
    """Run ``count`` inputs of ``kind`` in worker processes; a worker that dies
    marks its current input as a crash and a new one continues."""
    results, start = [], 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    while start < count:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", kind, str(start),
                                 str(count), "--seed", str(seed)], stdout=subprocess.PIPE, text=True, env=env)
        for line in proc.stdout:
            record = json.loads(line)
            results.append(record)
            start = record["index"] + 1
            if log:
                log.write(line)
        proc.wait()
        if proc.returncode != 0 and start < count:
            results.append({"kind": kind, "index": start, "label": "?", "outcome": "crash",
                            "error": f"exit {proc.returncode}", "bytes": 0, "peak": 0})
            start += 1
    return results


def summarise(results, seconds):
    summary = {"inputs": len(results), "seconds": round(seconds, 1), "by_kind": {}}
    for kind in KINDS:
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        outcomes, errors = {}, {}
        for r in rows:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            if r["error"]:
                name = r["error"].split(":")[0] if r["outcome"] != "wrong_error" else r["error"]
                errors[name] = errors.get(name, 0) + 1
        over = [r for r in rows if r["peak"] > MEMORY_RATIO * r["bytes"] + MEMORY_SLACK]
        changed = {}
        for r in rows:
            if r["outcome"] == "ok_changed":
                changed[r["label"]] = changed.get(r["label"], 0) + 1
        summary["by_kind"][kind] = {
            "inputs": len(rows), "outcomes": outcomes, "errors": errors,
            "peak_memory_max_bytes": max(r["peak"] for r in rows),
            "peak_memory_max_ratio_to_input": round(max(r["peak"] / max(r["bytes"], 1) for r in rows), 1),
            "over_memory_bound": len(over),
            **({"loaded_with_changed_outputs_by_input": changed} if kind == "model" else {}),
        }
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=int, default=10000, help="dataset inputs, split over npz/pickle/SigMF")
    p.add_argument("--models", type=int, default=2000)
    p.add_argument("--checkpoints", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", help="write every input's result as a JSON line here")
    p.add_argument("--worker", nargs=3, metavar=("KIND", "START", "STOP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.kind, args.start, args.stop = args.worker[0], int(args.worker[1]), int(args.worker[2])
        return _worker(args)
    t0 = time.perf_counter()
    counts = {"npz": args.datasets // 3, "pickle": args.datasets // 3,
              "sigmf": args.datasets - 2 * (args.datasets // 3), "model": args.models,
              "checkpoint": args.checkpoints}
    log = open(args.log, "w") if args.log else None
    results = []
    for kind, count in counts.items():
        results += run_kind(kind, count, args.seed, log)
    print(json.dumps(summarise(results, time.perf_counter() - t0), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
