"""SigMF replay recordings: bit-exact round trips, file_source replay, export-stream CLI."""
import json
import os

import numpy as np
import pytest
from gnuradio import blocks, gr

from gnuradio.amcee.cli import main as amcee_main
from gnuradio.amcee.data.dataset import Dataset, DatasetError, paper_split
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.data.npz import save_dataset
from gnuradio.amcee.data.rml_pickle import save_rml_pickle
from gnuradio.amcee.data.sigmf_recording import load_replay, replay_paths, save_replay
from gnuradio.amcee.labels import RML22_CLASSES


def make_dataset(per_group=3, snrs=(-4, 0, 6), length=16, seed=0):
    labels = np.repeat(np.arange(10), len(snrs) * per_group).astype(np.int64)
    snr_col = np.tile(np.repeat(np.array(snrs, np.float32), per_group), 10)
    frames = np.random.default_rng(seed).standard_normal((len(labels), 2, length)).astype(np.float32)
    return Dataset(frames, labels, snr_col, RML22_CLASSES, {"generator": "test"})


def assert_same_frames(a, b):
    assert a.classes == b.classes
    assert a.frames.tobytes() == b.frames.tobytes()
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.snrs.tobytes() == b.snrs.tobytes()


@pytest.mark.parametrize("layout", ["complex", "rml"])
def test_round_trip_is_bit_exact(tmp_path, layout):
    ds = make_dataset()
    ds.snrs[0] = np.float32(-3.3)  # a value that is not exact in decimal
    data_path, meta_path = save_replay(tmp_path / "rec", ds, layout=layout)
    assert (data_path, meta_path) == replay_paths(tmp_path / "rec")
    for name in (meta_path, data_path, str(tmp_path / "rec")):
        back = load_dataset(name)
        assert_same_frames(back, ds)
        assert back.meta["generator"] == "test"


@pytest.mark.parametrize("layout, datatype, vlen", [("complex", "cf32_le", 16), ("rml", "rf32_le", 32)])
def test_sigmf_metadata(tmp_path, layout, datatype, vlen):
    ds = make_dataset()
    _, meta_path = save_replay(tmp_path / "rec", ds, layout=layout, sample_rate=1e6)
    meta = json.loads(open(meta_path).read())
    info = meta["global"]
    assert info["core:datatype"] == datatype and info["core:sample_rate"] == 1e6
    assert info["amcee:classes"] == list(RML22_CLASSES) and info["amcee:frame_length"] == 16
    assert info["amcee:layout"] == layout and info["amcee:num_frames"] == len(ds)
    notes = meta["annotations"]
    assert len(notes) == len(ds)
    assert notes[7] == {"core:sample_start": 7 * vlen, "core:sample_count": vlen,
                        "core:label": RML22_CLASSES[ds.labels[7]],
                        "amcee:snr_db": float(ds.snrs[7])}


def test_pickle_npz_sigmf_chain(tmp_path):
    ds = make_dataset()
    save_rml_pickle(tmp_path / "RML22", ds)
    save_dataset(tmp_path / "d.npz", load_dataset(tmp_path / "RML22"))
    save_replay(tmp_path / "rec", load_dataset(tmp_path / "d.npz"), layout="rml")
    save_rml_pickle(tmp_path / "again", load_dataset(tmp_path / "rec.sigmf-meta"))
    assert_same_frames(load_dataset(tmp_path / "again"), ds)


@pytest.mark.parametrize("layout", ["complex", "rml"])
def test_file_source_replays_the_data_file(tmp_path, layout):
    ds = make_dataset()
    data_path, _ = save_replay(tmp_path / "rec", ds, layout=layout)
    if layout == "complex":
        source = blocks.file_source(gr.sizeof_gr_complex * 16, data_path, False)
        sink = blocks.vector_sink_c(16)
        expected = (ds.frames[:, 0] + 1j * ds.frames[:, 1]).astype(np.complex64)
    else:
        source = blocks.file_source(gr.sizeof_float * 32, data_path, False)
        sink = blocks.vector_sink_f(32)
        expected = ds.frames.reshape(len(ds), 32)
    tb = gr.top_block()
    tb.connect(source, sink)
    tb.run()
    got = np.array(sink.data(), dtype=expected.dtype).reshape(len(ds), -1)
    assert got.tobytes() == expected.tobytes()


@pytest.mark.filterwarnings("ignore:Data source ends before the final annotation")
def test_corrupt_and_truncated_data_files(tmp_path):
    data_path, meta_path = save_replay(tmp_path / "rec", make_dataset())
    data = open(data_path, "rb").read()
    with open(data_path, "wb") as f:
        f.write(data[:-8])
    with pytest.raises(DatasetError, match=r"rec\.sigmf-meta: unreadable SigMF recording"):
        load_replay(meta_path)
    with open(data_path, "wb") as f:
        f.write(b"\x01" + data[1:])
    with pytest.raises(DatasetError, match="unreadable SigMF recording"):
        load_dataset(data_path)


def test_missing_half_of_the_pair(tmp_path):
    data_path, meta_path = save_replay(tmp_path / "rec", make_dataset())
    os.remove(data_path)
    with pytest.raises(DatasetError, match=r"rec\.sigmf-data: missing file of the SigMF pair"):
        load_dataset(meta_path)


def test_unknown_annotation_label(tmp_path):
    _, meta_path = save_replay(tmp_path / "rec", make_dataset())
    meta = json.loads(open(meta_path).read())
    meta["annotations"][3]["core:label"] = "OOK"
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    with pytest.raises(DatasetError, match="unknown label.*OOK; valid names are QAM16"):
        load_dataset(meta_path)


@pytest.mark.parametrize("layout", ["complex", "rml"])
def test_export_stream_cli(tmp_path, capsys, layout):
    ds = make_dataset(per_group=20)
    save_rml_pickle(tmp_path / "RML22", ds)
    code = amcee_main(["export-stream", str(tmp_path / "RML22"), "--out", str(tmp_path / "test"),
                       "--layout", layout, "--split", "test"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    test_rows = paper_split(ds)[2]
    assert summary["frames"] == len(test_rows) == 60 and summary["layout"] == layout
    assert summary["meta"] == str(tmp_path / "test.sigmf-meta")
    back = load_dataset(summary["data"])
    assert_same_frames(back, ds.subset(test_rows))
    assert back.meta["split"] == "test"


def test_export_stream_cli_refuses_unsafe_pickle(tmp_path, capsys):
    (tmp_path / "junk").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    assert amcee_main(["export-stream", str(tmp_path / "junk"), "--out", str(tmp_path / "o")]) == 2
    assert "refuses to load global os.system" in capsys.readouterr().err
    assert not (tmp_path / "o.sigmf-data").exists()
