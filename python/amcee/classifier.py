"""amcee.classifier: early-exit modulation classification of IQ vectors.

Input and output are the same vector stream, passed through unchanged.  Every
vector gets one stream tag ``amc`` whose value is a PMT dict (label, class,
confidence, entropy, exit) and one PMT dict message (the same plus offset and,
when the input carries them, the ``snr``, ``label`` and ``frame_index`` tags of
replayed data as ``snr`` / ``true_label`` / ``frame_index``) on the port of the
exit that decided it (``exit0`` .. ``exit{K-1}``) and on ``classification``.  Vectors with NaN/Inf or all zeros
never reach the network: they pass through tagged ``invalid`` with exit -1 and
are published on ``classification`` only.

GNU Radio calls work() as soon as a few vectors are in (often 20-30 at a
time), and the network runs far better on larger batches.  ``min_batch``
makes the scheduler wait for that many vectors (throughput for file replay,
at the cost of latency on a slow live stream; the block upstream needs a
"min output buffer" of at least 2 x min_batch vectors, see the GRC docs).
GNU Radio 3.10 cannot rerun such a flowgraph (its buffers come back at the
default size): build a new one per run.
"""
import threading

import numpy as np
import pmt
from gnuradio import gr

from .engine import DEFAULT_BATCH, INVALID_CLASS, INVALID_EXIT, EarlyExitEngine, default_model_path
from .labels import INVALID_LABEL

TAG_KEY = pmt.intern("amc")
# Interned once: work() builds one dict per vector.
KEY_LABEL, KEY_CLASS, KEY_CONFIDENCE, KEY_ENTROPY, KEY_EXIT, KEY_OFFSET = (
    pmt.intern(k) for k in ("label", "class", "confidence", "entropy", "exit", "offset"))
CLASSIFICATION_PORT = "classification"
# input tag -> message field (frame_index lets fanned-out frames be matched up)
TRUTH_KEYS = {"snr": "snr", "label": "true_label", "frame_index": "frame_index"}
INPUT_FORMATS = ("complex", "rml")


def exit_port(k):
    return f"exit{k}"


def upstream_buffer(min_batch):
    """The min output buffer (in vectors) the block feeding a classifier with
    ``min_batch`` > 1 needs, and the classifier's own: two batches, so that
    one can fill while the other is classified."""
    return 2 * int(min_batch)


class classifier(gr.sync_block):
    """Early-exit AMC block; see the module docstring and the GRC documentation."""

    def __init__(self, model_path="", threshold=None, input_format="complex", frame_len=128,
                 max_batch=DEFAULT_BATCH, device="cpu", num_threads=1, num_exits=0, give_up=None,
                 min_batch=1, min_exit_share=None):
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        model_path = model_path or default_model_path()
        # Everything is checked before the block exists: a bad model file,
        # threshold or device is an error here, never in work().
        # num_threads is applied in work()'s thread, not here: torch.set_num_threads
        # in the constructing (main) thread would change it for the whole program.
        if int(num_threads) < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch's default), got {num_threads}")
        if int(min_batch) < 1:
            raise ValueError(f"min_batch must be >= 1 vector, got {min_batch}")
        self.engine = EarlyExitEngine(model_path, thresholds=threshold, device=device,
                                      max_batch=max_batch, give_up=give_up, min_exit_share=min_exit_share)
        if int(frame_len) != self.engine.frame_len:
            raise ValueError(f"frame_len {frame_len} does not match the model's frame length "
                             f"{self.engine.frame_len} ({model_path})")
        if num_exits and int(num_exits) != self.engine.num_exits:
            raise ValueError(f"num_exits {num_exits} does not match the model, which has "
                             f"{self.engine.num_exits} exits {self.engine.exit_names} ({model_path})")
        self.frame_len = self.engine.frame_len
        # torch's CPU thread count is per calling thread (OpenMP), and work()
        # runs in GNU Radio's scheduler thread: set it there, on the first call.
        # Measured here: 2 OpenMP threads in a scheduler thread ran the block at
        # about half the rate of 1 thread (4.7-5.0k vs 7.2-9.4k vectors/s).
        self._num_threads = int(num_threads)
        self._threads_set = False
        self.input_format = input_format
        if input_format == "complex":
            sig = (np.complex64, self.frame_len)
        else:
            sig = (np.float32, 2 * self.frame_len)
        gr.sync_block.__init__(self, name="amcee_classifier", in_sig=[sig], out_sig=[sig])
        self.min_batch = int(min_batch)
        if self.min_batch > 1:
            # The scheduler then calls work() with at least min_batch vectors as a
            # rule (fewer at the end of a stream, or where a buffer wraps).
            self.set_min_noutput_items(self.min_batch)
            self.set_min_output_buffer(upstream_buffer(self.min_batch))

        self.model_path = model_path
        self._labels = [pmt.intern(c) for c in self.engine.classes]
        # Small-integer PMTs made once: work() builds two dicts per vector.
        self._class_pmts = {c: pmt.from_long(c) for c in [*range(len(self.engine.classes)), INVALID_CLASS]}
        self._exit_pmts = {k: pmt.from_long(k) for k in [*range(self.engine.num_exits), INVALID_EXIT]}
        self._invalid_label = pmt.intern(INVALID_LABEL)
        self._ports = [pmt.intern(exit_port(k)) for k in range(self.engine.num_exits)]
        self._all_port = pmt.intern(CLASSIFICATION_PORT)
        for port in self._ports + [self._all_port]:
            self.message_port_register_out(port)
        self._truth = {}  # latest snr/label tag values: they hold until the next tag
        self._counts_lock = threading.Lock()
        self._exit_counts = [0] * self.engine.num_exits
        self._invalid_count = 0
        self.logger = gr.logger("amcee.classifier")
        self.logger.info(f"model {model_path}: exits {self.engine.exit_names}, thresholds "
                         f"{self.engine.thresholds}, give-up {self.engine.give_up}, "
                         f"exit gating {self.engine.min_exit_share}, device {self.engine.device}")

    # -- runtime parameters (GRC callbacks) -------------------------------------
    def set_threshold(self, threshold):
        """One float for all early exits, or one per early exit (each a float or
        one per class); None = the model's defaults.  Takes effect at the next work()."""
        if threshold is None:
            threshold = self.engine.model.default_thresholds
        self.engine.set_thresholds(threshold)

    def get_threshold(self):
        return self.engine.thresholds

    def set_give_up(self, give_up):
        """Give-up entropy per early exit (None = the model's default; inf disables)."""
        if give_up is None:
            give_up = self.engine.model.default_give_up
        self.engine.set_give_up(give_up)

    def get_give_up(self):
        return self.engine.give_up

    def set_min_exit_share(self, min_exit_share):
        """Exit gating per early exit (None = the model's default; 0 = off)."""
        if min_exit_share is None:
            min_exit_share = self.engine.model.default_min_exit_share
        self.engine.set_min_exit_share(min_exit_share)

    def get_min_exit_share(self):
        return self.engine.min_exit_share

    # -- counters -----------------------------------------------------------------
    def exit_counts(self):
        """Vectors decided by each exit so far (list of K ints)."""
        with self._counts_lock:
            return list(self._exit_counts)

    def invalid_count(self):
        """Vectors that could not be classified (NaN/Inf/all zeros)."""
        with self._counts_lock:
            return self._invalid_count

    def reset_counts(self):
        with self._counts_lock:
            self._exit_counts = [0] * self.engine.num_exits
            self._invalid_count = 0

    def num_exits(self):
        return self.engine.num_exits

    def exit_names(self):
        return list(self.engine.exit_names)

    def classes(self):
        return list(self.engine.classes)

    # -- stream processing ----------------------------------------------------------
    def _truth_per_vector(self, n, first):
        """For each of the n vectors, the snr/label tag values in force (sticky)."""
        tags = sorted(self.get_tags_in_window(0, 0, n), key=lambda t: t.offset)
        per_vector = []
        j = 0
        for i in range(n):
            while j < len(tags) and tags[j].offset <= first + i:
                field = TRUTH_KEYS.get(pmt.symbol_to_string(tags[j].key))
                if field is not None:
                    self._truth[field] = tags[j].value
                j += 1
            per_vector.append(dict(self._truth))
        return per_vector

    def work(self, input_items, output_items):
        if not self._threads_set:
            if self._num_threads > 0:
                import torch

                torch.set_num_threads(self._num_threads)
            self._threads_set = True
        x = input_items[0]
        n = len(x)
        output_items[0][:] = x
        first = self.nitems_written(0)
        frames = x if self.input_format == "complex" else x.reshape(n, 2, self.frame_len)
        result = self.engine.classify(frames)
        truth = self._truth_per_vector(n, first)
        classes = result.classes
        confidence = result.confidence

        counts = np.bincount(result.exits[result.valid], minlength=self.engine.num_exits)
        with self._counts_lock:
            for k in range(self.engine.num_exits):
                self._exit_counts[k] += int(counts[k])
            self._invalid_count += int(n - result.valid.sum())

        # Plain Python lists: indexing numpy arrays element by element is slow.
        exits, classes = result.exits.tolist(), classes.tolist()
        confidence, entropy = confidence.tolist(), result.entropy.tolist()
        for i in range(n):
            exit_k = exits[i]
            valid = exit_k != INVALID_EXIT
            info = pmt.make_dict()
            info = pmt.dict_add(info, KEY_LABEL, self._labels[classes[i]] if valid else self._invalid_label)
            info = pmt.dict_add(info, KEY_CLASS, self._class_pmts[classes[i]])
            info = pmt.dict_add(info, KEY_CONFIDENCE, pmt.from_double(confidence[i]))
            info = pmt.dict_add(info, KEY_ENTROPY, pmt.from_double(entropy[i]))
            info = pmt.dict_add(info, KEY_EXIT, self._exit_pmts[exit_k])
            self.add_item_tag(0, first + i, TAG_KEY, info)

            msg = pmt.dict_add(info, KEY_OFFSET, pmt.from_uint64(first + i))
            for field, value in truth[i].items():
                msg = pmt.dict_add(msg, pmt.intern(field), value)
            if valid:
                self.message_port_pub(self._ports[exit_k], msg)
            self.message_port_pub(self._all_port, msg)
        return n
