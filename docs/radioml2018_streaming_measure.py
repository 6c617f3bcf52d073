"""The streaming measurements of docs/radioml2018.md: the peak memory that
Python and numpy allocate (tracemalloc; the mapped file's pages are not
counted, a copy of its frames is) during `amcee export-stream FILE --out REC`
(split all, complex layout) and during the per-class statistics of `amcee
report` (fidelity.measure), on RadioML-2018-shaped HDF5 files of random
frames, 24 classes x 26 SNRs x PER_GROUP frames, with the default chunks.

    PYTHONPATH=build/pytest-pkgroot python docs/radioml2018_streaming_measure.py 10 40 160

prints one JSON line per PER_GROUP (the files go to a temporary folder under
/tmp and are removed)."""
import json
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from gnuradio.amcee.cli import main
from gnuradio.amcee.data.dataset import Dataset
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.data.radioml2018 import RML2018_CLASSES, RML2018_SNRS, save_radioml2018
from gnuradio.amcee.data.synth import fidelity


def measure(folder, per_group):
    n = len(RML2018_CLASSES) * len(RML2018_SNRS) * per_group
    labels = np.repeat(np.arange(len(RML2018_CLASSES)), len(RML2018_SNRS) * per_group).astype(np.int64)
    snrs = np.tile(np.repeat(np.float32(RML2018_SNRS), per_group), len(RML2018_CLASSES))
    path = os.path.join(folder, f"rml2018_{n}.hdf5")
    frames = np.random.default_rng(0).standard_normal((n, 2, 1024), dtype=np.float32)
    save_radioml2018(path, Dataset(frames, labels, snrs, RML2018_CLASSES, {}))
    del frames
    row = {"frames": n, "file_bytes": os.path.getsize(path)}
    tracemalloc.start()
    start = time.perf_counter()
    main(["export-stream", path, "--out", os.path.join(folder, f"rec{n}")])
    row["export_stream_peak_traced"] = tracemalloc.get_traced_memory()[1]
    row["export_stream_s"] = round(time.perf_counter() - start, 2)
    tracemalloc.stop()
    ds = load_dataset(path)
    tracemalloc.start()
    fidelity.measure(ds)
    row["report_measure_peak_traced"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    return row


if __name__ == "__main__":
    folder = tempfile.mkdtemp(prefix="streamed_", dir="/tmp")
    try:
        for per_group in map(int, sys.argv[1:]):
            print(json.dumps(measure(folder, per_group)), file=sys.stderr, flush=True)
    finally:
        os.rmdir(folder)
