#!/usr/bin/env python3
"""Gather the workers' decisions: one ZMQ PULL socket bound for all workers.

zeromq.pull_msg_source(bind=True) -> a collector that keeps every decision by
its frame_index and counts duplicates.  Writes a JSON summary to --out (kept
up to date, replaced atomically) and stdout: frames seen, duplicates, frames
per worker, accuracy against the true labels, and with --keep-decisions the
class/exit of every frame.  Stops after --expect distinct frames when
--exit-when-complete is given, after --idle-timeout seconds without a new
decision (a worker that died holds frames that will never come), or at
SIGINT/SIGTERM.  With --expect, the summary lists the frame indices that
never arrived ("missing"): frames lost with a killed worker are reported,
not silently absent.  Messages that are not a decision with an integer
frame_index are skipped and counted ("malformed").

gr-zeromq's sockets carry no authentication or encryption: anyone who can
reach the port can send decisions.  The defaults bind loopback (127.0.0.1);
across machines, bind a private interface behind a firewall or carry the
traffic through an SSH tunnel or VPN.
"""
import argparse
import collections
import json
import os
import signal
import sys
import threading
import time

import pmt
from gnuradio import gr, zeromq


#: Missing frame indices listed in the summary (all are counted).
MAX_LISTED_MISSING = 1000


class decision_collector(gr.basic_block):
    """Keeps classifier messages by frame_index (thread-safe)."""

    def __init__(self):
        gr.basic_block.__init__(self, name="decision_collector", in_sig=None, out_sig=None)
        self.lock = threading.Lock()
        self.decisions = {}  # frame_index -> (class label, exit, true label, worker)
        self.duplicates = 0
        self.without_index = 0
        self.malformed = 0
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        def get(key):
            value = pmt.dict_ref(msg, pmt.intern(key), pmt.PMT_NIL)
            return None if pmt.eq(value, pmt.PMT_NIL) else pmt.to_python(value)

        try:
            if not pmt.is_dict(msg):
                raise ValueError("not a dict")
            index = get("frame_index")
            decision = (get("label"), get("exit"), get("true_label"), get("worker"))
        except Exception:  # pmt raises its own errors for odd messages; one bad sender must not stop us
            with self.lock:
                self.malformed += 1
            return
        with self.lock:
            if index is None:
                self.without_index += 1
            elif isinstance(index, bool) or not isinstance(index, int) or index < 0:
                self.malformed += 1
            elif index in self.decisions:
                self.duplicates += 1
            else:
                self.decisions[index] = decision

    def summary(self, keep_decisions=False, expect=0):
        with self.lock:
            items = sorted(self.decisions.items())
            out = {
                "frames": len(items),
                "duplicates": self.duplicates,
                "without_frame_index": self.without_index,
                "malformed": self.malformed,
                "per_worker": dict(collections.Counter(d[3] for _, d in items)),
                "accuracy": (sum(d[0] == d[2] for _, d in items) / len(items)) if items else None,
            }
            if expect:
                missing = [i for i in range(expect) if i not in self.decisions]
                out["missing_count"] = len(missing)
                out["missing"] = missing[:MAX_LISTED_MISSING]
            if keep_decisions:
                out["decisions"] = {str(i): {"label": d[0], "exit": d[1], "worker": d[3]} for i, d in items}
            return out


def write_json(path, data):
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bind", default="tcp://127.0.0.1:5556", help="ZMQ PULL address to bind")
    p.add_argument("--expect", type=int, default=0, help="number of distinct frames to expect")
    p.add_argument("--exit-when-complete", action="store_true",
                   help="stop once --expect distinct frames are in")
    p.add_argument("--idle-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this long without a new decision (0 = never), and report "
                        "the missing frames")
    p.add_argument("--out", help="JSON summary file, kept up to date")
    p.add_argument("--keep-decisions", action="store_true", help="put every frame's decision in --out")
    args = p.parse_args(argv)

    tb = gr.top_block("amcee zmq gatherer")
    pull = zeromq.pull_msg_source(args.bind, 100, True)
    collector = decision_collector()
    tb.msg_connect(pull, "out", collector, "in")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tb.start()
    print(f"gatherer: listening on {args.bind}", flush=True)
    written = None
    last_change, seen = time.monotonic(), None
    while not stop.wait(timeout=0.2):  # the summary is rewritten at most 5 times a second
        summary = collector.summary(args.keep_decisions, args.expect)
        state = (summary["frames"], summary["duplicates"], summary["malformed"])
        if state != seen:
            last_change, seen = time.monotonic(), state
        if args.out and state != written:
            write_json(args.out, summary)
            written = state
        if args.exit_when_complete and args.expect and summary["frames"] >= args.expect:
            break
        if args.idle_timeout and time.monotonic() - last_change >= args.idle_timeout:
            print(f"gatherer: no new decision for {args.idle_timeout:g} s, stopping", flush=True)
            break
    tb.stop()
    tb.wait()
    summary = collector.summary(args.keep_decisions, args.expect)
    if args.out:
        write_json(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "decisions"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
