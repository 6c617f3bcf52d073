"""The measurements of docs/radioml2018.md: one epoch of training.train.train
(what `amcee train` runs) on a RadioML-2018-shaped HDF5 file of random frames,
its time, and the peak anonymous and file-backed memory of loading and of
training, sampled from /proc/self/status every 50 ms.

    python docs/radioml2018_measure.py train FILE.h5 PER_GROUP [train_fraction=F] [val_fraction=F] [eval_batch=N]

writes FILE.h5 (PER_GROUP frames per class and SNR: 32 gives 19,968 frames)
when it does not exist, trains into FILE.h5.run and prints one JSON line.
Run it from the checkout with PYTHONPATH=build/pytest-pkgroot to measure the
sources, or as is to measure the installed module."""
import json, os, sys, threading, time
import numpy as np

peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
def sample():
    while True:
        with open('/proc/self/status') as f:
            for line in f:
                k, _, v = line.partition(':')
                if k in peaks:
                    peaks[k] = max(peaks[k], int(v.split()[0]))
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()

from gnuradio.amcee.data.dataset import Dataset
from gnuradio.amcee.data.radioml2018 import RML2018_CLASSES, RML2018_SNRS, save_radioml2018
from gnuradio.amcee.data.files import load_dataset

def make(path, per_group):
    if os.path.exists(path):
        return
    n = per_group * 24 * 26
    # Written in pieces: the generator must not hold the file either.
    import h5py
    with h5py.File(path + '.tmp', 'w') as f:
        x = f.create_dataset('X', (n, 1024, 2), '<f4')
        y = f.create_dataset('Y', (n, 24), '<i8')
        labels = np.repeat(np.arange(24), 26 * per_group)
        snrs = np.tile(np.repeat(np.array(RML2018_SNRS), per_group), 24)
        rng = np.random.default_rng(0)
        for s in range(0, n, 8192):
            e = min(n, s + 8192)
            x[s:e] = rng.standard_normal((e - s, 1024, 2), dtype=np.float32)
            y[s:e] = np.eye(24, dtype=np.int64)[labels[s:e]]
        f.create_dataset('Z', data=snrs.reshape(-1, 1).astype(np.int64))
    os.replace(path + '.tmp', path)

def reset():
    for k in peaks: peaks[k] = 0

mode, path, per_group = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter(); make(path, per_group); gen = time.perf_counter() - t
reset()
t = time.perf_counter(); ds = load_dataset(path); load_s = time.perf_counter() - t
out = {"file": path, "bytes": os.path.getsize(path), "frames": len(ds), "generate_s": round(gen, 1),
       "load_s": round(load_s, 2), "load_peak_kib": dict(peaks)}
del ds
if mode == "train":
    from gnuradio.amcee.training.train import TrainConfig, train
    import shutil
    run = path + ".run"; shutil.rmtree(run, ignore_errors=True)
    extra = dict(a.split('=') for a in sys.argv[4:])
    cfg = TrainConfig(data=path, out_dir=run, epochs=1, progress=False,
                      train_fraction=float(extra.get('train_fraction', 1)), val_fraction=float(extra.get('val_fraction', 1)), eval_batch=int(extra.get('eval_batch', 4096)))
    reset()
    t = time.perf_counter(); summary = train(cfg); total = time.perf_counter() - t
    m = [json.loads(l) for l in open(os.path.join(run, 'metrics.jsonl'))][-1]
    out.update(train_frames=summary["sizes"]["train"], val_frames=summary["sizes"]["val"],
               epoch_seconds=round(m["epoch_seconds"], 1), seconds_with_eval=round(m["seconds_with_eval"], 1),
               train_call_s=round(total, 1), train_peak_kib=dict(peaks), threads=__import__('torch').get_num_threads())
print(json.dumps(out))
