"""RadioML 2018.01A HDF5 files: read through a map of X (never copied whole),
with the one-hot Y, the SNR grid of Z and every frame checked; each bad file
is one DatasetError naming the file.  Also the model/dataset agreement rule
(labels_for_model) that eval, calibrate and replay apply."""
import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="scripts/setup.sh installs python3-h5py")

from gnuradio.amcee.data import dataset as dataset_module  # noqa: E402
from gnuradio.amcee.data.dataset import Dataset, DatasetError, labels_for_model  # noqa: E402
from gnuradio.amcee.data.files import load_dataset  # noqa: E402
from gnuradio.amcee.data.radioml2018 import (RML2018_CLASSES, RML2018_SNRS, load_radioml2018,  # noqa: E402
                                             save_radioml2018)

FRAME_LEN = 1024
SNRS = (-20, 30)
PER_GROUP = 6  # the fewest frames per (class, SNR) the paper's split accepts


def rml2018_arrays(per_group=PER_GROUP, snrs=SNRS, frame_len=FRAME_LEN, seed=0):
    """(X [N, L, 2] float32, one-hot Y [N, 24] int64, Z [N, 1] int64) in the dataset's layout."""
    labels = np.repeat(np.arange(len(RML2018_CLASSES)), len(snrs) * per_group)
    z = np.tile(np.repeat(np.array(snrs, np.int64), per_group), len(RML2018_CLASSES)).reshape(-1, 1)
    x = np.random.default_rng(seed).standard_normal((len(labels), frame_len, 2)).astype(np.float32)
    y = np.eye(len(RML2018_CLASSES), dtype=np.int64)[labels]
    return x, y, z


def write_h5(path, x, y, z, **x_options):
    with h5py.File(path, "w") as f:
        for name, value in (("X", x), ("Y", y), ("Z", z)):
            if value is not None:
                f.create_dataset(name, data=value, **(x_options if name == "X" else {}))
    return str(path)


@pytest.fixture(scope="module")
def arrays():
    return rml2018_arrays()


@pytest.fixture
def good_file(tmp_path, arrays):
    return write_h5(tmp_path / "GOLD_XYZ_OSC.0001_1024.hdf5", *arrays)


def test_reads_frames_labels_and_snrs(good_file, arrays):
    x, y, z = arrays
    ds = load_dataset(good_file)
    assert ds.classes == RML2018_CLASSES and len(RML2018_CLASSES) == 24
    assert ds.frame_length == FRAME_LEN and len(ds) == len(x)
    # I and Q come from the last axis of X: frames [N, 2, L], row 0 = I.
    np.testing.assert_array_equal(np.asarray(ds.frames[:, 0, :]), x[:, :, 0])
    np.testing.assert_array_equal(np.asarray(ds.frames[:, 1, :]), x[:, :, 1])
    np.testing.assert_array_equal(ds.labels, y.argmax(1))
    np.testing.assert_array_equal(ds.snrs, z[:, 0].astype(np.float32))
    assert ds.meta == {"format": "radioml2018-hdf5", "source": good_file, "variant": "RadioML2018.01A"}


def test_frames_are_mapped_from_the_file_not_copied(good_file):
    ds = load_dataset(good_file)
    assert isinstance(ds.frames, np.memmap) and not ds.frames.flags.writeable
    assert ds.frames.filename == str(np.memmap(good_file, mode="r").filename)
    rows = np.array([5, 1, 200])
    assert np.asarray(ds.frames[rows]).shape == (3, 2, FRAME_LEN)  # what training gathers per batch


def test_format_is_detected_from_the_content_not_the_name(tmp_path, arrays):
    path = write_h5(tmp_path / "frames.bin", *arrays)
    assert load_dataset(path).meta["format"] == "radioml2018-hdf5"


def test_the_class_list_and_snr_grid_are_the_published_ones():
    assert RML2018_CLASSES[:8] == ("OOK", "4ASK", "8ASK", "BPSK", "QPSK", "8PSK", "16PSK", "32PSK")
    assert RML2018_CLASSES[-3:] == ("FM", "GMSK", "OQPSK") and len(set(RML2018_CLASSES)) == 24
    assert RML2018_SNRS == tuple(range(-20, 31, 2)) and len(RML2018_SNRS) == 26


def test_save_writes_what_load_reads(tmp_path, good_file):
    ds = load_dataset(good_file)
    copy = tmp_path / "copy.hdf5"
    save_radioml2018(copy, ds)
    again = load_radioml2018(copy)
    np.testing.assert_array_equal(np.asarray(again.frames), np.asarray(ds.frames))
    np.testing.assert_array_equal(again.labels, ds.labels)
    np.testing.assert_array_equal(again.snrs, ds.snrs)


def _bad(arrays, change):
    x, y, z = (a.copy() for a in arrays)
    return change(x, y, z)


def _set(array, index, value):
    array[index] = value
    return array


BAD_FILES = {
    "no Z": (lambda x, y, z: (x, y, None), "has no dataset 'Z'"),
    "X without the IQ axis": (lambda x, y, z: (x[:, :, 0], y, z), "X must have shape (N, L, 2)"),
    "X with 3 values per sample": (lambda x, y, z: (np.concatenate([x, x[:, :, :1]], 2), y, z),
                                   "X must have shape (N, L, 2)"),
    "X float64": (lambda x, y, z: (x.astype(np.float64), y, z), "X must be little-endian float32"),
    "X big-endian": (lambda x, y, z: (x.astype(">f4"), y, z), "X must be little-endian float32"),
    "X with NaN": (lambda x, y, z: (_set(x, (7, 3, 1), np.nan), y, z),
                   "1 frame(s) contain NaN or Inf, first at index 7"),
    "X with Inf": (lambda x, y, z: (_set(x, (200, 0, 0), np.inf), y, z), "first at index 200"),
    "Y over 8 classes": (lambda x, y, z: (x, y[:, :8], z), "Y must have shape (288, 24)"),
    "Y shorter than X": (lambda x, y, z: (x, y[:-1], z), "Y must have shape (288, 24)"),
    "Y row with two ones": (lambda x, y, z: (x, _set(y, (9, 5), 1), z), "Y row 9 is not one-hot"),
    "Y row of zeros": (lambda x, y, z: (x, _set(y, 11, 0), z), "Y row 11 is not one-hot"),
    "Y row with a 2": (lambda x, y, z: (x, _set(y, 12, 2 * y[12]), z), "Y row 12 is not one-hot"),
    "Y of text": (lambda x, y, z: (x, y.astype("S1"), z), "Y must hold numbers"),
    "Z shorter than X": (lambda x, y, z: (x, y, z[:-1]), "Z must have shape (288, 1)"),
    "Z off the grid": (lambda x, y, z: (x, y, _set(z, 4, 31)), "Z row 4 holds 31.0 dB"),
    "Z with NaN": (lambda x, y, z: (x, y, _set(z.astype(np.float64), 3, np.nan)), "Z row 3 holds nan dB"),
    "no frames": (lambda x, y, z: (x[:0], y[:0], z[:0]), "dataset has no frames"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_each_bad_file_is_one_dataset_error_naming_it(tmp_path, arrays, case):
    change, message = BAD_FILES[case]
    path = write_h5(tmp_path / "bad.hdf5", *_bad(arrays, change))
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value).startswith(path) or path in str(info.value)
    assert message in str(info.value)


def test_a_compressed_x_is_refused_with_the_command_that_fixes_it(tmp_path, arrays):
    path = write_h5(tmp_path / "gzip.hdf5", *arrays, compression="gzip", chunks=(16, FRAME_LEN, 2))
    with pytest.raises(DatasetError, match="h5repack -l X:CONTI") as info:
        load_dataset(path)
    assert path in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.999, 4 / 1e9])
def test_a_truncated_file_is_a_dataset_error(tmp_path, good_file, keep):
    data = open(good_file, "rb").read()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[:max(4, int(len(data) * keep))])
    with pytest.raises(DatasetError, match="truncated|corrupt") as info:
        load_dataset(cut)
    assert str(cut) in str(info.value)


def test_garbage_after_the_signature_is_a_dataset_error(tmp_path, good_file):
    data = bytearray(open(good_file, "rb").read())
    data[8:4096] = np.random.default_rng(1).integers(0, 256, 4088, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbage.hdf5"
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=str(bad)):
        load_dataset(bad)


def test_an_hdf5_file_of_other_arrays_says_what_it_expects(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("iq", data=np.zeros((4, 2, 8), np.float32))
    with pytest.raises(DatasetError, match=r"not a RadioML 2018.01A file: it has no dataset 'X'.*\['iq'\]"):
        load_dataset(path)


def test_validation_checks_frames_in_chunks_and_reports_the_first_bad_one(monkeypatch, arrays, tmp_path):
    """The NaN/Inf check runs VALIDATE_CHUNK_FRAMES at a time (a mapped file is
    not copied whole) and still counts every bad frame and names the first."""
    monkeypatch.setattr(dataset_module, "VALIDATE_CHUNK_FRAMES", 16)
    x, y, z = (a.copy() for a in arrays)
    x[[40, 41, 250], 0, 0] = np.nan
    with pytest.raises(DatasetError, match="3 frame\\(s\\) contain NaN or Inf, first at index 40"):
        load_dataset(write_h5(tmp_path / "nan.hdf5", x, y, z))


# ------------------------------------------------- model and dataset agreement
def _dataset(classes, labels, frame_len=FRAME_LEN):
    labels = np.asarray(labels, np.int64)
    return Dataset(np.ones((len(labels), 2, frame_len), np.float32), labels,
                   np.zeros(len(labels), np.float32), tuple(classes), {"source": "d.npz"})


def test_labels_follow_the_models_class_order():
    ds = _dataset(("A", "B", "C"), [0, 1, 2, 2])
    labels, scored = labels_for_model(ds, ("C", "A", "B"), FRAME_LEN)
    assert labels.tolist() == [1, 2, 0, 0] and scored.all()


def test_classes_the_model_lacks_are_named_and_left_out(capsys):
    ds = _dataset(("A", "AM-SSB", "C"), [0, 1, 1, 2])
    labels, scored = labels_for_model(ds, ("A", "C"), FRAME_LEN, "model m.pt")
    assert labels.tolist() == [0, -1, -1, 1] and scored.tolist() == [True, False, False, True]
    err = capsys.readouterr().err
    assert "warning: model m.pt has no class AM-SSB of the dataset (d.npz)" in err and "2 frames" in err


def test_a_class_list_that_is_not_in_the_data_is_not_warned_about(capsys):
    labels_for_model(_dataset(("A", "UNUSED"), [0, 0]), ("A",), FRAME_LEN)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("classes, frame_len, message", [
    (("A", "B"), 128, "has frames of 1024 samples, model m.pt takes 128"),
    (("X", "Y"), FRAME_LEN, "shares no class with model m.pt"),
])
def test_a_model_that_cannot_score_the_dataset_is_refused(classes, frame_len, message):
    with pytest.raises(DatasetError, match=message):
        labels_for_model(_dataset(("A", "B"), [0, 1]), classes, frame_len, "model m.pt")
