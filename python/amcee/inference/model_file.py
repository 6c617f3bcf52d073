"""Model files: reading and checking them, and the format they share.

A model file is a TorchScript archive whose forward does the batched early
exit (network.architecture.EarlyExitNet.forward) and whose metadata travels
inside it as the TorchScript extra file ``amcee.json``: class labels in index
order, frame length, input layout and normalisation, exit names, default
thresholds and give-up values, the optional SNR-conditioned exit table
(snr_table), entropy base and per-exit compute cost.  A flowgraph needs only torch and this module to load one: no training
code, no model class.  network.export is the one writer of these files.
"""
import contextlib
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch

METADATA_FILE = "amcee.json"
#: The metadata field of the SNR-conditioned exit table (inference.snr_table reads it).
SNR_TABLE_KEY = "snr_table"
FORMAT = "amcee-early-exit-model"
#: Version 2: every forward takes class thresholds (version 1 files could
#: lack them).  Version 3: the metadata holds a digest of the weights
#: (weights_sha256), so that weights changed after export are refused even
#: where the zip's CRCs were rewritten.  Version 4: the forward takes per-row
#: thresholds (the SNR-conditioned table, inference.snr_table) and no longer
#: exit gating (it made a frame's exit depend on its batch neighbours).
#: Older files are refused: export them again.
FORMAT_VERSION = 4
REQUIRED_METHODS = ("forward", "backbone", "exit_logits")
REQUIRED_KEYS = ("format", "format_version", "classes", "frame_len", "num_exits",
                 "exit_names", "thresholds", "give_up", "entropy_base", "normalization",
                 "input_layout", "model_version", "weights_sha256")

#: Longest model version: a name like amcee-default-6 (the description goes in its own field).
MAX_VERSION_LENGTH = 64

#: The format tag of an `amcee train` checkpoint (network.checkpoint writes
#: it): what tells a checkpoint given in place of a model file.
CHECKPOINT_FORMAT = "amcee-checkpoint-1"

#: The model shipped with the module, installed in its models/ folder.
DEFAULT_MODEL_NAME = "amcee_default.pt"


#: The paper's backbone (no early exit) trained like the default model on the
#: same data, shipped as what its speed and accuracy are compared with
#: (``amcee bench``'s reference section).
REFERENCE_MODEL_NAME = "paper_backbone.pt"


def shipped_model_path(name):
    """Path of a model file shipped in the module's models/ folder."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(package, "models", name)


def default_model_path():
    """Path of the shipped default model (what an empty model path means)."""
    return shipped_model_path(DEFAULT_MODEL_NAME)


def reference_model_path():
    """Path of the shipped reference: the paper's backbone (REFERENCE_MODEL_NAME)."""
    return shipped_model_path(REFERENCE_MODEL_NAME)


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
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError):
        # ValueError: e.g. a member name that is not the UTF-8 its flag claims (a damaged file)
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
    def stem_channels(self):
        """Output channels of the network's first convolution (its widest
        early activation: channels x frame length per frame), read from the
        weights, which every file has, whatever its metadata's age."""
        for _, tensor in self.module.named_buffers():
            if tensor.dim() == 4:  # the inference graph's convolutions: [out, in, 1, taps]
                return int(tensor.shape[0])
        raise ModelFileError(f"{self.path}: the network has no convolution")

    @property
    def default_thresholds(self):
        return validate_thresholds(self.meta["thresholds"], self.num_exits, len(self.classes))

    @property
    def default_give_up(self):
        return validate_give_up(self.meta["give_up"], self.num_exits)

    def check_thresholds(self, value):
        """validate_thresholds for this model's exits and classes."""
        return validate_thresholds(value, self.num_exits, len(self.classes))



def number(value, what):
    """``value`` as a float: a real number, never a boolean (True is no
    threshold, though Python counts it as 1)."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    return float(value)


#: The threshold of an exit that is off: no entropy is at most it, so no
#: frame leaves there, and where the give-up value is off too the exit's head
#: does not run (EarlyExitNet._closed_rows).  ``null`` in JSON, None from the
#: user; -inf, which no user's threshold can be, so that the validated
#: values go through validation again unchanged.
EXIT_OFF = float("-inf")


def validate_thresholds(value, num_exits, num_classes=None):
    """Per-early-exit entropy thresholds from one number, or a list with one
    item per early exit: a number, or (``num_classes`` given) a list of one
    number per class -- a class threshold holds the frames predicted as that
    class (exit_rule.leaves).

    A threshold T is a finite number >= 0; a frame leaves an exit when its
    entropy E <= T.  T = 0 keeps (almost) every frame going to the final exit;
    T >= log10(num_classes) sends every frame out of the first exit.  None
    for an exit turns it off: no frame leaves there, and with
    no give-up value there its head does not run.  Returns a tuple of floats
    (EXIT_OFF for an exit that is off) and, for class thresholds, tuples of
    floats.
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
        if item is None or (isinstance(item, float) and item == EXIT_OFF):
            values.append(EXIT_OFF)
            continue
        try:
            if isinstance(item, (str, bytes)):
                raise TypeError
            per_class = num_classes is not None and hasattr(item, "__len__")
            t = tuple(number(v, "threshold") for v in item) if per_class else number(item, "threshold")
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
    thresholds 'V0 (QAM16 0.454, QAM64 0.318, ...), V1 0.2339'; a model
    without early exits has none."""
    if not len(thresholds):
        return "none (no early exit)"
    parts = []
    for name, t in zip(exit_names, thresholds):
        if not isinstance(t, (list, tuple)) and t == EXIT_OFF:
            parts.append(f"{name} off")
        elif isinstance(t, (list, tuple)):
            parts.append(f"{name} (" + ", ".join(f"{c} {v:.3g}" for c, v in zip(classes, t)) + ")")
        else:
            parts.append(f"{name} {t:.4g}")
    return ", ".join(parts)


def thresholds_tensor(values, num_classes, device="cpu"):
    """Validated thresholds as forward takes them: [K-1] when every exit has
    one number, else [K-1, C] with a number repeated over the classes."""
    if not any(isinstance(t, tuple) for t in values):
        return torch.tensor(values, dtype=torch.float32, device=device)
    rows = [list(t) if isinstance(t, tuple) else [t] * num_classes for t in values]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def thresholds_to_json(values):
    """Thresholds (numbers, or per-class tuples/arrays; EXIT_OFF: null) as JSON lists."""
    return [(None if float(t) == EXIT_OFF else float(t)) if np.ndim(t) == 0 else [float(v) for v in t]
            for t in values]


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


def _per_early_exit(value, num_exits, missing, what, list_name):
    """A tuple of one float per early exit from None (all ``missing``), one
    number, or a list whose None items are ``missing``; errors name ``what``."""
    n = num_exits - 1
    if value is None:
        return (missing,) * n
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * n
    try:
        values = [missing if v is None else number(v, what) for v in value]
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
            f"(this gr-amcee reads version {FORMAT_VERSION}): export it again with `amcee export`")
    if missing:
        raise ModelFileError(f"{path}: metadata lacks {', '.join(missing)}")
    k = meta["num_exits"]
    if not isinstance(k, int) or k < 1 or len(meta["exit_names"]) != k:
        raise ModelFileError(f"{path}: metadata has inconsistent exits ({k}, {meta['exit_names']})")
    if len(meta["thresholds"]) != k - 1 or len(meta["give_up"]) != k - 1:
        raise ModelFileError(f"{path}: metadata has {len(meta['thresholds'])} thresholds and "
                             f"{len(meta['give_up'])} give-up values for {k} exits")
    if meta["normalization"] != "l1" or meta["entropy_base"] != 10:
        raise ModelFileError(f"{path}: unsupported normalisation/entropy base in metadata")


#: Largest model file read (the shipped one is about 0.3 MB).
MAX_MODEL_FILE_BYTES = 1 << 30
#: Largest metadata, network frame length and class count a file may declare:
#: bounds on what the code check builds before anything of the file runs.
MAX_METADATA_BYTES = 16 << 20
MAX_FRAME_LEN = 1 << 16
MAX_CLASSES = 4096

_CODE_REFERENCE = None
_REFERENCE_CACHE = {}
_TEMPORARY = re.compile(r"\b_\d+\b")
_MANGLE = re.compile(r"___torch_mangle_\d+\.|\.___torch_mangle_\d+\b")


_TRUST_ALL = False


@contextlib.contextmanager
def trusted_model_code():
    """Within this block every load_model trusts the file's code (the CLI's
    --trust-model-code: the user's word for the files of one command)."""
    global _TRUST_ALL
    before, _TRUST_ALL = _TRUST_ALL, True
    try:
        yield
    finally:
        _TRUST_ALL = before


def register_code_reference(reference):
    """Set the function {network config: code entries} that the code check
    compares files with (network.model_code registers its reference_code
    when imported; this layer may not import it)."""
    global _CODE_REFERENCE
    _CODE_REFERENCE = reference


def is_code_entry(name):
    """Whether a member of a TorchScript archive is TorchScript source (the
    ``code/`` entries torch compiles and runs; their .debug_pkl siblings hold
    only source ranges for error messages)."""
    parts = name.split("/")
    return len(parts) > 2 and parts[1] == "code" and name.endswith(".py")


def _normalised_code(code):
    """The code entries as the set of their top-level classes and functions,
    with torch's class-name counters (``___torch_mangle_N``) removed.  Which
    class gets which counter, and which file it is in, depends on what the
    process scripted before (torch reuses and numbers class types per
    process); the classes and functions themselves do not."""
    blocks = []
    for text in code.values():
        current = []
        for line in _MANGLE.sub("", text).splitlines():
            if line and not line[0].isspace() and current:
                blocks.append(current)
                current = []
            current.append(line)
        if current:
            blocks.append(current)
    return frozenset(_renumber_temporaries("\n".join(block)) for block in blocks)


def _renumber_temporaries(block):
    """The printer's temporaries (_0, _1, ...) renamed in order of first use:
    their numbers run on through a file, so they depend on which classes
    share it.  A consistent renaming within a block changes no meaning."""
    names = {}
    return _TEMPORARY.sub(lambda m: names.setdefault(m.group(0), f"_{len(names)}"), block)


def _reference_code(config, path):
    """The exporter's code entries for ``config``, once per process and config."""
    key = json.dumps(config, sort_keys=True)
    if key not in _REFERENCE_CACHE:
        if _CODE_REFERENCE is not None:
            try:
                code = _CODE_REFERENCE(config)
            except ValueError as exc:
                raise ModelFileError(f"{path}: metadata holds no valid network config ({exc})") from None
        else:
            code = _reference_code_in_subprocess(config, path)
        _REFERENCE_CACHE[key] = _normalised_code(code)
    return _REFERENCE_CACHE[key]


def _reference_code_in_subprocess(config, path):
    """network.model_code run as a program: a flowgraph's process loads no network code."""
    package = __name__.rsplit(".", 2)[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        proc = subprocess.run([sys.executable, "-m", f"{package}.network.model_code"], input=json.dumps(config),
                              capture_output=True, text=True, env=env, timeout=600)
        result = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise ModelFileError(f"{path}: could not build the reference code to check the file against "
                             f"({exc}; {proc.stderr.strip()[-300:] if 'proc' in locals() else ''})") from None
    if "error" in result:
        raise ModelFileError(f"{path}: metadata holds no valid network config ({result['error']})")
    return result["code"]


def _check_metadata_types(meta, path):
    """Types and bounds of the metadata fields the loader and the code check use."""
    def need(ok, what):
        if not ok:
            raise ModelFileError(f"{path}: metadata field {what}")

    classes, exit_names = meta.get("classes"), meta.get("exit_names")
    need(isinstance(classes, list) and 2 <= len(classes) <= MAX_CLASSES
         and all(isinstance(c, str) for c in classes), f"classes must be a list of 2 to {MAX_CLASSES} names")
    need(isinstance(exit_names, list) and all(isinstance(e, str) for e in exit_names),
         "exit_names must be a list of names")
    frame_len = meta.get("frame_len")
    need(type(frame_len) is int and 8 <= frame_len <= MAX_FRAME_LEN and frame_len % 8 == 0,
         f"frame_len must be a multiple of 8 in [8, {MAX_FRAME_LEN}], got {frame_len!r}")
    need(type(meta.get("num_exits")) is int, f"num_exits must be an integer, got {meta.get('num_exits')!r}")
    for key in ("thresholds", "give_up"):
        need(isinstance(meta.get(key), list), f"{key} must be a list")
    need(meta.get(SNR_TABLE_KEY) is None or isinstance(meta[SNR_TABLE_KEY], dict),
         f"{SNR_TABLE_KEY} must be an object (inference.snr_table) or null")
    digest = meta.get("weights_sha256")
    need(isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
         "weights_sha256 must be 64 hexadecimal digits")
    config = meta.get("config")
    need(isinstance(config, dict), "config (the network's) must be an object")
    need(config.get("frame_len") == frame_len and config.get("num_classes") == len(classes)
         and isinstance(config.get("exits"), list) and len(config["exits"]) + 1 == meta["num_exits"],
         "config disagrees with frame_len, classes or num_exits")


def read_model_archive(path, trust_model_code=False):
    """Check a model file before torch runs any of it; returns (bytes, metadata).

    Every member's CRC is verified (torch does not: a flipped byte in the
    weights loads with other outputs), the metadata is read from the zip,
    and, unless ``trust_model_code``, the TorchScript code the file carries
    must be what this package's exporter writes for the file's network
    config (network.model_code): torch compiles and runs that code while
    loading, and it can read and write files.  The bytes checked are the
    bytes torch loads (no second read of a file that may have changed)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    try:
        size = os.path.getsize(path)
        if size > MAX_MODEL_FILE_BYTES:
            raise ModelFileError(f"{path}: {size} bytes, larger than any model file "
                                 f"({MAX_MODEL_FILE_BYTES} bytes at most)")
        with open(path, "rb") as f:
            data = f.read()
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a readable TorchScript model file (not a zip archive: {exc})") \
            from None
    with archive:
        members = archive.infolist()
        unpacked = sum(m.file_size for m in members)
        if unpacked > MAX_MODEL_FILE_BYTES:
            # torch compresses only the code entries: more than this is a zip bomb.
            raise ModelFileError(f"{path}: its members unpack to {unpacked} bytes, more than any model file "
                                 f"({MAX_MODEL_FILE_BYTES} bytes at most)")
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise ModelFileError(f"{path} is corrupted ({type(exc).__name__}: {exc})") from None
        if bad is not None:
            raise ModelFileError(f"{path} is corrupted: member {bad} fails its CRC check")
        names = [m.filename for m in members]
        meta_names = [n for n in names if n.split("/")[1:] == ["extra", METADATA_FILE]]
        if len(meta_names) != 1:
            raise ModelFileError(f"{path} is not an amcee model: it has no {METADATA_FILE} metadata "
                                 "(export models with `amcee export`)")
        if archive.getinfo(meta_names[0]).file_size > MAX_METADATA_BYTES:
            raise ModelFileError(f"{path}: {METADATA_FILE} metadata is larger than {MAX_METADATA_BYTES} bytes")
        try:
            meta = json.loads(archive.read(meta_names[0]))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelFileError(f"{path}: {METADATA_FILE} metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{path}: {METADATA_FILE} metadata is not a JSON object")
        try:
            _check_metadata(meta, path)  # format and version first: an old or foreign file says so
        except (TypeError, KeyError, AttributeError):
            pass  # a field of the wrong type, named by the next check
        _check_metadata_types(meta, path)
        _check_metadata(meta, path)
        if trust_model_code:
            return data, meta
        try:
            code = {n.split("/", 1)[1]: archive.read(n).decode("utf-8") for n in names if is_code_entry(n)}
        except UnicodeDecodeError:
            code = None
    expected = _reference_code(meta["config"], path)
    found = _normalised_code(code) if code is not None else None
    if found != expected:
        differing = sorted(found - expected) if found is not None else ["code that is not text"]
        where = differing[0].splitlines()[0][:80] if differing else "code the exporter writes is missing"
        raise ModelFileError(
            f"{path} contains code this package did not write (at: {where}): torch would run it while "
            "loading. Load it only if you trust its author: trust_model_code=True / --trust-model-code "
            "(a file exported by an earlier gr-amcee: `amcee export FILE --out NEW.pt --trust-model-code` "
            "writes it with this version's code)")
    return data, meta


def weights_digest(module):
    """SHA-256 of a module's weights: every tensor of its state dict, in name
    order, with its name, dtype and shape (the exporter stores it in the
    metadata; the loader recomputes it)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_model(path, device="cpu", trust_model_code=False):
    """Load and check an exported model; every problem is a ModelFileError.

    The file is checked before torch runs any of its code (read_model_archive);
    ``trust_model_code`` runs TorchScript code this package did not write."""
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
    # The metadata read and checked from the archive is the one torch would
    # read from these same bytes: no second parse.
    data, meta = read_model_archive(path, trust_model_code or _TRUST_ALL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as exc:  # torch raises RuntimeError/ValueError/... for foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a readable TorchScript model file ({first_line})") from None
    for method in REQUIRED_METHODS:
        if not hasattr(module, method):
            raise ModelFileError(f"{path}: model lacks the TorchScript method {method}()")
    if not (trust_model_code or _TRUST_ALL) and weights_digest(module) != meta["weights_sha256"]:
        raise ModelFileError(f"{path}: its weights are not those it was exported with (their SHA-256 differs "
                             "from the one in its metadata): the file was changed after export")
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
