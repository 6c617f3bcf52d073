"""examples/zmq_fanout reports what it lost: the gatherer counts the frame
indices that never came, skips and counts malformed messages and exits after
an idle timeout; the distributor exits at the end of a finite stream."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from test_zmq_fanout import FANOUT, _free_port, _stop, _wait_for_line

zmq = pytest.importorskip("zmq")


def _decision(index):
    import pmt

    msg = pmt.make_dict()
    for key, value in (("frame_index", index), ("label", "BPSK"), ("exit", 0), ("worker", "test")):
        msg = pmt.dict_add(msg, pmt.intern(key), pmt.to_pmt(value))
    return pmt.serialize_str(msg)


def test_the_gatherer_reports_missing_frames_and_malformed_messages(tmp_path):
    import pmt

    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "summary.json"
    gatherer = subprocess.Popen([sys.executable, str(FANOUT / "gatherer.py"), "--bind", address, "--expect", "20",
                                 "--idle-timeout", "2", "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        _wait_for_line(gatherer, "gatherer: listening", timeout=60)
        push.connect(address)
        for message in [_decision(i) for i in range(5)] + [
                _decision("7"), _decision(True), _decision(-3), pmt.serialize_str(pmt.from_long(3))]:
            push.send(message)
        gatherer.wait(timeout=60)  # stops by itself: no new decision for 2 s
    finally:
        push.close(linger=0)
        context.term()
        _stop(gatherer)
    assert gatherer.returncode == 0
    summary = json.loads(out.read_text())
    assert summary["frames"] == 5 and summary["malformed"] == 4
    assert summary["missing_count"] == 15 and summary["missing"] == list(range(5, 20))


def test_the_distributor_exits_at_the_end_of_a_finite_stream(tmp_path):
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    n = 40
    rng = np.random.default_rng(0)
    save_dataset(tmp_path / "d.npz", Dataset(rng.standard_normal((n, 2, 128)).astype(np.float32),
                                             (np.arange(n) % 10).astype(np.int64), np.zeros(n, np.float32),
                                             RML22_CLASSES, {}))
    address = f"tcp://127.0.0.1:{_free_port()}"
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.connect(address)
    distributor = subprocess.Popen([sys.executable, str(FANOUT / "distributor.py"), str(tmp_path / "d.npz"),
                                    "--bind", address, "--linger", "0.5"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    received = 0
    try:
        deadline = time.monotonic() + 90
        while distributor.poll() is None and time.monotonic() < deadline:
            if pull.poll(200):
                received += len(pull.recv())
        output = distributor.stdout.read().decode(errors="replace")
    finally:
        pull.close(linger=0)
        context.term()
        _stop(distributor)
    assert distributor.returncode == 0, output
    assert "all frames sent" in output
    assert received >= n * 128 * 8  # every frame's samples (plus the tag headers)
