#!/usr/bin/env python3
"""Fan frames out: a dataset's frames, tagged label/snr/frame_index, to a ZMQ PUSH socket.

amcee.dataset_source -> zeromq.push_sink(pass_tags=True), bound to --bind.
Every worker that connects a PULL socket to it receives a share of the
frames (ZMQ PUSH deals messages round-robin over the connected workers; one
message holds at most --chunk frames).  Workers (re)connect at their own pace:
a fast burst goes to whichever is connected first, so --rate paces a dataset
replay as a live stream would be.  After the last frame of a finite stream
(no --repeat) the process waits --linger seconds, so that ZMQ can deliver
what is queued, and exits; SIGINT/SIGTERM stop it earlier.

gr-zeromq's sockets carry no authentication or encryption: anyone who can
reach the port can take frames.  The default binds loopback (127.0.0.1);
across machines, bind a private interface behind a firewall or carry the
traffic through an SSH tunnel or VPN.
"""
import argparse
import signal
import sys
import threading

from gnuradio import blocks, gr, zeromq
from gnuradio import amcee


class distributor(gr.top_block):
    def __init__(self, dataset, bind, split="all", seed=0, repeat=False, chunk=64, rate=0.0,
                 frame_len=128):
        gr.top_block.__init__(self, "amcee zmq distributor")
        self.source = amcee.dataset_source(dataset, layout="complex", repeat=repeat, split=split,
                                           seed=seed, frame_len=frame_len)
        self.push = zeromq.push_sink(gr.sizeof_gr_complex, frame_len, bind, 100, True, -1)
        # Small messages spread the frames over the workers instead of one big burst.
        self.push.set_max_noutput_items(chunk)
        chain = [self.source]
        if rate:
            chain.append(blocks.throttle(gr.sizeof_gr_complex * frame_len, rate, True))
        self.connect(*chain, self.push)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="dataset file (amcee .npz, RML pickle, SigMF recording)")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZMQ PUSH address to bind")
    p.add_argument("--split", default="all", choices=("all", "train", "val", "test"))
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--repeat", action="store_true", help="replay the frames forever")
    p.add_argument("--chunk", type=int, default=64, help="frames per ZMQ message at most")
    p.add_argument("--rate", type=float, default=0.0,
                   help="frames per second (0 = as fast as the workers take them)")
    p.add_argument("--linger", type=float, default=2.0, metavar="SECONDS",
                   help="after the last frame, time left to ZMQ to deliver queued frames before "
                        "the process exits (default: %(default)s)")
    args = p.parse_args(argv)
    if args.chunk < 1 or args.rate < 0 or args.linger < 0:
        p.error("--chunk must be >= 1, --rate and --linger >= 0")

    tb = distributor(args.dataset, args.bind, args.split, args.seed, args.repeat, args.chunk, args.rate)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tb.start()
    print(f"distributor: {tb.source.num_frames()} frames -> {args.bind}", flush=True)
    if args.repeat:
        stop.wait()
    else:
        finished = threading.Thread(target=tb.wait, daemon=True)  # returns at the end of the stream
        finished.start()
        while finished.is_alive() and not stop.wait(timeout=0.2):
            pass
        if not stop.is_set():
            print("distributor: all frames sent", flush=True)
            stop.wait(timeout=args.linger)
    tb.stop()
    tb.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
