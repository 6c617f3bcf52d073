"""A tiny, easy, deterministic dataset for training/eval/calibration tests.

Class c is a complex tone at (c + 1) / 32 cycles per sample with a random phase
plus white noise at the frame's SNR, L1-normalised like RML22: learnable in a
few epochs by the paper's CNN, with SNR-dependent difficulty.
"""
import numpy as np


def make_tiny_dataset(path=None, frames_per_key=40, snrs=(0, 10, 20), frame_len=128, seed=0):
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.npz import save_dataset
    from gnuradio.amcee.labels import RML22_CLASSES

    rng = np.random.default_rng(seed)
    n_keys = len(RML22_CLASSES) * len(snrs)
    labels = np.repeat(np.arange(len(RML22_CLASSES)), len(snrs) * frames_per_key).astype(np.int64)
    snr = np.tile(np.repeat(np.asarray(snrs, np.float32), frames_per_key), len(RML22_CLASSES))
    t = np.arange(frame_len)
    phase = rng.uniform(0, 2 * np.pi, len(labels))
    tone = np.exp(1j * (2 * np.pi * (labels[:, None] + 1) / 32 * t + phase[:, None]))
    noise_std = 10 ** (-snr / 20)
    noise = (rng.standard_normal(tone.shape) + 1j * rng.standard_normal(tone.shape)) * noise_std[:, None] / np.sqrt(2)
    x = tone + noise
    x = x / np.abs(x).sum(axis=1, keepdims=True)
    frames = np.stack([x.real, x.imag], axis=1).astype(np.float32)
    assert len(frames) == n_keys * frames_per_key
    ds = Dataset(frames=frames, labels=labels, snrs=snr, classes=tuple(RML22_CLASSES),
                 meta={"source": "tests/tiny_data.py"})
    if path is not None:
        save_dataset(str(path), ds)
    return ds


def train_tiny_model(data_path, out_dir, epochs=3, exits=("V0", "V1")):
    """A briefly trained early-exit model on the tiny dataset; returns its model.pt path."""
    from gnuradio.amcee.training.train import TrainConfig, train

    config = TrainConfig(data=str(data_path), out_dir=str(out_dir), exits=exits, scheme="joint",
                         epochs=epochs, batch_size=100, lr=3e-3, threads=1, progress=False,
                         eval_batch=512)
    return train(config)["model"]
