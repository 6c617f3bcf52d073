"""Commands that go through a whole dataset do it in chunks: `amcee
export-stream` and `amcee report` on a RadioML-2018-shaped HDF5 file (frames
of 1024 samples, mapped, never copied whole) use memory that does not grow
with the file.  The dataset source takes its vector length from the file's
header (GRC Frame Length 0), for every format; `amcee replay` counts frames/s
over every frame it classified."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="scripts/setup.sh installs python3-h5py")

from gnuradio.amcee.cli import main  # noqa: E402
from gnuradio.amcee.data import dataset as dataset_module  # noqa: E402
from gnuradio.amcee.data import radioml2018, sigmf_recording  # noqa: E402
from gnuradio.amcee.data.dataset import Dataset, DatasetError, paper_split  # noqa: E402
from gnuradio.amcee.data.files import dataset_frame_length, load_dataset  # noqa: E402
from gnuradio.amcee.data.npz import save_dataset  # noqa: E402
from gnuradio.amcee.data.radioml2018 import RML2018_CLASSES, save_radioml2018  # noqa: E402
from gnuradio.amcee.data.rml_pickle import save_rml_pickle  # noqa: E402
from gnuradio.amcee.data.sigmf_recording import save_replay  # noqa: E402
from gnuradio.amcee.data.synth import fidelity  # noqa: E402
from gnuradio.amcee.frames import to_complex  # noqa: E402
from gnuradio.amcee.labels import RML22_CLASSES  # noqa: E402

FRAME_LEN = 1024
SNRS = (0, 20)
#: Frames per step in these tests: the files below are 4.5 and 18 steps long.
CHUNK = 64


def rml2018_dataset(per_group, seed=0):
    labels = np.repeat(np.arange(len(RML2018_CLASSES)), len(SNRS) * per_group).astype(np.int64)
    snrs = np.tile(np.repeat(np.float32(SNRS), per_group), len(RML2018_CLASSES))
    frames = np.random.default_rng(seed).standard_normal((len(labels), 2, FRAME_LEN)).astype(np.float32)
    return Dataset(frames, labels, snrs, RML2018_CLASSES, {})


@pytest.fixture(scope="module")
def hdf5_files(tmp_path_factory):
    """{frames: path} of two files, 288 frames (2.4 MB of X) and 1152 (9.4 MB)."""
    folder = tmp_path_factory.mktemp("rml2018")
    files = {}
    for per_group in (6, 24):
        ds = rml2018_dataset(per_group)
        path = folder / f"rml2018_{len(ds)}.hdf5"
        save_radioml2018(path, ds)
        files[len(ds)] = str(path)
    return files


@pytest.fixture
def small_chunks(monkeypatch):
    """Every chunked step of these commands at CHUNK frames, so that a small
    file is many chunks long."""
    monkeypatch.setattr(dataset_module, "VALIDATE_CHUNK_FRAMES", CHUNK)
    monkeypatch.setattr(radioml2018, "CHECK_CHUNK_FRAMES", CHUNK)
    monkeypatch.setattr(sigmf_recording, "WRITE_CHUNK_FRAMES", CHUNK)
    monkeypatch.setattr(fidelity, "MEASURE_CHUNK_FRAMES", CHUNK)


def x_bytes(frames):
    return frames * 2 * FRAME_LEN * 4


def peak_traced(function, *args):
    """Peak of the memory Python and numpy allocate while ``function`` runs
    (tracemalloc: a memory-mapped file's pages are not counted, a copy of
    its frames is)."""
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------ export-stream

@pytest.mark.parametrize("layout", ["complex", "rml"])
def test_export_stream_of_an_hdf5_split_is_bit_exact_and_valid_sigmf(hdf5_files, small_chunks, tmp_path, capsys,
                                                                     monkeypatch, layout):
    from sigmf import sigmffile

    monkeypatch.setattr(sigmf_recording, "WRITE_CHUNK_FRAMES", 10)  # the 48 test frames: 4 chunks and a part
    path = hdf5_files[288]
    assert main(["export-stream", path, "--out", str(tmp_path / "rec"), "--layout", layout,
                 "--split", "test"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ds = load_dataset(path)
    rows = paper_split(ds)[2]
    assert summary["frames"] == len(rows) == 48 and summary["frame_length"] == FRAME_LEN
    back = load_dataset(summary["meta"])
    assert back.frames.tobytes() == np.asarray(ds.frames[rows]).tobytes()
    np.testing.assert_array_equal(back.labels, ds.labels[rows])
    assert back.snrs.tobytes() == ds.snrs[rows].tobytes() and back.classes == RML2018_CLASSES
    assert back.meta["split"] == "test" and back.meta["format"] == "radioml2018-hdf5"
    # sigmf's own reader and schema validator accept the streamed metadata (checksum included).
    recording = sigmffile.fromfile(summary["meta"])
    recording.validate()
    assert len(recording.get_annotations()) == len(rows)
    assert recording.get_global_field("core:sha512")


def test_export_stream_memory_does_not_grow_with_the_file(hdf5_files, small_chunks, tmp_path, capsys):
    peaks = {}
    for frames, path in hdf5_files.items():
        out = tmp_path / f"rec{frames}"
        peaks[frames] = peak_traced(main, ["export-stream", path, "--out", str(out)])
        assert json.loads(capsys.readouterr().out)["frames"] == frames
        assert os.path.getsize(f"{out}.sigmf-data") == x_bytes(frames)
    small, large = sorted(peaks)
    # A copy of the frames would be 9.4 MB for the large file (its complex
    # vectors as much again); chunks of 64 frames are 0.5 MB.
    assert peaks[large] < x_bytes(large) / 4, peaks
    assert peaks[large] - peaks[small] < (x_bytes(large) - x_bytes(small)) / 10, peaks


# ------------------------------------------------------------------ report

def test_report_of_an_hdf5_file_equals_the_in_memory_statistics(hdf5_files, small_chunks, tmp_path, capsys):
    path = hdf5_files[288]
    assert main(["report", path, "--out", str(tmp_path / "report")]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 288
    report = json.loads((tmp_path / "report" / "fidelity.json").read_text())
    ds = load_dataset(path)
    x = to_complex(np.asarray(ds.frames), np.complex128)
    for i, name in enumerate(RML2018_CLASSES):
        mag = np.abs(x[ds.labels == i])
        l1 = mag.sum(axis=1)
        expected = {"frames": len(mag), "power_mean": np.mean(mag ** 2), "l1_mean": l1.mean(),
                    "l1_std": l1.std(), "peak_to_mean_mag": np.mean(mag.max(axis=1) / mag.mean(axis=1)),
                    "envelope_cv": np.mean(mag.std(axis=1) / mag.mean(axis=1))}
        assert report["per_class"][name] == pytest.approx(expected, rel=1e-9)
    assert (tmp_path / "report" / "fidelity.png").stat().st_size > 0


def test_report_statistics_memory_does_not_grow_with_the_file(hdf5_files, small_chunks):
    """What `amcee report` computes over every frame (measure); its figure
    reads at most 20 frames a class (plot_examples)."""
    datasets = {frames: load_dataset(path) for frames, path in hdf5_files.items()}
    peaks = {frames: peak_traced(fidelity.measure, ds) for frames, ds in datasets.items()}
    small, large = sorted(peaks)
    # A chunk of 64 frames as complex128 and its magnitudes: about 2 MB; the
    # large file's frames as complex128 would be 18.9 MB.
    assert peaks[large] < x_bytes(large) / 2, peaks
    assert peaks[large] - peaks[small] < (x_bytes(large) - x_bytes(small)) / 10, peaks


def test_l1_spread_of_normalised_frames_survives_the_chunks(small_chunks):
    """L1 norms of normalised frames are all about 1: their std, accumulated
    over chunks, must not cancel to 0 or go negative."""
    from gnuradio.amcee.frames import l1_normalize_frames

    ds = rml2018_dataset(6)
    ds.frames = l1_normalize_frames(ds.frames)
    l1 = np.abs(to_complex(ds.frames, np.complex128)[ds.labels == 0]).sum(axis=1)
    got = fidelity.measure(ds)["per_class"][RML2018_CLASSES[0]]["l1_std"]
    assert l1.std() > 0 and got == pytest.approx(l1.std(), rel=1e-3)


# ------------------------------------------- frame length from the header

def small_rml22(frame_len=16):
    labels = np.repeat(np.arange(10), 6).astype(np.int64)
    frames = np.random.default_rng(1).standard_normal((60, 2, frame_len)).astype(np.float32)
    return Dataset(frames, labels, np.zeros(60, np.float32), RML22_CLASSES, {})


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_frame_length_of_every_format_from_its_header(tmp_path, hdf5_files, protocol):
    ds = small_rml22(frame_len=40)
    save_dataset(tmp_path / "d.npz", ds)
    save_rml_pickle(tmp_path / "d.pkl", ds, protocol=protocol)
    save_replay(tmp_path / "rec", ds)
    for name in ("d.npz", "d.pkl", "rec.sigmf-meta", "rec.sigmf-data", "rec"):
        assert dataset_frame_length(tmp_path / name) == 40, name
    assert dataset_frame_length(hdf5_files[288]) == FRAME_LEN


def test_pickle_frame_length_reads_only_up_to_the_first_array(tmp_path):
    """The pickle is read up to its first array: a file cut after it still
    gives the length (load_dataset refuses it as truncated).  Arrays of 96 KiB,
    above pickle's 64 KiB frames: the cut falls after the first array's frame."""
    save_rml_pickle(tmp_path / "d.pkl", small_rml22(frame_len=2048))
    data = (tmp_path / "d.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[:len(data) // 2])
    assert dataset_frame_length(tmp_path / "cut.pkl") == 2048
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset(tmp_path / "cut.pkl")


@pytest.mark.parametrize("content, message", [
    (pickle.dumps({("BPSK", 0): np.zeros((3, 4), np.float32)}, protocol=4), r"shape \(n, 2, L\), the first has \(3, 4\)"),
    (pickle.dumps({("BPSK", 0): [1, 2]}, protocol=4), "holds no array"),
    (b"\x80\x02cos\nsystem\nq\x00.", "refuses to load global os.system"),
    (b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8e\xff\xff\xff\xff\xff\xff\x00\x00", "truncated"),
    (b"\x80\x02}q\x00(X\x04\x00\x00\x00BPSKq\xff\xff\xff\xff\x7f", "corrupt, truncated"),
])
def test_pickle_frame_length_refuses_bad_pickles_in_one_line(tmp_path, content, message):
    (tmp_path / "bad.pkl").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        dataset_frame_length(tmp_path / "bad.pkl")


def test_frame_length_refuses_files_that_are_not_datasets(tmp_path, hdf5_files):
    (tmp_path / "junk").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        dataset_frame_length(tmp_path / "junk")
    with h5py.File(tmp_path / "noX.hdf5", "w") as f:
        f.create_dataset("Y", data=np.zeros((2, 24)))
    with pytest.raises(DatasetError, match="no dataset 'X'"):
        dataset_frame_length(tmp_path / "noX.hdf5")
    (tmp_path / "cut.hdf5").write_bytes(open(hdf5_files[288], "rb").read(100))
    with pytest.raises(DatasetError, match="corrupt or truncated HDF5 file"):
        dataset_frame_length(tmp_path / "cut.hdf5")
    with pytest.raises(DatasetError, match="no dataset file given"):
        dataset_frame_length("")


def test_sigmf_frame_length_reads_the_global_object_only(tmp_path):
    _, meta_path = save_replay(tmp_path / "rec", small_rml22(frame_len=32))
    text = open(meta_path).read()
    assert text.lstrip().startswith('{\n    "global"')
    # The annotations after the global object are not parsed: cut them and it still answers.
    with open(meta_path, "w") as f:
        f.write(text[:text.index('"annotations"') + 40])
    assert dataset_frame_length(meta_path) == 32
    # Another writer's key order (global last) is parsed whole.
    doc = json.loads(text)
    with open(meta_path, "w") as f:
        json.dump({"annotations": doc["annotations"], "captures": doc["captures"], "global": doc["global"]}, f)
    assert dataset_frame_length(meta_path) == 32
    doc["global"]["amcee:frame_length"] = "32"
    with open(meta_path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(DatasetError, match="amcee:frame_length must be int"):
        dataset_frame_length(meta_path)


# -------------------------------------------------- GRC: Frame Length 0

def _flowgraph(path, dataset_path, sink_vlen):
    path.write_text(textwrap.dedent(f"""\
        options:
          parameters: {{id: source_fg, generate_options: no_gui, run_options: run,
                       output_language: python, title: source}}
          states: {{state: enabled}}
        blocks:
        - name: src
          id: amcee_dataset_source
          parameters: {{path: '{dataset_path}', layout: complex, frame_len: '0', repeat: 'False',
                       trusted: 'False', split: test, shuffle: 'False', seed: '0'}}
          states: {{state: enabled}}
        - name: sink
          id: blocks_null_sink
          parameters: {{type: complex, vlen: '{sink_vlen}', num_inputs: '1', bus_structure_sink: '[[0,],]'}}
          states: {{state: enabled}}
        connections:
        - [src, '0', sink, '0']
        metadata: {{file_format: 1}}
        """))
    return path


def _grcc(grc, out_dir):
    # grcc evaluates the port's vlen with amcee imported (which imports torch): the venv's Python.
    return subprocess.run([sys.executable, shutil.which("grcc"), "-o", str(out_dir), str(grc)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc not installed")
def test_grc_sizes_the_source_port_from_the_hdf5_file(hdf5_files, tmp_path):
    path = hdf5_files[288]
    compiled = _grcc(_flowgraph(tmp_path / "fg.grc", path, 1024), tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "frame_len=0" in (tmp_path / "source_fg.py").read_text()
    ran = subprocess.run([sys.executable, str(tmp_path / "source_fg.py")], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "all 48 frames sent" in ran.stdout + ran.stderr
    # A sink of RML22's 128 samples does not fit the file's 1024 (8192 bytes).
    other = tmp_path / "other"
    other.mkdir()
    refused = _grcc(_flowgraph(other / "fg.grc", path, 128), other)
    assert refused.returncode != 0
    assert 'Source IO size "8192" does not match sink IO size "1024"' in refused.stdout + refused.stderr


def test_block_frame_length_zero_is_the_files_and_another_is_refused(hdf5_files):
    from gnuradio import amcee

    path = hdf5_files[288]
    assert amcee.dataset_source.dataset_frame_len(path) == FRAME_LEN
    assert amcee.dataset_source(path, split="test").frame_length() == FRAME_LEN
    with pytest.raises(ValueError, match="frames have 1024 samples, the block was set to frame_len=128"):
        amcee.dataset_source(path, frame_len=128)


# ------------------------------------------------------------------ replay

def test_replay_counts_frames_per_second_over_every_classified_frame(tiny_model_path, tmp_path):
    """RadioML 2016's 11 classes under an RML22 model: AM-SSB is left out of
    the score, not out of the frames/s."""
    from gnuradio.amcee.labels import RML2016_CLASSES
    from gnuradio.amcee.tools.replay import format_report, replay

    per_group = 6
    labels = np.repeat(np.arange(len(RML2016_CLASSES)), per_group).astype(np.int64)
    frames = np.random.default_rng(5).standard_normal((len(labels), 2, 128)).astype(np.float32)
    data = tmp_path / "rml2016_like.npz"
    save_dataset(data, Dataset(frames, labels, np.zeros(len(labels), np.float32), RML2016_CLASSES, {}))
    predictions, report = replay(data, model_path=tiny_model_path, split="all")
    assert report["frames_classified"] == len(labels) == len(predictions["index"])
    assert report["frames"] == len(labels) - per_group
    assert report["frames_per_second"] == pytest.approx(len(labels) / report["seconds"])
    assert f"{len(labels)} frames ({len(labels) - per_group} scored) in" in format_report(report)
