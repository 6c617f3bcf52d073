"""examples/zmq_fanout: one distributor, two classifier workers, one gatherer, on loopback.

Every frame (identified by its frame_index tag, which travels through ZMQ with
the samples) must be classified exactly once, and each decision must be the
one EarlyExitEngine gives for that frame.  Readiness and completion are
polled with deadlines; nothing waits a fixed time to decide success.
"""
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT

FANOUT = ROOT / "examples" / "zmq_fanout"
N_FRAMES = 400


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(script, *args):
    return subprocess.Popen([sys.executable, str(FANOUT / script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_line(proc, text, timeout):
    """Read proc's output (raw, unbuffered) until it contains ``text`` or the deadline."""
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and text.encode() not in seen:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # process ended
            seen += chunk
    if text.encode() not in seen:
        pytest.fail(f"no {text!r} from {proc.args[1]}; output:\n{seen.decode(errors='replace')[-2000:]}")


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def fanout_dataset(tmp_path_factory):
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(11)
    ds = Dataset(rng.standard_normal((N_FRAMES, 2, 128)).astype(np.float32),
                 (np.arange(N_FRAMES) % 10).astype(np.int64),
                 np.repeat(np.float32([0, 10]), N_FRAMES // 2), RML22_CLASSES, {})
    path = tmp_path_factory.mktemp("fanout") / "frames.npz"
    save_dataset(path, ds)
    return ds, path


def test_two_workers_classify_every_frame_exactly_once(fanout_dataset, tiny_model_path, tmp_path):
    from gnuradio.amcee.inference.engine import EarlyExitEngine

    ds, path = fanout_dataset
    frames_addr = f"tcp://127.0.0.1:{_free_port()}"
    decisions_addr = f"tcp://127.0.0.1:{_free_port()}"
    summary_path = tmp_path / "gathered.json"
    procs = []
    try:
        gatherer = _start("gatherer.py", "--bind", decisions_addr, "--out", summary_path, "--keep-decisions")
        procs.append(gatherer)
        workers = [_start("worker.py", "--name", name, "--frames-from", frames_addr,
                          "--decisions-to", decisions_addr, "--model", tiny_model_path)
                   for name in ("w1", "w2")]
        procs += workers
        _wait_for_line(gatherer, "gatherer: listening", timeout=60)
        for w in workers:  # connected and running before any frame is sent
            _wait_for_line(w, "worker w", timeout=90)
        # Paced (0.4 s in all) so that both workers' reconnects, up to 100 ms apart,
        # happen before the frames are gone: then PUSH deals to both.
        procs.append(_start("distributor.py", path, "--bind", frames_addr, "--chunk", 16,
                            "--rate", 1000))

        deadline = time.monotonic() + 90
        summary = {}
        while time.monotonic() < deadline and summary.get("frames", 0) < N_FRAMES:
            time.sleep(0.2)  # poll the gatherer's summary file
            if summary_path.exists():
                summary = json.loads(summary_path.read_text())
        assert summary.get("frames") == N_FRAMES, summary
    finally:
        for proc in reversed(procs):  # distributor and workers first, the gatherer last
            _stop(proc)

    final = json.loads(summary_path.read_text())
    assert final["frames"] == N_FRAMES and final["duplicates"] == 0
    assert final["without_frame_index"] == 0
    assert sorted(int(i) for i in final["decisions"]) == list(range(N_FRAMES))
    assert sum(final["per_worker"].values()) == N_FRAMES
    assert set(final["per_worker"]) == {"w1", "w2"}, final["per_worker"]

    engine = EarlyExitEngine(tiny_model_path)
    expected = engine.classify(ds.frames)
    got_labels = [final["decisions"][str(i)]["label"] for i in range(N_FRAMES)]
    got_exits = [final["decisions"][str(i)]["exit"] for i in range(N_FRAMES)]
    assert got_labels == [engine.classes[c] for c in expected.classes]
    assert got_exits == expected.exits.tolist()
