"""The inference engine: frames in, early-exit decisions out.

Shared by the GNU Radio block, `amcee eval`, `amcee replay` and the benchmark,
so that all of them classify a frame identically.  It takes complex64 [N, L]
or float32 [N, 2, L] frames, sets aside frames that must not reach the network
(NaN, Inf, all zeros), L1-normalises the rest as the model's metadata says,
runs the exported model's batched early exit in chunks of ``max_batch`` and
returns one row per input frame.
"""
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..amcee_python import prepare_complex_frames, prepare_rml_frames
from . import exit_gating, malloc_tuning
from .model_file import ModelFileError, load_model, thresholds_tensor, validate_give_up

INVALID_EXIT = -1
INVALID_CLASS = -1
#: Frames per network call: large enough to amortise a call's overhead, small
#: enough that the first layers' activations stay in cache (docs/performance.md).
DEFAULT_BATCH = 256
#: Largest batch the engine accepts: a batch's buffers grow with it (2 x 4 bytes
#: x frame length per frame); a bigger one would fail as an allocation error.
MAX_BATCH = 1 << 16


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


class EarlyExitEngine:
    """Loads an exported model and classifies batches of frames with it."""

    def __init__(self, model_path, thresholds=None, device="cpu", num_threads=0, max_batch=None,
                 give_up=None, min_exit_share=None, keep_freed_memory=True, trust_model_code=False):
        """``keep_freed_memory``: apply malloc_tuning in this process (glibc
        keeps up to 64 MB of freed batch buffers instead of faulting them
        back in for every batch).  Process-wide and for the rest of the
        process: False leaves malloc as it was, unless another engine of the
        process asked for it.  ``trust_model_code``: load a file
        whose TorchScript code this package did not write (model_file.read_model_archive)."""
        max_batch = check_max_batch(DEFAULT_BATCH if max_batch is None else max_batch)
        if int(num_threads) < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch's default), got {num_threads}")
        if int(num_threads) > 0:
            torch.set_num_threads(int(num_threads))  # process-wide, as torch has it
        self.device = resolve_device(device)
        if keep_freed_memory:
            malloc_tuning.keep_freed_memory()
        self.model = load_model(model_path, device=self.device, trust_model_code=trust_model_code)
        self.max_batch = int(max_batch)
        self._lock = threading.Lock()
        self._thresholds = self._give_up = None
        self._threshold_values = self._give_up_values = self._min_exit_share_values = ()
        self._gate_tensors = {}
        self._probe_rows = int(self.model.module.probe_rows)  # as scripted into the file
        self.set_thresholds(self.model.default_thresholds if thresholds is None else thresholds)
        self.set_give_up(self.model.default_give_up if give_up is None else give_up)
        self.set_min_exit_share(self.model.default_min_exit_share if min_exit_share is None else min_exit_share)
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
        exit one per class (model_file.validate_thresholds)."""
        t, tensor = self._threshold_tensor(value)
        with self._lock:  # both fields change together for work()'s reader
            self._thresholds = tensor
            self._threshold_values = t
        return t

    def _threshold_tensor(self, value):
        """(checked thresholds, the tensor forward takes)."""
        t = self.model.check_thresholds(value)
        return t, thresholds_tensor(t, len(self.classes), self.device)

    @property
    def give_up(self):
        return self._give_up_values

    def set_give_up(self, value):
        """Give-up entropies per early exit (None = disabled), see model_file.validate_give_up."""
        g = validate_give_up(value, self.num_exits)
        tensor = torch.tensor(g, dtype=torch.float32, device=self.device)
        with self._lock:
            self._give_up = tensor
            self._give_up_values = g
        return g

    @property
    def min_exit_share(self):
        return self._min_exit_share_values

    def set_min_exit_share(self, value):
        """Exit gating per early exit (0 = off), see model_file.validate_min_exit_share."""
        m = self.model.check_min_exit_share(value)
        with self._lock:
            self._min_exit_share_values = m
            self._gate_memory = exit_gating.fresh(len(m))  # a new object: see classify
        return m

    def _gate_tensor(self, values):
        """The min_share tensor forward takes, or None when no exit is gated.
        Kept per distinct value list: a stream asks for a handful of them,
        batch after batch, and building the tensor anew each time costs more
        than looking it up."""
        if not any(values):
            return None
        key = tuple(values)
        tensor = self._gate_tensors.get(key)
        if tensor is None:
            tensor = torch.tensor(values, dtype=torch.float32, device=self.device)
            if len(self._gate_tensors) < 64:
                self._gate_tensors[key] = tensor
        return tensor

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
        try:  # settings of its own: the stream's exit-gating memory stays untouched
            self.classify(frames, thresholds=model.default_thresholds, give_up=model.default_give_up,
                          min_exit_share=model.default_min_exit_share)
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

    def classify(self, frames, thresholds=None, give_up=None, min_exit_share=None):
        """Early-exit classification of every frame.

        ``thresholds`` / ``give_up`` / ``min_exit_share`` override the
        engine's current values for this call only (e.g. a threshold sweep)."""
        t, g, shares, start, stream = self._call_settings(thresholds, give_up, min_exit_share)
        gated, memory = any(shares), start
        valid, batches = self._batches(frames)
        n, c = len(valid), len(self.classes)
        probs = np.zeros((n, c), dtype=np.float32)
        exits = np.full(n, INVALID_EXIT, dtype=np.int64)
        entropy = np.full(n, np.nan, dtype=np.float32)
        with torch.inference_mode():
            for rows, batch in batches:
                used = exit_gating.next_shares(shares, memory) if gated else None
                p, e, h = self.model.module(batch, t, g, None if used is None else self._gate_tensor(used))
                batch_exits = e.cpu().numpy()
                if gated:
                    counts = np.bincount(batch_exits, minlength=self.num_exits).tolist()
                    memory = exit_gating.after_batch(memory, shares, used, counts, self._probe_rows)
                probs[rows] = p.cpu().numpy()
                exits[rows] = batch_exits
                entropy[rows] = h.cpu().numpy()
        if stream and gated:
            with self._lock:
                if self._gate_memory is start:  # not reset (set_min_exit_share) or written meanwhile
                    self._gate_memory = memory
        return Classification(probs=probs, exits=exits, entropy=entropy, valid=valid)

    def _call_settings(self, thresholds, give_up, min_exit_share):
        """(thresholds tensor, give-up tensor, gating shares, gating memory,
        whether the call is the stream's) of a classify call: the engine's
        settings with the call's overrides.  The engine's own settings
        remember the stream across calls (exit_gating); a call with settings
        of its own starts afresh and leaves that memory as it was."""
        with self._lock:
            t, g = self._thresholds, self._give_up
            shares, memory = self._min_exit_share_values, self._gate_memory
        stream = thresholds is None and give_up is None and min_exit_share is None
        if thresholds is not None:
            t = self._threshold_tensor(thresholds)[1]
        if give_up is not None:
            g = torch.tensor(validate_give_up(give_up, self.num_exits), device=self.device)
        if min_exit_share is not None:
            shares = self.model.check_min_exit_share(min_exit_share)
        if not stream:
            memory = exit_gating.fresh(len(shares))
        return t, g, shares, memory, stream

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
