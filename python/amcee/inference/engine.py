"""The inference engine: frames in, early-exit decisions out.

Shared by the GNU Radio block, `amcee eval`, `amcee replay` and the benchmark,
so that all of them classify a frame identically.  It takes complex64 [N, L]
or float32 [N, 2, L] frames, sets aside frames that must not reach the network
(NaN, Inf, all zeros), L1-normalises the rest as the model's metadata says,
runs the exported model's batched early exit in chunks of ``max_batch`` and
returns one row per input frame.  A frame's result depends only on the frame,
its SNR value (when given) and the settings: never on the other frames of
the call or on earlier calls.
"""
import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..amcee_python import prepare_complex_frames, prepare_rml_frames
from . import malloc_tuning
from .model_file import ModelFileError, load_model, thresholds_tensor, validate_give_up
from .snr_table import model_snr_table, rule_tensors

INVALID_EXIT = -1
INVALID_CLASS = -1
#: What a default batch holds of the first convolution's output (elements):
#: 256 frames of 128 samples at the paper's 64 channels, the measured best for
#: the paper's backbone.  Frames per network call are large enough to amortise
#: a call's overhead and small enough that the first layers' activations stay
#: in cache, so a narrower stem or shorter frames take more frames per call,
#: longer frames fewer (measured: docs/performance.md, "Batch size").
BATCH_ACTIVATION_BUDGET = 64 * 128 * 256
#: The largest default batch: the largest measured (docs/performance.md,
#: "Batch size"), and a call still short beside the block's latency bound.
MAX_DEFAULT_BATCH = 1024
#: Largest batch the engine accepts: a batch's buffers grow with it (2 x 4 bytes
#: x frame length per frame); a bigger one would fail as an allocation error.
MAX_BATCH = 1 << 16


def default_batch(stem_channels, frame_len):
    """Frames per network call for a network whose first convolution has
    ``stem_channels`` outputs on frames of ``frame_len`` samples: the largest
    power of two within BATCH_ACTIVATION_BUDGET, from 1 to MAX_DEFAULT_BATCH."""
    frames = BATCH_ACTIVATION_BUDGET // (int(stem_channels) * int(frame_len))
    return 1 if frames < 1 else min(MAX_DEFAULT_BATCH, 1 << (frames.bit_length() - 1))


def check_max_batch(value):
    """``max_batch`` as an int in [1, MAX_BATCH] (no boolean, no fraction)."""
    whole = (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
             or isinstance(value, float) and value.is_integer())
    if not whole:
        raise ValueError(f"max_batch must be a whole number of frames, got {value!r}")
    if not 1 <= int(value) <= MAX_BATCH:
        raise ValueError(f"max_batch must be in [1, {MAX_BATCH}] frames, got {value!r}")
    return int(value)


@dataclass
class Classification:
    """Per-frame results; invalid frames have exit -1, class -1, entropy NaN."""

    probs: np.ndarray       # float32 [N, C]
    exits: np.ndarray       # int64 [N]
    entropy: np.ndarray     # float32 [N]
    valid: np.ndarray       # bool [N]

    @property
    def classes(self):
        out = self.probs.argmax(axis=1)
        out[~self.valid] = INVALID_CLASS
        return out

    @property
    def confidence(self):
        return self.probs.max(axis=1)


def resolve_device(device):
    """torch.device for 'cpu', 'cuda', 'cuda:N' or 'auto', with a clear error."""
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA device is available "
                             "(torch.cuda.is_available() is False); use 'cpu' or 'auto'")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return dev
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


@contextlib.contextmanager
def one_torch_thread():
    """Run torch single-threaded in this thread for the duration.

    With more than one thread torch's first parallel region in a thread starts
    an OpenMP team for it that lives as long as the thread.  GNU OpenMP
    shortens its workers' spin-wait to almost nothing once the process has
    more OpenMP threads than cores, so a team left in the main thread by a
    check at load time made the classifier block's two-thread inference in
    its scheduler thread about a third slower (docs/performance.md).
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class EarlyExitEngine:
    """Loads an exported model and classifies batches of frames with it."""

    def __init__(self, model_path, thresholds=None, device="cpu", num_threads=0, max_batch=None,
                 give_up=None, keep_freed_memory=True, trust_model_code=False):
        """``keep_freed_memory``: apply malloc_tuning in this process (glibc
        keeps up to 64 MB of freed batch buffers instead of faulting them
        back in for every batch).  Process-wide and for the rest of the
        process: False leaves malloc as it was, unless another engine of the
        process asked for it.  ``trust_model_code``: load a file
        whose TorchScript code this package did not write (model_file.read_model_archive).

        ``thresholds`` / ``give_up``: None = the model's.  With both the
        model's, frames given an SNR value (classify's ``snr_db``) are held
        to the model's SNR table (inference.snr_table) when it has one; a
        threshold or give-up value set by the user overrides the table.

        ``max_batch``: frames per network call; None = sized by the model
        (default_batch of its first convolution's width and its frame length)."""
        if max_batch is not None:  # None: sized by the model (default_batch), once it is loaded
            max_batch = check_max_batch(max_batch)
        if int(num_threads) < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch's default), got {num_threads}")
        if int(num_threads) > 0:
            torch.set_num_threads(int(num_threads))  # process-wide, as torch has it
        self.device = resolve_device(device)
        if keep_freed_memory:
            malloc_tuning.keep_freed_memory()
        with one_torch_thread():  # the load's checks run the network: no OpenMP team left here
            self.model = load_model(model_path, device=self.device, trust_model_code=trust_model_code)
            self.max_batch = default_batch(self.model.stem_channels, self.model.frame_len) \
                if max_batch is None else max_batch
            self._lock = threading.Lock()
            self._thresholds = self._give_up = None
            self._threshold_values = self._give_up_values = ()
            self._user_thresholds = self._user_give_up = False
            self.snr_table = model_snr_table(self.model)
            self._table_tensors = None
            if self.snr_table is not None:
                self._table_tensors = rule_tensors(self.snr_table, self.model.default_thresholds,
                                                   self.model.default_give_up, len(self.classes), self.device)
            self.set_thresholds(thresholds)
            self.set_give_up(give_up)
            self._check_full_batch()

    # -- model facts ----------------------------------------------------------
    @property
    def meta(self):
        return self.model.meta

    @property
    def classes(self):
        return self.model.classes

    @property
    def num_exits(self):
        return self.model.num_exits

    @property
    def frame_len(self):
        return self.model.frame_len

    @property
    def exit_names(self):
        return self.model.exit_names

    # -- thresholds (may change while a flowgraph runs) -------------------------
    @property
    def thresholds(self):
        return self._threshold_values

    def set_thresholds(self, value):
        """Entropy thresholds: one number, one per early exit, or per early
        exit one per class (model_file.validate_thresholds); None = the
        model's (and its SNR table, if any).  Any other value overrides the
        SNR table."""
        t, tensor = self._threshold_tensor(self.model.default_thresholds if value is None else value)
        with self._lock:  # the fields change together for work()'s reader
            self._thresholds = tensor
            self._threshold_values = t
            self._user_thresholds = value is not None
        return t

    def _threshold_tensor(self, value):
        """(checked thresholds, the tensor forward takes)."""
        t = self.model.check_thresholds(value)
        return t, thresholds_tensor(t, len(self.classes), self.device)

    @property
    def give_up(self):
        return self._give_up_values

    def set_give_up(self, value):
        """Give-up entropies per early exit (model_file.validate_give_up; inf
        or a None item = disabled); None = the model's (and its SNR table, if
        any).  Any other value overrides the SNR table."""
        g = validate_give_up(self.model.default_give_up if value is None else value, self.num_exits)
        tensor = torch.tensor(g, dtype=torch.float32, device=self.device)
        with self._lock:
            self._give_up = tensor
            self._give_up_values = g
            self._user_give_up = value is not None
        return g

    @property
    def uses_snr_table(self):
        """Whether frames given an SNR value are held to the model's SNR
        table: the model has one and no threshold or give-up value was set."""
        with self._lock:
            return self._table_in_use() is not None

    def _table_in_use(self):
        """The SNR table's tensors, or None when the model has no table or
        the user set thresholds or give-up values (the caller holds the lock)."""
        return None if self._user_thresholds or self._user_give_up else self._table_tensors

    # -- inference --------------------------------------------------------------
    def _prepare(self, frames):
        """(the valid frames L1-normalised, float32 [M, 2, L]; valid mask [N]),
        in one pass in C++ (frame_prep.cc) that also writes the layout the
        network takes: the only copy of the frames on their way to the tensor."""
        frames = np.asarray(frames)
        if np.iscomplexobj(frames):
            return prepare_complex_frames(np.ascontiguousarray(frames, np.complex64), self.frame_len)
        return prepare_rml_frames(np.ascontiguousarray(frames, np.float32), self.frame_len)

    def _check_full_batch(self):
        """Run one full batch of noise frames with the file's default settings:
        a file that passes the one-frame check at load but fails on larger
        batches fails here, not in a running flowgraph."""
        rng = np.random.default_rng(0)
        frames = rng.standard_normal((self.max_batch, 2, self.frame_len)).astype(np.float32)
        model = self.model
        try:
            self.classify(frames, thresholds=model.default_thresholds, give_up=model.default_give_up)
            if self._table_tensors is not None:  # every bin of the table, and frames without a value
                bins = np.arange(len(frames)) % (self.snr_table.num_bins + 1)
                edges = np.asarray((-np.inf,) + self.snr_table.edges_db + (np.nan,))
                self.classify(frames, snr_db=edges[bins])
        except Exception as exc:
            raise ModelFileError(f"{self.model.path}: model fails on a batch of {self.max_batch} frames "
                                 f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None

    def _batches(self, frames):
        """(valid mask, generator of (rows, normalised batch tensor)) over the valid frames."""
        x, valid = self._prepare(frames)
        idx = np.flatnonzero(valid)

        def generate():
            for start in range(0, len(x), self.max_batch):
                batch = torch.from_numpy(x[start:start + self.max_batch]).to(self.device)
                yield idx[start:start + self.max_batch], batch
        return valid, generate()

    def classify(self, frames, thresholds=None, give_up=None, snr_db=None):
        """Early-exit classification of every frame.

        ``thresholds`` / ``give_up`` override the engine's current values for
        this call only (e.g. a threshold sweep); an override, like a value
        set on the engine, also overrides the SNR table.  ``snr_db``: one SNR
        value (dB) per frame, NaN for a frame without one; with the model's
        SNR table in use (uses_snr_table) each frame is held to the
        thresholds of its SNR bin, else it is ignored."""
        t, g, table_rows = self._call_settings(thresholds, give_up, snr_db, len(frames))
        valid, batches = self._batches(frames)
        n, c = len(valid), len(self.classes)
        probs = np.zeros((n, c), dtype=np.float32)
        exits = np.full(n, INVALID_EXIT, dtype=np.int64)
        entropy = np.full(n, np.nan, dtype=np.float32)
        with torch.inference_mode():
            for rows, batch in batches:
                if table_rows is not None:  # per-row rule: each frame's row of the table
                    index = torch.from_numpy(table_rows[rows]).to(self.device)
                    p, e, h = self.model.module(batch, t.index_select(0, index), g.index_select(0, index))
                else:
                    p, e, h = self.model.module(batch, t, g)
                probs[rows] = p.cpu().numpy()
                exits[rows] = e.cpu().numpy()
                entropy[rows] = h.cpu().numpy()
        return Classification(probs=probs, exits=exits, entropy=entropy, valid=valid)

    def _call_settings(self, thresholds, give_up, snr_db, n):
        """(thresholds tensor, give-up tensor, table rows) of a classify
        call: the engine's settings with the call's overrides and None; with
        the SNR table in use and ``snr_db`` given, the table's tensors
        ([B+1, K-1, C], [B+1, K-1]) and each frame's row of them (int64 [n]),
        which classify looks up batch by batch (one copy of the settings per
        batch, not one of all frames' first)."""
        with self._lock:
            t, g = self._thresholds, self._give_up
            table = self._table_in_use()
        if thresholds is not None:
            t = self._threshold_tensor(thresholds)[1]
            table = None
        if give_up is not None:
            g = torch.tensor(validate_give_up(give_up, self.num_exits), device=self.device)
            table = None
        if snr_db is None or table is None:
            return t, g, None
        snr = np.asarray(snr_db, dtype=np.float64).reshape(-1)
        if len(snr) != n:
            raise ValueError(f"snr_db has {len(snr)} values for {n} frames (one per frame, NaN for none)")
        table_t, table_g = table
        # bin -1 (no SNR value) indexes the last row: the plain rule's
        return table_t, table_g, self.snr_table.bins(snr) % len(table_t)

    def backbone_probs(self, frames):
        """Probabilities of the backbone alone (no early-exit head runs)."""
        valid, batches = self._batches(frames)
        probs = np.zeros((len(valid), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for rows, batch in batches:
                probs[rows] = self.model.module.backbone(batch).cpu().numpy()
        return probs, valid

    def all_exit_probs(self, frames):
        """Probabilities of every exit for every valid frame: [K, N, C] (for eval/calibrate)."""
        valid, batches = self._batches(frames)
        out = np.zeros((self.num_exits, len(valid), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for rows, batch in batches:
                for k, logits in enumerate(self.model.module.exit_logits(batch)):
                    out[k, rows] = torch.softmax(logits, dim=1).cpu().numpy()
        return out, valid
