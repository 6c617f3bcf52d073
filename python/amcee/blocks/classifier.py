"""amcee.classifier: early-exit modulation classification of IQ vectors.

Input and output are the same vector stream, passed through unchanged.  Every
vector gets one stream tag ``amc`` whose value is a PMT dict (label, class,
confidence, entropy, exit, probs) and one PMT dict message (the same plus
offset and, when the input carries them, the ``snr``, ``label`` and
``frame_index`` tags of replayed data as ``snr`` / ``true_label`` /
``frame_index``) on the port of the exit that decided it (``exit0`` ..
``exit{K-1}``) and on ``classification``.  Vectors with NaN/Inf or all zeros
never reach the network: they pass through tagged ``invalid`` with exit -1 and
are published on ``classification`` only; so are the vectors of a network call
that failed, tagged ``error``.

With a model that has an SNR table (inference.snr_table) each frame's
thresholds come from its estimated SNR: the block's own estimate when
``estimate_snr`` is on (the code of amcee.snr_estimator), else the input's
``snr_est`` tag (amcee.snr_estimator upstream); a frame with none gets the
plain thresholds.  The ``snr`` tags of a replayed dataset (its true SNR) are
not used for this: the table's bins are of the estimator's SNR, which on a
faded channel reads low SNRs several dB high, and the true SNR put into
those bins costs accuracy the calibration never allowed
(docs/snr-aware-exit.md).  A frame's exit and class depend only on the frame,
its SNR value and the settings.

The per-frame work runs in C++ (lib/, through the pybind11 module
amcee_python), one call per work(): the frames' preparation for the network
(frame_prep.cc) and their tags and messages (decision_publisher.cc).  Python
keeps the parameters, the engine call and the batching rule (batching.py).
"""
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from ..amcee_python import decision_publisher, read_input_state, read_tag_numbers
from ..frames import LAYOUTS
from ..inference.engine import EarlyExitEngine
from ..inference.model_file import default_model_path, read_model_archive
from ..inference.snr_table import estimate_snr_db
from .batching import DEFAULT_MAX_LATENCY_MS, LatencyBoundBatching
from .schema import BATCH_PORT, CLASSIFICATION_PORT, SNR_EST_TAG_KEY, exit_port

#: The input layouts (frames.LAYOUTS): complex vectors of L, or RML rows of 2L floats.
INPUT_FORMATS = tuple(LAYOUTS)


def _rounded(values, digits=4):
    """Settings as short text for the log (thresholds may be per-class tables)."""
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(_rounded(v, digits) for v in values) + "]"
    return f"{values:.{digits}g}" if isinstance(values, float) else str(values)


class classifier(gr.sync_block):
    """Early-exit AMC block; see the module docstring and the GRC documentation."""

    @staticmethod
    def model_frame_len(model_path=""):
        """Samples per frame of the model file (empty: the shipped model), read
        from its checked metadata without running any of it: GRC sizes the
        block's ports with it when Frame Length is 0."""
        _, meta = read_model_archive(model_path or default_model_path(), trust_model_code=True)
        return int(meta["frame_len"])

    def __init__(self, model_path="", threshold=None, input_format="complex", frame_len=0,
                 max_batch=0, device="cpu", num_threads=2, num_exits=0, give_up=None,
                 max_latency=DEFAULT_MAX_LATENCY_MS, trust_model_code=False,
                 keep_freed_memory=True, estimate_snr=False, stream_tags=True):
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        model_path = model_path or default_model_path()
        # Everything is checked before the block exists: a bad model file,
        # threshold or device is an error here, never in work().
        # num_threads is applied in work()'s thread, not here: torch.set_num_threads
        # in the constructing (main) thread would change it for the whole program.
        if int(num_threads) < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch's default), got {num_threads}")
        model_batch = isinstance(max_batch, (int, np.integer)) and not isinstance(max_batch, bool) \
            and max_batch == 0  # 0: the engine's batch for the model (engine.default_batch)
        self.engine = EarlyExitEngine(model_path, thresholds=threshold, device=device,
                                      max_batch=None if model_batch else max_batch, give_up=give_up,
                                      trust_model_code=bool(trust_model_code),
                                      keep_freed_memory=bool(keep_freed_memory))
        if int(frame_len) and int(frame_len) != self.engine.frame_len:  # 0: the model's
            raise ValueError(f"frame_len {frame_len} does not match the model's frame length "
                             f"{self.engine.frame_len} ({model_path})")
        if num_exits and int(num_exits) != self.engine.num_exits:
            raise ValueError(f"num_exits {num_exits} does not match the model, which has "
                             f"{self.engine.num_exits} exits {self.engine.exit_names} ({model_path})")
        self._batching = LatencyBoundBatching(self.engine.max_batch, max_latency)
        self.frame_len = self.engine.frame_len
        # torch's CPU thread count is per calling thread (OpenMP), and work()
        # runs in GNU Radio's scheduler thread: set it there, on the first call.
        # Two threads by default: the engine loads single-threaded, so no other
        # OpenMP team slows this thread's, and a second thread speeds the block
        # up even on two cores (docs/performance.md).
        self._num_threads = int(num_threads)
        self._threads_set = False
        self.input_format = input_format
        if input_format == "complex":
            sig = (np.complex64, self.frame_len)
        else:
            sig = (np.float32, 2 * self.frame_len)
        gr.sync_block.__init__(self, name="amcee_classifier", in_sig=[sig], out_sig=[sig])
        # GNU Radio sizes the buffer upstream for the output multiple of the
        # blocks it feeds: announce two batches while the flowgraph is built,
        # so that one fills while the other is classified (batching.py);
        # start() drops it to 1.
        self.set_output_multiple(self._buffered_items())
        # One work() call is at most one network batch.
        self.set_max_noutput_items(self._batching.max_batch)
        self.set_blkd_input_timer_value(self._batching.timer_ms)

        self.model_path = model_path
        self._estimate_snr = bool(estimate_snr)
        self._publisher = decision_publisher(list(self.engine.classes), self.engine.num_exits)
        for k in range(self.engine.num_exits):
            self.message_port_register_out(pmt.intern(exit_port(k)))
        self.message_port_register_out(pmt.intern(CLASSIFICATION_PORT))
        self.message_port_register_out(pmt.intern(BATCH_PORT))
        self.set_stream_tags(stream_tags)
        self._counts_lock = threading.Lock()
        self._exit_counts = [0] * self.engine.num_exits
        self._invalid_count = 0
        self._error_count = 0
        self._error_logged = False
        self.logger = gr.logger("amcee.classifier")
        e = self.engine
        self.logger.info(f"model {e.model.version or model_path}: exits {list(e.exit_names)}, "
                         f"{'class thresholds' if any(isinstance(t, list) for t in e.thresholds) else 'thresholds ' + _rounded(e.thresholds)}, "
                         f"give-up {_rounded(e.give_up, 3)}, SNR table "
                         f"{'none' if e.snr_table is None else ('in use' if e.uses_snr_table else 'overridden by the thresholds')}"
                         f"{' (SNR estimated in the block)' if self._estimate_snr else ''}, "
                         f"device {e.device}, max batch {e.max_batch}, max latency {_rounded(float(max_latency), 3)} ms")

    # -- runtime parameters (GRC callbacks) -------------------------------------
    def set_threshold(self, threshold):
        """One float for all early exits, or one per early exit (each a float or
        one per class); None = the model's defaults and its SNR table; any
        other value overrides the SNR table.  Takes effect at the next work()."""
        self.engine.set_thresholds(threshold)

    def get_threshold(self):
        return self.engine.thresholds

    def set_give_up(self, give_up):
        """Give-up entropy per early exit (None = the model's default and its
        SNR table; any other value overrides the SNR table; inf disables)."""
        self.engine.set_give_up(give_up)

    def get_give_up(self):
        return self.engine.give_up

    def set_stream_tags(self, on):
        """Whether every vector is tagged ``amc`` (the messages are unaffected)."""
        self._publisher.set_stream_tags(bool(on))

    def stream_tags(self):
        return self._publisher.stream_tags()

    def estimate_snr(self):
        """Whether the block estimates each frame's SNR itself."""
        return self._estimate_snr

    def set_max_latency(self, max_latency):
        """The longest a frame may wait in the block for its batch (ms)."""
        self._batching.set_max_latency(max_latency)
        self.set_blkd_input_timer_value(self._batching.timer_ms)

    def get_max_latency(self):
        return self._batching.max_latency_s * 1000.0

    # -- counters -----------------------------------------------------------------
    def exit_counts(self):
        """Vectors decided by each exit so far (list of K ints)."""
        with self._counts_lock:
            return list(self._exit_counts)

    def invalid_count(self):
        """Vectors that could not be classified (NaN/Inf/all zeros)."""
        with self._counts_lock:
            return self._invalid_count

    def error_count(self):
        """Vectors of network calls that failed (tagged ``error``)."""
        with self._counts_lock:
            return self._error_count

    def reset_counts(self):
        with self._counts_lock:
            self._exit_counts = [0] * self.engine.num_exits
            self._invalid_count = 0
            self._error_count = 0

    def num_exits(self):
        return self.engine.num_exits

    def exit_names(self):
        return list(self.engine.exit_names)

    def classes(self):
        return list(self.engine.classes)

    # -- scheduling -----------------------------------------------------------------
    def start(self):
        self._threads_set = False  # every run has scheduler threads of its own
        self.set_output_multiple(1)
        _, _, capacity = read_input_state(self.gateway)
        self._batching.reset(capacity)
        self._publisher.reset()
        return True

    def stop(self):
        # The next run's buffers are sized again from the output multiple.
        self.set_output_multiple(self._buffered_items())
        return True

    def _buffered_items(self):
        return 2 * self._batching.max_batch

    def forecast(self, noutput_items, ninputs):
        available, done, _ = read_input_state(self.gateway)
        return [self._batching.inputs_required(noutput_items, available, done)]

    # -- stream processing ----------------------------------------------------------
    def _frame_snr(self, frames, n):
        """Each frame's SNR value (NaN: none), or None when the engine does
        not use an SNR table (then nothing is read or estimated)."""
        if not self.engine.uses_snr_table:
            return None
        if self._estimate_snr:
            return estimate_snr_db(frames)
        return read_tag_numbers(self.gateway, (SNR_EST_TAG_KEY,), self.nitems_read(0), n)

    def work(self, input_items, output_items):
        start = time.monotonic()
        if not self._threads_set:
            if self._num_threads > 0:
                import torch

                torch.set_num_threads(self._num_threads)
            self._threads_set = True
        x = input_items[0]
        n = len(x)
        output_items[0][:] = x
        frames = x if self.input_format == "complex" else x.reshape(n, 2, self.frame_len)
        try:
            result = self.engine.classify(frames, snr_db=self._frame_snr(frames, n))
            classes, exits = result.classes, result.exits
            probs, entropy = result.probs, result.entropy
            valid = result.valid
        except Exception as exc:  # a model that fails on some batch must not stop the flowgraph
            classes = np.full(n, decision_publisher.ERROR, dtype=np.int64)
            exits = np.full(n, -1, dtype=np.int64)
            probs = np.zeros((n, len(self.engine.classes)), dtype=np.float32)
            entropy = np.full(n, np.nan, dtype=np.float32)
            valid = None
            if not self._error_logged:
                self._error_logged = True
                self.logger.error(f"the model failed on a batch of {n} frames; they and any others that "
                                  f"fail are tagged 'error' (logged once): {type(exc).__name__}: {exc}")
        self._publisher.publish(self.gateway, self.nitems_written(0), classes, exits, probs, entropy)

        with self._counts_lock:
            if valid is None:
                self._error_count += n
            else:
                counts = np.bincount(exits[valid], minlength=self.engine.num_exits)
                for k in range(self.engine.num_exits):
                    self._exit_counts[k] += int(counts[k])
                self._invalid_count += int(n - np.count_nonzero(valid))
        self._batching.call_done(start, time.monotonic())
        return n
