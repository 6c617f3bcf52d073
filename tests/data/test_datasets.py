"""Dataset files: own .npz, safe RML pickles, validation errors, the paper's split."""
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest

from gnuradio.amcee.data.dataset import Dataset, DatasetError, paper_split, split_indices
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.data.npz import save_dataset
from gnuradio.amcee.data.rml_pickle import load_rml_pickle, save_rml_pickle
from gnuradio.amcee.labels import RML2016_CLASSES, RML22_CLASSES, RML22_SNRS


def make_dataset(per_group=3, classes=RML22_CLASSES, snrs=(-4, 0, 6), length=16, seed=0):
    """Random frames on a full (class, SNR) grid, ``per_group`` frames per cell."""
    labels = np.repeat(np.arange(len(classes)), len(snrs) * per_group).astype(np.int64)
    snr_col = np.tile(np.repeat(np.array(snrs, np.float32), per_group), len(classes))
    frames = np.random.default_rng(seed).standard_normal((len(labels), 2, length)).astype(np.float32)
    return Dataset(frames, labels, snr_col, tuple(classes), {"generator": "test", "seed": seed})


def assert_same_frames(a, b):
    assert a.classes == b.classes
    assert a.frames.dtype == np.float32 and a.frames.tobytes() == b.frames.tobytes()
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.snrs.dtype == np.float32 and a.snrs.tobytes() == b.snrs.tobytes()


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as Python 2 did for
    RadioML 2016.10a; protocol 2 also maps names to Python 2 modules."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def write_pickle(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# ------------------------------------------------------------------ round trips
def test_npz_round_trip_is_bit_exact(tmp_path):
    ds = make_dataset()
    save_dataset(tmp_path / "d.npz", ds)
    back = load_dataset(tmp_path / "d.npz")
    assert_same_frames(back, ds)
    assert back.meta["generator"] == "test" and back.meta["source"] == str(tmp_path / "d.npz")
    assert not list(tmp_path.glob("*.partial"))


def test_npz_holds_no_pickles(tmp_path):
    save_dataset(tmp_path / "d.npz", make_dataset())
    with np.load(tmp_path / "d.npz", allow_pickle=False) as npz:
        assert json.loads(str(npz["meta_json"]))["seed"] == 0
        assert int(npz["format_version"]) == 1


def test_rml_pickle_round_trip_and_plain_pickle_layout(tmp_path):
    ds = make_dataset()
    save_rml_pickle(tmp_path / "RML22", ds)
    with open(tmp_path / "RML22", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert len(raw) == 10 * 3 and raw[("QPSK", 6)].shape == (3, 2, 16)
    assert raw[("QPSK", 6)].dtype == np.float32
    back = load_dataset(tmp_path / "RML22")  # no extension, detected from content
    assert_same_frames(back, ds)
    assert back.meta["variant"] == "RML22"


def test_pickle_npz_pickle_chain(tmp_path):
    ds = make_dataset()
    save_rml_pickle(tmp_path / "a.pickle", ds)
    save_dataset(tmp_path / "b.npz", load_dataset(tmp_path / "a.pickle"))
    save_rml_pickle(tmp_path / "c.pickle", load_dataset(tmp_path / "b.npz"))
    assert_same_frames(load_dataset(tmp_path / "c.pickle"), ds)


def test_python2_protocol2_radioml2016_pickle(tmp_path):
    rng = np.random.default_rng(1)
    ssb, bpsk = (rng.standard_normal((4, 2, 128)).astype(np.float32) for _ in range(2))
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump({("BPSK", 2): bpsk, ("AM-SSB", -20): ssb})
    assert b"numpy.core.multiarray\n_reconstruct" in buf.getvalue()
    (tmp_path / "RML2016.10a_dict.pkl").write_bytes(buf.getvalue())

    ds = load_dataset(tmp_path / "RML2016.10a_dict.pkl")
    assert ds.classes == RML2016_CLASSES and ds.meta["variant"] == "RadioML2016.10a"
    assert ds.frames.tobytes() == ssb.tobytes() + bpsk.tobytes()  # class order: AM-SSB, BPSK
    assert [ds.classes[i] for i in ds.labels] == ["AM-SSB"] * 4 + ["BPSK"] * 4
    np.testing.assert_array_equal(ds.snrs, [-20] * 4 + [2] * 4)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickle_protocols_load_safely(tmp_path, protocol):
    frames = np.random.default_rng(2).standard_normal((2, 2, 8))  # float64 is accepted
    path = write_pickle(tmp_path / "p.pkl", {("QAM16", 0): frames}, protocol)
    ds = load_rml_pickle(path)
    assert ds.frames.dtype == np.float32
    np.testing.assert_array_equal(ds.frames, frames.astype(np.float32))
    assert ds.classes == RML22_CLASSES and ds.labels.tolist() == [0, 0]


def test_classes_override_and_unknown_labels(tmp_path):
    frames = np.ones((1, 2, 8), np.float32)
    path = write_pickle(tmp_path / "p.pkl", {("chirp", 0): frames, ("tone", 2): frames})
    with pytest.raises(DatasetError, match=r"unknown label\(s\) chirp, tone; valid names are .*QAM16"):
        load_dataset(path)
    ds = load_rml_pickle(path, classes=("tone", "chirp"))
    assert ds.classes == ("tone", "chirp") and ds.labels.tolist() == [0, 1]
    assert ds.snrs.tolist() == [2, 0]  # frames ordered by class index
    with pytest.raises(DatasetError, match="unknown label.*tone; valid names are chirp, noise"):
        load_rml_pickle(path, classes=("chirp", "noise"))


def test_trusted_opt_in_uses_plain_pickle(tmp_path):
    path = write_pickle(tmp_path / "p.pkl", {("BPSK", 0): np.ones((1, 2, 8), np.float32)})
    assert len(load_dataset(path, trusted=True)) == 1


# ------------------------------------------------------------------- safety
class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_code_executing_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = write_pickle(tmp_path / "evil.pkl", {("BPSK", 0): _RunsShell(marker)}, protocol)
    with pytest.raises(DatasetError, match=r"evil\.pkl: refuses to load global (posix|os)\.system"):
        load_dataset(path)
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = write_pickle(tmp_path / "obj.pkl", {("BPSK", 0): np.zeros((1, 2, 4), dtype=object)})
    with pytest.raises(DatasetError, match="obj.pkl.*refuses to build arrays of dtype object"):
        load_dataset(path)


# ------------------------------------------------------------- broken files
def test_truncated_pickle(tmp_path):
    save_rml_pickle(tmp_path / "p.pkl", make_dataset())
    data = (tmp_path / "p.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.pkl: corrupt, truncated or unsupported pickle"):
        load_dataset(tmp_path / "cut.pkl")


def test_truncated_and_corrupt_npz(tmp_path):
    save_dataset(tmp_path / "d.npz", make_dataset())
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.npz: corrupt or truncated dataset file"):
        load_dataset(tmp_path / "cut.npz")
    flipped = bytearray(data)
    flipped[len(data) // 3: len(data) // 3 + 64] = b"x" * 64
    (tmp_path / "bad.npz").write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match=r"bad\.npz: corrupt or truncated dataset file"):
        load_dataset(tmp_path / "bad.npz")


def test_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match=r"other\.npz: not an amcee dataset, missing arrays"):
        load_dataset(tmp_path / "other.npz")


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\x00\x01garbage", "unknown dataset format"),
])
def test_empty_and_unknown_files(tmp_path, content, message):
    (tmp_path / "f.bin").write_bytes(content)
    with pytest.raises(DatasetError, match=rf"f\.bin: {message}"):
        load_dataset(tmp_path / "f.bin")


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nope.npz: cannot read dataset file"):
        load_dataset(tmp_path / "nope.npz")


@pytest.mark.parametrize("value, message", [
    (np.ones((2, 3, 8), np.float32), r"must be a float32/float64 array \(n, 2, L\)"),
    (np.ones((2, 2, 8), np.int16), "must be a float32/float64 array"),
    ([1.0, 2.0], "must be a float32/float64 array"),
])
def test_bad_pickle_values(tmp_path, value, message):
    path = write_pickle(tmp_path / "p.pkl", {("BPSK", 0): value})
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_bad_pickle_structure(tmp_path):
    with pytest.raises(DatasetError, match="expected a non-empty dict"):
        load_dataset(write_pickle(tmp_path / "a.pkl", [1, 2]))
    with pytest.raises(DatasetError, match="is not a \\(modulation, snr_db\\) pair"):
        load_dataset(write_pickle(tmp_path / "b.pkl", {"BPSK": np.ones((1, 2, 8), np.float32)}))
    mixed = {("BPSK", 0): np.ones((1, 2, 8), np.float32), ("QPSK", 0): np.ones((1, 2, 4), np.float32)}
    with pytest.raises(DatasetError, match="different lengths"):
        load_dataset(write_pickle(tmp_path / "c.pkl", mixed))


def test_nan_frames_are_refused(tmp_path):
    frames = np.ones((3, 2, 8), np.float32)
    frames[1, 1, 5] = np.nan
    path = write_pickle(tmp_path / "nan.pkl", {("BPSK", 0): frames})
    with pytest.raises(DatasetError, match=r"1 frame\(s\) contain NaN or Inf, first at index 1 in .*nan\.pkl"):
        load_dataset(path)


def test_validate_checks_fields():
    ds = make_dataset()
    ds.validate()
    with pytest.raises(DatasetError, match="labels must lie in 0..9"):
        Dataset(ds.frames, ds.labels + 1, ds.snrs, ds.classes).validate()
    with pytest.raises(DatasetError, match="frames must be a numpy float32 array"):
        Dataset(ds.frames.astype(np.float64), ds.labels, ds.snrs, ds.classes).validate()
    with pytest.raises(DatasetError, match="no frames"):
        ds.subset(np.array([], np.int64)).validate()
    with pytest.raises(DatasetError, match="not JSON-serialisable"):
        Dataset(ds.frames, ds.labels, ds.snrs, ds.classes, {"x": object()}).validate()
    with pytest.raises(DatasetError):
        save_dataset("/nonexistent/never-written.npz", Dataset(ds.frames, ds.labels, ds.snrs, ()))


def test_subset():
    ds = make_dataset()
    part = ds.subset([5, 0])
    assert len(part) == 2 and part.frames[0].tobytes() == ds.frames[5].tobytes()
    assert part.labels.tolist() == [ds.labels[5], ds.labels[0]]


# -------------------------------------------------------------------- split
def _rml22_grid():
    labels = np.repeat(np.arange(10, dtype=np.int64), len(RML22_SNRS) * 2000)
    snrs = np.tile(np.repeat(np.array(RML22_SNRS, np.float32), 2000), 10)
    return labels, snrs


def test_paper_split_sizes_and_exact_stratification():
    labels, snrs = _rml22_grid()
    train, val, test = paper_split((labels, snrs))
    assert (len(train), len(val), len(test)) == (340_200, 37_800, 42_000)
    everything = np.concatenate([train, val, test])
    assert len(np.unique(everything)) == 420_000  # disjoint and complete
    for part, per_cell in ((train, 1620), (val, 180), (test, 200)):
        cells = labels[part] * 100 + (snrs[part].astype(np.int64) + 20)
        _, counts = np.unique(cells, return_counts=True)
        assert len(counts) == 210 and (counts == per_cell).all()


def test_paper_split_is_deterministic_and_seeded():
    ds = make_dataset(per_group=20)
    first, again = paper_split(ds, seed=3), paper_split((ds.labels, ds.snrs), seed=3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], paper_split(ds, seed=4)[2])
    assert [len(p) for p in first] == [10 * 3 * 16, 10 * 3 * 2, 10 * 3 * 2]


def test_split_indices():
    ds = make_dataset(per_group=20)
    np.testing.assert_array_equal(split_indices(ds, "all"), np.arange(len(ds)))
    np.testing.assert_array_equal(split_indices(ds, "test", seed=1), paper_split(ds, seed=1)[2])
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        split_indices(ds, "dev")


def test_paper_split_refuses_groups_too_small_for_every_part():
    from gnuradio.amcee.data.dataset import min_frames_per_group

    assert min_frames_per_group() == 6  # 1 test, 1 validation, 4 training
    train, val, test = paper_split(make_dataset(per_group=6))
    assert (len(train), len(val), len(test)) == (4 * 30, 30, 30)
    ds = make_dataset(per_group=6)
    ds.labels[0] = 1  # QAM16 at -4 dB keeps 5 frames
    with pytest.raises(DatasetError, match=r"QAM16 at -4 dB has 5 frames; every \(class, SNR\) group "
                                           r"needs at least 6.*\(1 of 30 groups have fewer\)"):
        split_indices(ds, "test")
