#!/usr/bin/env python3
"""One classifier process: frames from the distributor in, decisions to the gatherer out.

zeromq.pull_source(pass_tags=True) -> amcee.classifier -> null sink, and
classifier.classification -> (adds "worker") -> zeromq.push_msg_sink, which
connects to the gatherer.  The frames' label/snr/frame_index tags come through
ZMQ with them, and the classifier copies them into every message, so the
gatherer can tell which frame each decision is for.  Runs until SIGINT/SIGTERM.
"""
import argparse
import signal
import sys
import threading

import pmt
from gnuradio import blocks, gr, zeromq
from gnuradio import amcee


class add_worker_id(gr.basic_block):
    """Adds {"worker": name} to every PMT dict message."""

    def __init__(self, name):
        gr.basic_block.__init__(self, name="add_worker_id", in_sig=None, out_sig=None)
        self._key, self._value = pmt.intern("worker"), pmt.intern(name)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        self.message_port_pub(pmt.intern("out"), pmt.dict_add(msg, self._key, self._value))


class worker(gr.top_block):
    def __init__(self, name, frames_from, decisions_to, model_path="", threshold=None, frame_len=128):
        gr.top_block.__init__(self, f"amcee zmq worker {name}")
        self.pull = zeromq.pull_source(gr.sizeof_gr_complex, frame_len, frames_from, 100, True, -1)
        self.classifier = amcee.classifier(model_path=model_path, threshold=threshold, frame_len=frame_len)
        self.stamp = add_worker_id(name)
        self.push = zeromq.push_msg_sink(decisions_to, 100, False)
        self.connect(self.pull, self.classifier, blocks.null_sink(gr.sizeof_gr_complex * frame_len))
        self.msg_connect(self.classifier, "classification", self.stamp, "in")
        self.msg_connect(self.stamp, "out", self.push, "in")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="worker name, added to its messages")
    p.add_argument("--frames-from", default="tcp://127.0.0.1:5555", help="distributor's PUSH address")
    p.add_argument("--decisions-to", default="tcp://127.0.0.1:5556", help="gatherer's PULL address")
    p.add_argument("--model", default="", help="exported model (default: the shipped one)")
    p.add_argument("--threshold", type=float, default=None, help="entropy threshold for all early exits")
    args = p.parse_args(argv)

    tb = worker(args.name, args.frames_from, args.decisions_to, args.model, args.threshold)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tb.start()
    print(f"worker {args.name}: {args.frames_from} -> {args.decisions_to}", flush=True)
    stop.wait()
    tb.stop()
    tb.wait()
    print(f"worker {args.name}: classified {sum(tb.classifier.exit_counts())} frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
