"""Model files: reading and checking them, and the format they share.

A model file is a TorchScript archive whose forward does the batched early
exit (network.architecture.EarlyExitNet.forward) and whose metadata travels
inside it as the TorchScript extra file ``amcee.json``: class labels in index
order, frame length, input layout and normalisation, exit names, default
thresholds, give-up values and exit gating, entropy base and per-exit compute
cost.  A flowgraph needs only torch and this module to load one: no training
code, no model class.  network.export is the one writer of these files.
"""
import json
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
import torch

METADATA_FILE = "amcee.json"
FORMAT = "amcee-early-exit-model"
FORMAT_VERSION = 1
REQUIRED_METHODS = ("forward", "backbone", "exit_logits")
REQUIRED_KEYS = ("format", "format_version", "classes", "frame_len", "num_exits",
                 "exit_names", "thresholds", "give_up", "entropy_base", "normalization",
                 "input_layout", "model_version")

#: Longest model version: a name like amcee-default-6 (the description goes in its own field).
MAX_VERSION_LENGTH = 64

#: The format tag of an `amcee train` checkpoint (network.checkpoint writes
#: it): what tells a checkpoint given in place of a model file.
CHECKPOINT_FORMAT = "amcee-checkpoint-1"

#: The model shipped with the module, installed in its models/ folder.
DEFAULT_MODEL_NAME = "amcee_default.pt"


def default_model_path():
    """Path of the shipped default model (what an empty model path means)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(package, "models", DEFAULT_MODEL_NAME)


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or not an amcee model."""


def torch_file_kind(path):
    """What torch archive ``path`` is, read from the zip without unpickling
    anything: "torchscript" (torch.jit.save, e.g. an exported model: code/ and
    constants.pkl), "checkpoint" (an `amcee train` checkpoint, best.pt or
    last.pt), "torch.save" (another torch.save file, e.g. a bare state dict)
    or None (not a torch archive)."""
    try:
        with zipfile.ZipFile(path) as archive:
            inside = {name.split("/", 1)[1]: name for name in archive.namelist() if "/" in name}
            if "constants.pkl" in inside or any(name.startswith("code/") for name in inside):
                return "torchscript"
            if "data.pkl" not in inside:
                return None
            # The format tag is a plain string in the pickle of a checkpoint's dict.
            marker = CHECKPOINT_FORMAT.encode()
            return "checkpoint" if marker in archive.read(inside["data.pkl"]) else "torch.save"
    except (zipfile.BadZipFile, OSError):
        return None


def check_model_version(version):
    """A model version is a short name without spaces (e.g. amcee-default-6);
    what the model is goes in the metadata's ``description``."""
    text = str(version).strip()
    if not text or re.search(r"\s", text) or len(text) > MAX_VERSION_LENGTH:
        raise ValueError(f"model version must be a short name without spaces, e.g. amcee-default-7 (at "
                         f"most {MAX_VERSION_LENGTH} characters; describe the model with --description), "
                         f"got {str(version)[:80]!r}")
    return text


def model_version_parts(meta):
    """(version, description) of a model's metadata.  Files exported before the
    ``description`` field kept both in ``model_version``, e.g.
    "amcee-default-6 (V0+V1 conv heads+final; ...)": the version is its first
    word, the rest (without the parentheses) the description."""
    text = str(meta.get("model_version") or "unversioned").strip()
    version, _, rest = text.partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1].strip()
    return version.rstrip(":;,"), str(meta.get("description") or rest)


@dataclass
class LoadedModel:
    module: torch.jit.ScriptModule
    meta: dict
    path: str

    @property
    def classes(self):
        return tuple(self.meta["classes"])

    @property
    def version(self):
        """The short model version (model_version_parts)."""
        return model_version_parts(self.meta)[0]

    @property
    def description(self):
        """What the model is, in words ("" when the file does not say)."""
        return model_version_parts(self.meta)[1]

    @property
    def num_exits(self):
        return int(self.meta["num_exits"])

    @property
    def frame_len(self):
        return int(self.meta["frame_len"])

    @property
    def exit_names(self):
        return tuple(self.meta["exit_names"])

    @property
    def default_thresholds(self):
        return validate_thresholds(self.meta["thresholds"], self.num_exits, len(self.classes))

    @property
    def default_give_up(self):
        return validate_give_up(self.meta["give_up"], self.num_exits)

    @property
    def default_min_exit_share(self):
        """Exit gating of the file (0 = off); files without the field have it off."""
        return validate_min_exit_share(self.meta.get("min_exit_share"), self.num_exits)

    @property
    def supports_exit_gating(self):
        """Whether the file's forward takes min_exit_share (files exported
        before exit gating existed take three arguments)."""
        return len(self.module.forward.schema.arguments) >= 5  # self, x, thresholds, give_up, min_share

    @property
    def supports_class_thresholds(self):
        """Whether the file's forward takes one threshold per class (files
        exported before class thresholds existed have no forward_features)."""
        return hasattr(self.module, "forward_features") and \
            "class_thresholds" in self.module.forward_features()

    def check_thresholds(self, value):
        """validate_thresholds, and class thresholds only where the file has them."""
        values = validate_thresholds(value, self.num_exits, len(self.classes))
        if any(isinstance(t, tuple) for t in values) and not self.supports_class_thresholds:
            raise ValueError(f"{self.path} was exported before class thresholds existed: give one "
                             "threshold per early exit (export the model again to use them)")
        return values

    def check_min_exit_share(self, value):
        """validate_min_exit_share, and a non-zero share only where the file can gate."""
        values = validate_min_exit_share(value, self.num_exits)
        if any(values) and not self.supports_exit_gating:
            raise ValueError(f"{self.path} was exported before exit gating existed: "
                             "min_exit_share must be 0 (export the model again to use it)")
        return values


def validate_thresholds(value, num_exits, num_classes=None):
    """Per-early-exit entropy thresholds from one number, or a list with one
    item per early exit: a number, or (``num_classes`` given) a list of one
    number per class -- a class threshold holds the frames predicted as that
    class (exit_rule.leaves).

    A threshold T is a finite number >= 0; a frame leaves an exit when its
    entropy E <= T.  T = 0 keeps (almost) every frame going to the final exit;
    T >= log10(num_classes) sends every frame out of the first exit.  Returns
    a tuple of floats and, for class thresholds, tuples of floats.
    """
    n = num_exits - 1
    shape = f"a number or a list of {n} numbers" + (
        f" (or of lists of {num_classes} numbers, one per class)" if num_classes else "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * n
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        items = list(value)
    except TypeError:
        raise ValueError(f"threshold must be {shape}, got {value!r}") from None
    if len(items) != n:
        raise ValueError(f"threshold list has {len(items)} values but the model has {n} early exit(s)")
    values = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, (str, bytes)):
                raise TypeError
            per_class = num_classes is not None and hasattr(item, "__len__")
            t = tuple(float(v) for v in item) if per_class else float(item)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be {shape}, got {value!r}") from None
        if per_class and len(t) != num_classes:
            raise ValueError(f"class thresholds of exit {i} have {len(t)} values but the model has "
                             f"{num_classes} classes")
        for v in (t if per_class else (t,)):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"threshold of exit {i} must be finite and >= 0, got {v}")
        values.append(t)
    return tuple(values)


def format_thresholds(thresholds, exit_names, classes):
    """Thresholds as short text: 'V0 0.2105, V1 0.2339', or with class
    thresholds 'V0 (QAM16 0.454, QAM64 0.318, ...), V1 0.2339'."""
    parts = []
    for name, t in zip(exit_names, thresholds):
        if isinstance(t, (list, tuple)):
            parts.append(f"{name} (" + ", ".join(f"{c} {v:.3g}" for c, v in zip(classes, t)) + ")")
        else:
            parts.append(f"{name} {t:.4g}")
    return ", ".join(parts)


def thresholds_tensor(values, num_classes, device="cpu"):
    """Validated thresholds as forward takes them: [K-1] when every exit has
    one number (so files from before class thresholds run them), else
    [K-1, C] with a number repeated over the classes."""
    if not any(isinstance(t, tuple) for t in values):
        return torch.tensor(values, dtype=torch.float32, device=device)
    rows = [list(t) if isinstance(t, tuple) else [t] * num_classes for t in values]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def thresholds_to_json(values):
    """Thresholds (numbers, or per-class tuples/arrays) as JSON lists."""
    return [float(t) if np.ndim(t) == 0 else [float(v) for v in t] for t in values]


def validate_give_up(value, num_exits):
    """Per-early-exit give-up entropies: None / inf = disabled, else finite >= 0.

    A frame whose entropy at an early exit is >= its give-up value leaves
    there although unsure: the deeper layers are not expected to do better on
    it (a very noisy frame).  Returns a tuple with math.inf for disabled exits.
    """
    values = _per_early_exit(value, num_exits, math.inf, "give-up threshold", "give-up list")
    for i, g in enumerate(values):
        if math.isnan(g) or g < 0:
            raise ValueError(f"give-up threshold of exit {i} must be >= 0 or None (disabled), got {g}")
    return values


def validate_min_exit_share(value, num_exits):
    """Exit gating per early exit (exit_gating; EarlyExitNet.forward): the share of
    a batch's probed rows that must leave an exit for its head to run on the
    whole batch.  None = 0 = off (the head always runs); one number or one
    per early exit, each in [0, 1]."""
    values = _per_early_exit(value, num_exits, 0.0, "min_exit_share", "min_exit_share list")
    for i, v in enumerate(values):
        if not 0.0 <= v <= 1.0:  # also refuses NaN
            raise ValueError(f"min_exit_share of exit {i} must be in [0, 1] (0 = the head always runs), got {v}")
    return values


def _per_early_exit(value, num_exits, missing, what, list_name):
    """A tuple of one float per early exit from None (all ``missing``), one
    number, or a list whose None items are ``missing``; errors name ``what``."""
    n = num_exits - 1
    if value is None:
        return (missing,) * n
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * n
    try:
        values = [missing if v is None else float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be None, a number or a list of {n} numbers, got {value!r}") from None
    if len(values) != n:
        raise ValueError(f"{list_name} has {len(values)} values but the model has {n} early exit(s)")
    return tuple(values)


def give_up_to_json(values):
    """JSON has no infinity: disabled give-up values are stored as null."""
    return [None if math.isinf(v) else v for v in values]


def _check_metadata(meta, path):
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {meta.get('format_version')!r} is not supported "
            f"(this gr-amcee reads version {FORMAT_VERSION})")
    if missing:
        raise ModelFileError(f"{path}: metadata lacks {', '.join(missing)}")
    k = meta["num_exits"]
    if not isinstance(k, int) or k < 2 or len(meta["exit_names"]) != k:
        raise ModelFileError(f"{path}: metadata has inconsistent exits ({k}, {meta['exit_names']})")
    if len(meta["thresholds"]) != k - 1 or len(meta["give_up"]) != k - 1:
        raise ModelFileError(f"{path}: metadata has {len(meta['thresholds'])} thresholds and "
                             f"{len(meta['give_up'])} give-up values for {k} exits")
    if meta["normalization"] != "l1" or meta["entropy_base"] != 10:
        raise ModelFileError(f"{path}: unsupported normalisation/entropy base in metadata")


def load_model(path, device="cpu"):
    """Load and check an exported model; every problem is a ModelFileError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    kind = torch_file_kind(path)
    if kind == "checkpoint":
        raise ModelFileError(f"{path} is a training checkpoint, not an exported model: export it with "
                             f"`amcee export {path} --out MODEL.pt` and give MODEL.pt")
    if kind == "torch.save":
        raise ModelFileError(f"{path} is a torch.save file (tensors, a state dict), not an amcee model: "
                             "models are exported from training checkpoints with `amcee export`")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError/ValueError/... for foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a readable TorchScript model file ({first_line})") from None
    if not extra[METADATA_FILE]:
        raise ModelFileError(
            f"{path} is a TorchScript file but not an amcee model: it has no {METADATA_FILE} metadata "
            "(export models with `amcee export`)")
    try:
        meta = json.loads(extra[METADATA_FILE])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: {METADATA_FILE} metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: {METADATA_FILE} metadata is not a JSON object")
    _check_metadata(meta, path)
    for method in REQUIRED_METHODS:
        if not hasattr(module, method):
            raise ModelFileError(f"{path}: model lacks the TorchScript method {method}()")
    _smoke_test(module, meta, path, device)
    return LoadedModel(module=module, meta=meta, path=path)


def _smoke_test(module, meta, path, device):
    """Run one frame so that a file whose metadata lies fails here, not in a flowgraph."""
    x = torch.full((1, 2, meta["frame_len"]), 1.0 / (2 ** 0.5 * meta["frame_len"]), device=device)
    thresholds = torch.zeros(meta["num_exits"] - 1, device=device)
    give_up = torch.full((meta["num_exits"] - 1,), math.inf, device=device)
    try:
        with torch.inference_mode():
            probs, exits, entropy = module(x, thresholds, give_up)
    except Exception as exc:
        raise ModelFileError(f"{path}: model does not run on a [1, 2, {meta['frame_len']}] frame ({exc})") from None
    if tuple(probs.shape) != (1, len(meta["classes"])) or exits.shape != (1,) or entropy.shape != (1,):
        raise ModelFileError(
            f"{path}: model outputs {tuple(probs.shape)} probabilities for {len(meta['classes'])} classes")
