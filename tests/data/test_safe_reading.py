"""Reading dataset files is memory-safe and bounded: arrays only from the
file's own bytes, sizes checked before allocation, nesting and memo bounded,
every metadata field's type checked; every failure a DatasetError."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from gnuradio.amcee.data.dataset import DatasetError
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.data.npz import save_dataset
from gnuradio.amcee.data.rml_pickle import save_rml_pickle
from gnuradio.amcee.data.sigmf_recording import save_replay
from tiny_data import make_tiny_dataset


class Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


KEY = ("BPSK", 0)
PICKLES = {
    "ndarray over foreign memory": pickle.dumps({KEY: Call(np.ndarray, (16,), np.dtype("f4"), b"x" * 8, -1 << 30)}),
    "2 GB shape from a few bytes": pickle.dumps({KEY: Call(np.ndarray, (1 << 29,), np.dtype("f4"))}),
    "deeply nested key": b"\x80\x02}" + b"K\x00" + b"\x85" * 100000 + b"K\x01s.",
    "huge memo index": b"\x80\x02}r\xff\xff\xff\x7f.",
    "declared length beyond the file": b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc.",
}


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_crafted_pickles_are_refused(tmp_path, name):
    path = tmp_path / "x.pkl"
    path.write_bytes(PICKLES[name])
    with pytest.raises(DatasetError, match="x.pkl"):
        load_dataset(path)


def test_array_state_must_hold_its_bytes(tmp_path):
    """_reconstruct + a state whose byte string is shorter than its shape."""
    good = pickle.dumps({KEY: np.zeros((2, 2, 4), np.float32)}, protocol=2)
    # The state's raw bytes are a latin-1 string of 64 NULs; claim a larger shape.
    bad = good.replace(b"K\x02K\x02K\x04\x87", b"K\x02K\x02K\x08\x87")
    assert bad != good
    path = tmp_path / "short.pkl"
    path.write_bytes(bad)
    with pytest.raises(DatasetError, match="needs 128 bytes, the file holds 64"):
        load_dataset(path)


def test_valid_pickles_of_every_protocol_still_load(tmp_path):
    ds = make_tiny_dataset(frames_per_key=2, snrs=(0, 10), frame_len=16)
    save_rml_pickle(tmp_path / "p.pkl", ds)
    by_key = pickle.load(open(tmp_path / "p.pkl", "rb"))
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(by_key, protocol=protocol))
        assert load_dataset(path).frames.tobytes() == load_dataset(tmp_path / "p.pkl").frames.tobytes()


def _npz_with(tmp_path, member, payload):
    save_dataset(tmp_path / "d.npz", make_tiny_dataset(frames_per_key=1, snrs=(0,), frame_len=16))
    out = tmp_path / "bad.npz"
    with zipfile.ZipFile(tmp_path / "d.npz") as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            new.writestr(info, payload if info.filename == member + ".npy" else old.read(info))
    return out


def _npy(value):
    f = io.BytesIO()
    np.save(f, value)
    return f.getvalue()


def _npy_header(shape):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return f.getvalue() + b"\x00" * 64


@pytest.mark.parametrize("member, payload, message", [
    ("format_version", _npy(np.array("1")), "format_version must be a single value"),
    ("format_version", _npy(np.array([[1]])), "format_version must be a single value"),
    ("classes", _npy(np.array("BPSK")), "classes must be a list of names"),
    ("frames", _npy_header((10 ** 12, 2, 16)), r"declares shape \(1000000000000, 2, 16\)"),
    ("meta_json", _npy(np.array("[" * 100000)), "corrupt"),
    ("meta_json", _npy(np.array(5)), "meta_json must be a single value"),
])
def test_npz_fields_of_the_wrong_type_or_size(tmp_path, member, payload, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(_npz_with(tmp_path, member, payload))


def _recording(tmp_path):
    data, meta = save_replay(tmp_path / "rec", make_tiny_dataset(frames_per_key=1, snrs=(0,), frame_len=16))
    return data, meta, json.loads(open(meta).read())


@pytest.mark.parametrize("where, key, value, message", [
    ("global", "amcee:frame_length", "16", "amcee:frame_length must be int"),
    ("global", "amcee:frame_length", True, "amcee:frame_length must be int"),
    ("global", "amcee:classes", None, "amcee:classes must be list"),
    ("global", "amcee:dataset_meta", [], "amcee:dataset_meta must be dict"),
    ("global", "core:sample_rate", "fast", "core:sample_rate must be"),
    ("global", "amcee:layout", ["complex"], "not an amcee replay recording"),
    ("annotation", "amcee:snr_db", None, "annotation 0: amcee:snr_db must be"),
    ("annotation", "core:label", 3, "annotation 0: core:label must be str"),
    ("annotation", "core:sample_start", 1.5, "annotation 0: core:sample_start must be int"),
    ("global", "core:dataset", "../../elsewhere.sigmf-data", "core:dataset names"),
    ("global", "core:dataset", "/etc/passwd", "core:dataset names"),
])
def test_sigmf_fields_of_the_wrong_type(tmp_path, where, key, value, message):
    _, meta_path, meta = _recording(tmp_path)
    (meta["global"] if where == "global" else meta["annotations"][0])[key] = value
    open(meta_path, "w").write(json.dumps(meta))
    with pytest.raises(DatasetError, match=message):
        load_dataset(meta_path)


def test_sigmf_data_read_is_the_data_checksummed(tmp_path):
    """A changed data file is an error, not a warning, whatever core:dataset says."""
    data_path, meta_path, meta = _recording(tmp_path)
    other = tmp_path / "other.sigmf-data"
    other.write_bytes(open(data_path, "rb").read())
    raw = bytearray(open(data_path, "rb").read())
    raw[5] ^= 1
    open(data_path, "wb").write(bytes(raw))
    with pytest.raises(DatasetError, match="SHA-512"):
        load_dataset(meta_path)
    meta["global"]["core:dataset"] = "other.sigmf-data"  # checksummed file != read file
    open(meta_path, "w").write(json.dumps(meta))
    with pytest.raises(DatasetError, match="core:dataset names 'other.sigmf-data'"):
        load_dataset(meta_path)
    assert os.path.exists(other)
