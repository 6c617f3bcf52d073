"""`amcee replay`: a dataset file through a real GNU Radio flowgraph.

Two sources, one flowgraph shape (source -> classifier -> null sink, and
classifier.batch -> classification_sink; no stream tags, which nothing
downstream reads: one message per call instead of a tag and a message per
frame, docs/performance.md):

* ``file``: ``blocks.file_source`` over raw frames: the data file of a SigMF
  replay recording as it is, or the selected frames written to a temporary raw
  file.  The truth comes from the dataset, matched by stream position.
* ``dataset``: ``amcee.dataset_source``, whose ``label``/``snr``/``frame_index``
  tags the classifier copies into its messages.

The classifier uses the same EarlyExitEngine as ``amcee eval``, so for the same
model, thresholds, frames and SNR values the decisions are the same, frame for
frame: by default, whichever the source, the plain rule (``amcee eval``'s
default ``--snr none``: the classifier does not put a dataset's true SNR into
a table fitted on estimated SNRs); with ``estimate_snr`` the classifier
estimates each frame's SNR for the model's SNR table, as ``--snr estimate``.
"""
import os
import tempfile
import time

import numpy as np
from gnuradio import blocks, gr

from ..blocks.classification_sink import classification_sink
from ..blocks.classifier import classifier
from ..blocks.dataset_source import dataset_source
from ..blocks.schema import BATCH_PORT
from ..data.dataset import labels_for_model, split_indices
from ..data.files import load_dataset
from ..data.sigmf_recording import replay_paths, sigmf_layout
from ..frames import check_layout, frames_to_vectors, vector_length
from .report_tables import group_summary, rows_per_value, table_lines

SOURCES = ("auto", "file", "dataset")
#: Frames written to the file source's temporary file per step.
REPLAY_CHUNK_FRAMES = 4096


class replay_flowgraph(gr.top_block):
    """Replays ``rows`` of a dataset through the classifier (see the module docstring)."""

    def __init__(self, path, ds, rows, model_path="", threshold=None, source="auto",
                 layout=None, split="all", seed=0, trusted=False, max_batch=None, workdir=None,
                 estimate_snr=False):
        gr.top_block.__init__(self, "amcee replay")
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        recorded_layout = sigmf_layout(path)
        if source == "auto":
            source = "file" if recorded_layout else "dataset"
        layout = layout or recorded_layout or "complex"
        check_layout(layout)
        self.source_kind = source
        self.layout = layout
        L = ds.frame_length
        vlen = vector_length(layout, L)
        itemsize = (gr.sizeof_gr_complex if layout == "complex" else gr.sizeof_float) * vlen
        self.temp_file = None
        if source == "dataset":
            self.source = dataset_source(path, layout=layout, split=split, seed=seed,
                                         trusted=trusted, frame_len=L)
        else:
            whole_recording = recorded_layout == layout and len(rows) == len(ds) and \
                np.array_equal(rows, np.arange(len(ds)))
            if whole_recording:
                data_path = replay_paths(path)[0]
            else:  # the frames to replay, back to back, as file_source reads them
                fd, data_path = tempfile.mkstemp(suffix=".raw", dir=workdir)
                os.close(fd)
                with open(data_path, "wb") as f:  # in chunks: a mapped dataset is never copied whole
                    for start in range(0, len(rows), REPLAY_CHUNK_FRAMES):
                        chunk = np.asarray(ds.frames[rows[start:start + REPLAY_CHUNK_FRAMES]])
                        frames_to_vectors(chunk, layout).tofile(f)
                self.temp_file = data_path
            self.source = blocks.file_source(itemsize, data_path, False)
        # A recording comes as fast as the classifier takes it: the block's
        # batching hands the network full batches on its own.
        self.classifier = classifier(model_path=model_path, threshold=threshold,
                                     input_format=layout, frame_len=L, max_batch=max_batch or 0,
                                     estimate_snr=estimate_snr, stream_tags=False)
        self.sink = classification_sink(self.classifier.classes())
        self.connect(self.source, self.classifier, blocks.null_sink(itemsize))
        self.msg_connect(self.classifier, BATCH_PORT, self.sink, BATCH_PORT)

    def cleanup(self):
        if self.temp_file and os.path.exists(self.temp_file):
            os.remove(self.temp_file)


def replay(path, model_path="", threshold=None, split="all", seed=0, source="auto", layout=None,
           max_frames=0, trusted=False, max_batch=None, estimate_snr=False):
    """Replay a dataset file; returns (predictions dict, report dict).

    ``estimate_snr``: the classifier estimates each frame's SNR itself
    for a model with an SNR table (without it: the plain rule)."""
    if source == "dataset" and max_frames:
        raise ValueError("--max-frames needs the file source (dataset_source replays the whole split)")
    if source == "auto" and max_frames:
        source = "file"  # dataset_source replays a whole split; the file source any rows
    ds = load_dataset(path, trusted=trusted)
    rows = split_indices(ds, split, seed=seed)
    if max_frames:
        rows = rows[:int(max_frames)]
    fg = replay_flowgraph(path, ds, rows, model_path=model_path, threshold=threshold,
                          source=source, layout=layout, split=split, seed=seed,
                          trusted=trusted, max_batch=max_batch, estimate_snr=estimate_snr)
    model_classes = fg.classifier.classes()
    try:
        labels, scored = labels_for_model(ds, model_classes, fg.classifier.frame_len,
                                          f"model {fg.classifier.model_path}")
        start = time.perf_counter()
        fg.run()
        elapsed = time.perf_counter() - start
    finally:
        fg.cleanup()
    rec = fg.sink.records()
    if len(rec["offset"]) != len(rows) or not np.array_equal(rec["offset"], np.arange(len(rows))):
        raise RuntimeError(f"replay classified {len(rec['offset'])} of {len(rows)} frames")
    predictions = {
        "index": rows.astype(np.int64),
        "exit": rec["exit"],
        "class": rec["cls"],
        "entropy": rec["entropy"],
        "confidence": rec["confidence"],
        "label": labels[rows],  # -1: a class the model lacks
        "snr": ds.snrs[rows],
    }
    if fg.source_kind == "dataset":  # the truth came with the stream: it must agree
        if not (np.array_equal(rec["frame_index"], rows) and np.array_equal(rec["true_cls"], predictions["label"])):
            raise RuntimeError("dataset_source truth tags disagree with the dataset file")
    keep = scored[rows]  # frames of classes the model lacks are left out of the score
    report = make_report({key: value[keep] for key, value in predictions.items()}, model_classes,
                         fg.classifier.exit_names(), elapsed, classified=len(rows))
    report.update(dataset=os.fspath(path), model=fg.classifier.model_path, split=split,
                  seed=seed, source=fg.source_kind, layout=fg.layout,
                  thresholds=list(fg.classifier.get_threshold()),
                  snr_table_used=fg.classifier.engine.uses_snr_table, estimate_snr=bool(estimate_snr))
    return predictions, report


def make_report(pred, classes, exit_names, elapsed, classified=None):
    """Accuracy and exit shares per SNR and overall over the scored frames
    ``pred``, and frames/s over all ``classified`` frames (default: those
    scored): frames of classes the model lacks are left out of the score,
    not out of the work the flowgraph did in ``elapsed``."""
    decisions = (pred["class"], pred["label"], pred["exit"])
    everything = np.ones(len(pred["index"]), bool)
    classified = int(len(pred["index"]) if classified is None else classified)
    return {
        "frames": int(len(pred["index"])),
        "frames_classified": classified,
        "seconds": float(elapsed),
        "frames_per_second": float(classified / elapsed) if elapsed > 0 else 0.0,
        "classes": list(classes),
        "exit_names": list(exit_names),
        "all": group_summary(*decisions, everything, len(exit_names)),
        "per_snr": rows_per_value(pred["snr"], "snr", *decisions, everything, len(exit_names)),
    }


def format_report(report):
    lines = table_lines(report["per_snr"], "snr", report["exit_names"], report["all"])
    scored = "" if report["frames"] == report["frames_classified"] else f" ({report['frames']} scored)"
    lines.append(f"{report['frames_classified']} frames{scored} in {report['seconds']:.2f} s: "
                 f"{report['frames_per_second']:.0f} frames/s ({report['source']} source, "
                 f"{report['layout']} layout); exit shares in % of frames")
    return "\n".join(lines)
