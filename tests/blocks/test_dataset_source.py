"""amcee.dataset_source: every frame, in order, with label/snr/frame_index tags."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import amcee
from gnuradio.amcee.data.dataset import Dataset, DatasetError, paper_split
from gnuradio.amcee.data.npz import save_dataset
from gnuradio.amcee.data.rml_pickle import save_rml_pickle
from gnuradio.amcee.data.sigmf_recording import save_replay
from gnuradio.amcee.labels import RML22_CLASSES


def make_dataset(per_group=10, snrs=(-10, 0, 10), length=16, seed=0):
    labels = np.repeat(np.arange(10), len(snrs) * per_group).astype(np.int64)
    snr_col = np.tile(np.repeat(np.array(snrs, np.float32), per_group), 10)
    frames = np.random.default_rng(seed).standard_normal((len(labels), 2, length)).astype(np.float32)
    return Dataset(frames, labels, snr_col, RML22_CLASSES, {"generator": "test"})


def run_source(source, vlen, layout="complex", limit=None):
    sink = blocks.vector_sink_c(vlen) if layout == "complex" else blocks.vector_sink_f(vlen)
    tb = gr.top_block()
    if limit is None:
        tb.connect(source, sink)
    else:
        head = blocks.head(gr.sizeof_gr_complex * vlen if layout == "complex"
                           else gr.sizeof_float * vlen, limit)
        tb.connect(source, head, sink)
    tb.run()
    return np.array(sink.data()).reshape(-1, vlen), [gr.tag_to_python(t) for t in sink.tags()]


def tags_by_offset(tags):
    """{offset: {key: value}} after checking that no offset repeats a key."""
    out = {}
    for tag in tags:
        keys = out.setdefault(tag.offset, {})
        assert tag.key not in keys, f"two {tag.key} tags at offset {tag.offset}"
        keys[tag.key] = tag.value
    return out


def assert_truth_tags(tags, ds, rows):
    """Vector i carries the label, snr and frame_index of dataset frame rows[i]."""
    by_offset = tags_by_offset(t for t in tags if t.key in ("label", "snr", "frame_index"))
    assert sorted(by_offset) == list(range(len(rows)))
    for offset, row in enumerate(rows):
        assert by_offset[offset] == {"label": ds.classes[ds.labels[row]],
                                     "snr": float(ds.snrs[row]),
                                     "frame_index": int(row)}


def complex_vectors(frames):
    return (frames[:, 0] + 1j * frames[:, 1]).astype(np.complex64)


@pytest.fixture()
def dataset_files(tmp_path):
    ds = make_dataset()
    save_dataset(tmp_path / "d.npz", ds)
    save_rml_pickle(tmp_path / "RML22", ds)
    save_replay(tmp_path / "rec", ds, layout="rml")
    return ds, {"npz": tmp_path / "d.npz", "pickle": tmp_path / "RML22",
                "sigmf": tmp_path / "rec.sigmf-meta"}


@pytest.mark.parametrize("fmt", ["npz", "pickle", "sigmf"])
def test_every_frame_with_tags_complex(dataset_files, fmt):
    ds, paths = dataset_files
    source = amcee.dataset_source(str(paths[fmt]), layout="complex", frame_len=16)
    assert source.num_frames() == len(ds) and source.frame_length() == 16
    data, tags = run_source(source, 16)
    assert data.astype(np.complex64).tobytes() == complex_vectors(ds.frames).tobytes()
    assert_truth_tags(tags, ds, np.arange(len(ds)))


def test_every_frame_with_tags_rml_layout(dataset_files):
    ds, paths = dataset_files
    data, tags = run_source(amcee.dataset_source(str(paths["npz"]), layout="rml"), 32, "rml")
    assert data.astype(np.float32).tobytes() == ds.frames.tobytes()
    assert_truth_tags(tags, ds, np.arange(len(ds)))
    label = next(t for t in tags if t.key == "label")
    assert isinstance(label.value, str)  # a pmt symbol on the wire


def test_tag_types_on_the_wire(dataset_files):
    ds, paths = dataset_files
    source, sink = amcee.dataset_source(str(paths["npz"])), blocks.vector_sink_c(16)
    tb = gr.top_block()
    tb.connect(source, sink)  # keep `source` referenced: GNU Radio does not own Python blocks
    tb.run()
    raw = {pmt.symbol_to_string(t.key): t.value for t in sink.tags() if t.offset == 0}
    assert pmt.is_symbol(raw["label"]) and pmt.is_real(raw["snr"])
    assert pmt.is_uint64(raw["frame_index"])


def test_many_work_calls_keep_absolute_offsets(tmp_path):
    ds = make_dataset(per_group=40, length=128)  # 1200 frames of 1 KiB: many buffers
    save_dataset(tmp_path / "big.npz", ds)
    data, tags = run_source(amcee.dataset_source(str(tmp_path / "big.npz")), 128)
    assert len(data) == 1200
    assert_truth_tags(tags, ds, np.arange(len(ds)))


def test_repeat_wraps_around(dataset_files):
    ds, paths = dataset_files
    n = len(ds)
    data, tags = run_source(amcee.dataset_source(str(paths["npz"]), repeat=True), 16,
                            limit=2 * n + 5)
    rows = np.concatenate([np.arange(n), np.arange(n), np.arange(5)])
    assert data.astype(np.complex64).tobytes() == complex_vectors(ds.frames[rows]).tobytes()
    assert_truth_tags(tags, ds, rows)


def test_shuffle_is_a_seeded_permutation_and_tags_follow(dataset_files):
    ds, paths = dataset_files
    data, tags = run_source(amcee.dataset_source(str(paths["npz"]), shuffle=True, seed=7), 16)
    rows = [t.value for t in sorted(tags, key=lambda t: t.offset) if t.key == "frame_index"]
    assert sorted(rows) == list(range(len(ds))) and rows != list(range(len(ds)))
    assert data.astype(np.complex64).tobytes() == complex_vectors(ds.frames[rows]).tobytes()
    assert_truth_tags(tags, ds, rows)
    again, _ = run_source(amcee.dataset_source(str(paths["npz"]), shuffle=True, seed=7), 16)
    np.testing.assert_array_equal(again, data)


def test_split_replays_only_that_part(dataset_files):
    ds, paths = dataset_files
    test_rows = paper_split(ds, seed=2)[2]
    data, tags = run_source(amcee.dataset_source(str(paths["pickle"]), split="test", seed=2), 16)
    assert data.astype(np.complex64).tobytes() == complex_vectors(ds.frames[test_rows]).tobytes()
    assert_truth_tags(tags, ds, test_rows)  # frame_index is the index in the file


def test_bad_arguments_fail_in_the_constructor(dataset_files, tmp_path):
    _, paths = dataset_files
    with pytest.raises(ValueError, match="frames have 16 samples, the block was set to frame_len=128"):
        amcee.dataset_source(str(paths["npz"]), frame_len=128)
    with pytest.raises(ValueError, match="unknown layout 'iq'"):
        amcee.dataset_source(str(paths["npz"]), layout="iq")
    (tmp_path / "evil").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    with pytest.raises(DatasetError, match="refuses to load global os.system"):
        amcee.dataset_source(str(tmp_path / "evil"))


def test_file_source_over_sigmf_data_matches_dataset_source(dataset_files):
    ds, paths = dataset_files
    data_path = str(paths["sigmf"]).replace(".sigmf-meta", ".sigmf-data")
    file_source = blocks.file_source(gr.sizeof_float * 32, data_path, False)
    source = amcee.dataset_source(str(paths["sigmf"]), layout="rml")
    from_file, from_block = blocks.vector_sink_f(32), blocks.vector_sink_f(32)
    tb = gr.top_block()
    tb.connect(file_source, from_file)
    tb.connect(source, from_block)
    tb.run()
    assert np.array(from_file.data(), np.float32).tobytes() == ds.frames.tobytes()
    assert np.array(from_block.data(), np.float32).tobytes() == ds.frames.tobytes()


def test_dataset_source_classifier_vector_sink(tmp_path, tiny_model_path):
    """Truth tags survive the classifier, which adds its own tag and message per frame."""
    ds = make_dataset(per_group=3, length=128)
    save_dataset(tmp_path / "d.npz", ds)
    source = amcee.dataset_source(str(tmp_path / "d.npz"))
    classify = amcee.classifier(model_path=tiny_model_path, frame_len=128)
    sink = blocks.vector_sink_c(128)
    store = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(source, classify, sink)
    tb.msg_connect(classify, "classification", store, "store")
    tb.run()

    data = np.array(sink.data(), np.complex64).reshape(-1, 128)
    assert data.tobytes() == complex_vectors(ds.frames).tobytes()
    tags = [gr.tag_to_python(t) for t in sink.tags()]
    assert_truth_tags(tags, ds, np.arange(len(ds)))
    assert sorted(t.offset for t in tags if t.key == "amc") == list(range(len(ds)))
    assert store.num_messages() == len(ds)
    for i in range(len(ds)):
        msg = pmt.to_python(store.get_message(i))
        row = msg["offset"]
        assert msg["true_label"] == ds.classes[ds.labels[row]]
        assert msg["snr"] == float(ds.snrs[row])


def _grc_replay(tmp_path, source_params, extra_blocks=""):
    """A flowgraph file: amcee_dataset_source (RML layout, 16 samples) -> null sink."""
    grc = tmp_path / "replay_test.grc"
    grc.write_text(textwrap.dedent(f"""\
        options:
          parameters: {{id: replay_test, generate_options: no_gui, run_options: run,
                       output_language: python, title: replay test}}
          states: {{state: enabled}}
        blocks:
        - name: src
          id: amcee_dataset_source
          parameters: {{layout: rml, frame_len: '16', repeat: 'False', trusted: 'False', {source_params}}}
          states: {{state: enabled}}
        - name: sink
          id: blocks_null_sink
          parameters: {{type: float, vlen: '32', num_inputs: '1', bus_structure_sink: '[[0,],]'}}
          states: {{state: enabled}}
        {extra_blocks}
        connections:
        - [src, '0', sink, '0']
        metadata: {{file_format: 1}}
        """))
    return grc


def _grcc(grc, out_dir):
    return subprocess.run(["grcc", "-o", str(out_dir), str(grc)], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc not installed")
def test_grc_block_compiles_and_runs(dataset_files, tmp_path):
    _, paths = dataset_files
    grc = _grc_replay(tmp_path, f"path: '{paths['npz']}', split: test, shuffle: 'True', seed: '3'")
    compiled = _grcc(grc, tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    script = tmp_path / "replay_test.py"
    assert "amcee.dataset_source(" in script.read_text()
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "all 30 frames sent" in ran.stdout + ran.stderr


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc not installed")
@pytest.mark.parametrize("split", ["all", "train", "val", "test"])
def test_grc_split_from_a_flowgraph_parameter(dataset_files, tmp_path, split):
    """Split set to a parameter (as examples/replay_dataset.grc does) replays
    the split named on the command line, not the list's default."""
    ds, paths = dataset_files
    parameter = textwrap.indent(textwrap.dedent("""\
        - name: which
          id: parameter
          parameters: {label: Split, type: str, value: test}
          states: {state: enabled}"""), " " * 8).lstrip()
    grc = _grc_replay(tmp_path, f"path: '{paths['npz']}', split: which, shuffle: 'False', seed: '0'", parameter)
    compiled = _grcc(grc, tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = subprocess.run([sys.executable, str(tmp_path / "replay_test.py"), "--which", split],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    expected = len(ds) if split == "all" else len(paper_split(ds, seed=0)[("train", "val", "test").index(split)])
    assert f"all {expected} frames sent" in ran.stdout + ran.stderr


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc not installed")
def test_grc_refuses_an_unknown_split(dataset_files, tmp_path):
    _, paths = dataset_files
    grc = _grc_replay(tmp_path, f"path: '{paths['npz']}', split: tset, shuffle: 'False', seed: '0'")
    compiled = _grcc(grc, tmp_path)
    assert compiled.returncode != 0
    assert "split in ('all', 'train', 'val', 'test')" in compiled.stdout + compiled.stderr
