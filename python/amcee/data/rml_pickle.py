"""RML22 / RadioML 2016 pickles: ``{(modulation, snr_db): float array (n, 2, L)}``.

They are read by a restricted unpickler that only rebuilds numpy arrays, so a
downloaded file cannot run code; ``trusted=True`` opts in to plain pickle.
"""
import io
import math
import os
import pickle
import pickletools

import numpy as np

from ..labels import RML22_CLASSES, RML2016_CLASSES
from .dataset import Dataset, DatasetError


#: Deepest nesting of containers a dataset pickle may have ({key tuple: array}
#: with the arrays' reconstruction needs 6); a deeply nested tuple key crashed
#: the interpreter when hashed.
MAX_PICKLE_DEPTH = 32
#: dtypes an array of a dataset pickle may have (numbers only: no objects, no records).
_ARRAY_KINDS = "fciu"
#: What a corrupt or truncated pickle makes the unpicklers raise.
_PICKLE_ERRORS = (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                  IndexError, KeyError, MemoryError, OverflowError, RecursionError)


def _corrupt_pickle(path, exc):
    return DatasetError(f"{path}: corrupt, truncated or unsupported pickle ({type(exc).__name__}: {exc})")


def _refuse_object_dtype(*args):
    """``numpy.dtype`` for the unpickler: object dtypes would let a pickle hold anything."""
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.fields or dtype.subdtype:
        raise pickle.UnpicklingError(f"refuses to build arrays of dtype {dtype}")
    return dtype


class _ArrayClass:
    """What ``numpy.ndarray`` resolves to: a name _reconstruct accepts, never a
    callable (ndarray(shape, dtype, buffer, offset) built arrays over memory
    the file does not hold)."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("refuses to call numpy.ndarray (arrays are built only from the "
                                     "file's own bytes)")


class _PickledArray:
    """An array of the pickle, filled by BUILD (its __setstate__) only from
    bytes the file holds, whose length must match shape x itemsize."""

    array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran is True else "C")


def _array_from_bytes(raw, dtype, shape, order="C"):
    if isinstance(raw, str):  # Python 2 pickles: bytes as latin-1 text
        raw = raw.encode("latin1")
    elif isinstance(raw, bytearray):  # protocol 5: a copy, so no view outlives the unpickler's buffer
        raw = bytes(raw)
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array data is {type(raw).__name__}, not bytes")
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("array dtype is not a numpy dtype")
    dtype = _refuse_object_dtype(dtype.str)  # a fresh, checked copy of what BUILD may have changed
    if (not isinstance(shape, tuple) or len(shape) > 8
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype} needs "
                                     f"{math.prod(shape) * dtype.itemsize} bytes, the file holds {len(raw)}")
    return np.frombuffer(raw, dtype).reshape(shape, order=order)


def _reconstruct(cls, shape, dtype_code):
    """numpy's _reconstruct(ndarray, (0,), b'b') that starts every pickled array."""
    if cls is not _ArrayClass:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _PickledArray()


def _frombuffer(buffer, dtype, shape, order):
    """numpy's _frombuffer of protocol 5 pickles, with the byte count checked."""
    holder = _PickledArray()
    holder.array = _array_from_bytes(buffer, dtype, shape, "F" if order == "F" else "C")
    return holder


def _numpy_globals():
    """The globals a pickled numpy array refers to, for numpy 1.x and 2.x writers."""
    allowed = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(package + ".multiarray", "_reconstruct")] = _reconstruct
        allowed[(package + ".numeric", "_frombuffer")] = _frombuffer  # protocol 5
    allowed[("numpy", "ndarray")] = _ArrayClass
    allowed[("numpy", "dtype")] = _refuse_object_dtype
    # Python 3 writes bytes in protocol <= 2 as _codecs.encode(text, "latin1").
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


def _latin1_encode(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refuses codec {encoding!r}")
    return text.encode("latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy-array globals, so no code can run."""

    def __init__(self, file, source):
        super().__init__(file, encoding="latin1")  # Python-2 pickles (RadioML 2016)
        self._allowed = _numpy_globals()
        self._source = source

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DatasetError(
                f"{self._source}: refuses to load global {module}.{name}: an RML pickle holds "
                "only numpy arrays (pass trusted=True only for files you trust)") from None


_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}


def _check_structure(data, path):
    """Walk the pickle's opcodes (pickletools) before unpickling: the nesting
    of what it builds stays under MAX_PICKLE_DEPTH and its memo indices are
    the small sequential ones a pickler writes (an 11-byte pickle with a
    huge memo index took 15 GB).  Reading from memory, a declared length
    longer than the file fails here instead of allocating it."""
    stack, memo, ops = [], {}, 0
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            ops += 1
            name = op.name
            if name in ("PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER", "EXT1", "EXT2", "EXT4"):
                raise DatasetError(f"{path}: pickle uses {name}, which a dataset pickle never needs")
            if name == "MARK":
                stack.append(None)
                continue
            if name in _PUT or name == "MEMOIZE":
                index = len(memo) if name == "MEMOIZE" else int(arg)
                if index > ops:
                    raise DatasetError(f"{path}: pickle memo index {index} is out of range")
                memo[index] = stack[-1] if stack and stack[-1] is not None else 0
                continue
            if name in _GET:
                stack.append(memo.get(int(arg), 0))
                continue
            consumed = []
            before = list(op.stack_before)
            if pickletools.markobject in before:
                while stack and stack[-1] is not None:
                    consumed.append(stack.pop())
                if stack:
                    stack.pop()
                before = before[:before.index(pickletools.markobject)]
            for _ in before:
                if stack:
                    consumed.append(stack.pop())
            depth = max([d for d in consumed if d is not None], default=0) + (1 if consumed else 0)
            if depth > MAX_PICKLE_DEPTH:
                raise DatasetError(f"{path}: pickle nests deeper than {MAX_PICKLE_DEPTH} levels")
            stack.extend([depth] * len(op.stack_after))
    except DatasetError:
        raise
    except (ValueError, KeyError, IndexError) as exc:  # genops: truncated data, unknown opcode
        raise DatasetError(f"{path}: corrupt, truncated or unsupported pickle ({exc})") from None


def _read_pickle(path, trusted):
    with open(path, "rb") as f:
        data = f.read()
    if not trusted:
        _check_structure(data, path)
    try:
        if trusted:
            return pickle.loads(data, encoding="latin1")
        return _ArrayOnlyUnpickler(io.BytesIO(data), path).load()
    except DatasetError:
        raise
    except _PICKLE_ERRORS + (ImportError,) as exc:
        raise _corrupt_pickle(path, exc) from exc


def _pick_classes(path, names, classes):
    """The class list a pickle's labels index into (override, RML22, or RadioML 2016)."""
    if classes is not None:
        candidates = [tuple(classes)]
    else:
        candidates = [RML22_CLASSES, RML2016_CLASSES]
    for candidate in candidates:
        if names <= set(candidate):
            return tuple(candidate)
    valid = candidates[-1] if classes is not None else sorted(set(RML22_CLASSES) | set(RML2016_CLASSES))
    raise DatasetError(f"{path}: unknown label(s) {', '.join(sorted(names - set(valid)))}; "
                       f"valid names are {', '.join(valid)}")


def load_rml_pickle(path, classes=None, trusted=False):
    """Read an RML22 / RadioML 2016 pickle ``{(mod, snr): (n, 2, L) array}``."""
    path = os.fspath(path)
    data = _read_pickle(path, trusted)
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected a non-empty dict {{(modulation, snr): array}}, "
                           f"got {type(data).__name__}")
    entries = []
    for key, value in data.items():
        if isinstance(value, _PickledArray):
            value = value.array
        if (not isinstance(key, tuple) or len(key) != 2 or not isinstance(key[0], (str, bytes))
                or isinstance(key[1], bool) or not isinstance(key[1], (int, np.integer))):
            raise DatasetError(f"{path}: key {key!r} is not a (modulation, snr_db) pair")
        mod = key[0].decode("latin1") if isinstance(key[0], bytes) else key[0]
        if (not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64)
                or value.ndim != 3 or value.shape[1] != 2):
            raise DatasetError(f"{path}: value for {key!r} must be a float32/float64 array "
                               f"(n, 2, L), got {getattr(value, 'dtype', type(value).__name__)} "
                               f"{getattr(value, 'shape', '')}")
        entries.append((mod, int(key[1]), value))
    lengths = {v.shape[2] for _, _, v in entries}
    if len(lengths) != 1:
        raise DatasetError(f"{path}: frames have different lengths {sorted(lengths)}")
    class_list = _pick_classes(path, {mod for mod, _, _ in entries}, classes)
    # Deterministic frame order: class index, then SNR, then the file's order.
    entries.sort(key=lambda e: (class_list.index(e[0]), e[1]))
    counts = [v.shape[0] for _, _, v in entries]
    frames = np.empty((sum(counts), 2, lengths.pop()), np.float32)
    start = 0
    for _, _, value in entries:
        frames[start:start + len(value)] = value  # casts float64 files
        start += len(value)
    ds = Dataset(
        frames=frames,
        labels=np.repeat(np.array([class_list.index(m) for m, _, _ in entries], np.int64), counts),
        snrs=np.repeat(np.array([s for _, s, _ in entries], np.float32), counts),
        classes=class_list,
        meta={"format": "rml-pickle", "source": path,
              "variant": {RML22_CLASSES: "RML22", RML2016_CLASSES: "RadioML2016.10a"}
              .get(class_list, "custom")},
    )
    ds.validate()
    return ds


class _FirstArray(Exception):
    """Raised with the shape of the pickle's first array, which ends the probe."""

    def __init__(self, shape):
        super().__init__(shape)
        self.shape = shape


class _ShapeProbe:
    """What _reconstruct gives the probe: its BUILD state holds the shape."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, bytes)")
        raise _FirstArray(state[1])


def _probe_reconstruct(cls, shape, dtype_code):
    if cls is not _ArrayClass:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _ShapeProbe()


def _probe_frombuffer(buffer, dtype, shape, order):
    raise _FirstArray(shape)


class _BoundedFile:
    """The file for the probe: a read longer than the rest of the file is a
    truncated file, never an allocation of the size a pickle declares."""

    def __init__(self, f):
        self._f = f
        self._left = os.fstat(f.fileno()).st_size

    def _take(self, n):
        if n < 0 or n > self._left:
            raise EOFError(f"the pickle declares {n} bytes where {self._left} are left")
        self._left -= n

    def read(self, n=-1):
        self._take(self._left if n is None or n < 0 else n)
        return self._f.read(n)

    def readinto(self, buffer):
        self._take(len(buffer))
        return self._f.readinto(buffer)

    def readline(self):
        line = self._f.readline(1 << 16)  # text opcodes of protocol 0 hold short lines
        self._left -= len(line)
        return line


class _FrameLengthProbe(pickle._Unpickler):
    """pickle's pure-Python unpickler (its memo is a dict: a huge memo index
    allocates nothing) with the array-only globals, stopped by the first
    array's shape: it reads the pickle up to its first array, not the file."""

    def __init__(self, file, source):
        super().__init__(file, encoding="latin1")
        self._allowed = _numpy_globals()
        for package in ("numpy.core", "numpy._core"):
            self._allowed[(package + ".multiarray", "_reconstruct")] = _probe_reconstruct
            self._allowed[(package + ".numeric", "_frombuffer")] = _probe_frombuffer
        self._source = source

    find_class = _ArrayOnlyUnpickler.find_class


def rml_pickle_frame_length(path):
    """Samples per frame of an RML pickle, from the shape of its first array
    (the pickle is read up to that array, no further; no code runs)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            _FrameLengthProbe(_BoundedFile(f), path).load()
    except _FirstArray as found:
        shape = found.shape
    except DatasetError:
        raise
    except _PICKLE_ERRORS + (OSError,) as exc:
        raise _corrupt_pickle(path, exc) from exc
    else:
        raise DatasetError(f"{path}: the pickle holds no array (expected {{(modulation, snr): array}})")
    if (not isinstance(shape, tuple) or len(shape) != 3 or shape[1] != 2
            or not isinstance(shape[2], int) or shape[2] < 1):
        raise DatasetError(f"{path}: arrays must have shape (n, 2, L), the first has {shape!r}")
    return int(shape[2])


def save_rml_pickle(path, ds, protocol=4):
    """Write ``ds`` as ``{(mod, snr:int): float32 (n, 2, L)}``, the RML22/RadioML layout.

    Protocol 4 is read by any Python 3 (``pickle.load(f, encoding="latin1")`` too)
    and, unlike protocol 2, stores array bytes without re-encoding them.
    """
    ds.validate()
    if not np.array_equal(ds.snrs, np.round(ds.snrs)):
        raise DatasetError("save_rml_pickle: RML pickles key frames by integer SNR; "
                           "this dataset has fractional SNRs")
    out = {}
    for label in np.unique(ds.labels):
        for snr in np.unique(ds.snrs[ds.labels == label]):
            rows = (ds.labels == label) & (ds.snrs == snr)
            out[(ds.classes[label], int(snr))] = np.ascontiguousarray(ds.frames[rows])
    path = os.fspath(path)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        pickle.dump(out, f, protocol=protocol)
    os.replace(tmp, path)
