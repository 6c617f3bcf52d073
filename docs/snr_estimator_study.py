"""Which per-frame SNR estimator?  The module's against the classic ones, on
RML22-style frames of every class with their clean twins (reference: each
frame's realised SNR), through AWGN alone and through the full RML22 channel.

Candidates:

* ``m2m4``: the M2M4 moment estimator for a constant-modulus signal in complex
  Gaussian noise, S = sqrt(2 M2^2 - M4), N = M2 - S;
* ``quantile``: noise = mean of the lowest quarter of the Hann periodogram
  bins, corrected by the order-statistics factor of white noise (the
  "out-of-band bins" floor with a fixed share of noise bins);
* ``mdl``: eigenvalues of the 16 x 16 covariance of the frame's sliding
  windows, the signal subspace sized by MDL, noise = mean of the rest;
* ``module``: amcee.estimate_snr_db (include/gnuradio/amcee/snr_estimate.h);
* ``floor x{1.5,2,2.5}`` and ``raw x{1.5,2,2.5}``: a numpy replica of the
  module's method (same smoothing, floor, bias table and M2M4 step) for its
  two choices: the noise-bin limit (NOISE_BIN_FACTOR times the floor) and the
  final noise power, the scaled floor itself ("floor") or the mean of the
  unsmoothed bins below the limit ("raw", the module's).

Printed per variant: over the (class, SNR) keys at >= 0 dB the mean and the
worst absolute mean error, the median absolute error of the frames; AWGN
QPSK's worst mean error at 0..20 dB; the pooled mean error at -10 and -4 dB.

  PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/snr_estimator_study.py
"""
import argparse

import numpy as np

from gnuradio.amcee.amcee_python import estimate_snr_db
from gnuradio.amcee.data.synth.generate import generate
from gnuradio.amcee.frames import to_complex

FLOOR_DB, CEILING_DB = -30.0, 50.0


def _snr_db(m2, noise):
    signal = np.maximum(m2 - noise, 1e-3 * noise)
    return np.clip(10 * np.log10(signal / np.maximum(noise, 1e-30)), FLOOR_DB, CEILING_DB)


def m2m4(x):
    p = np.abs(x) ** 2
    m2, m4 = p.mean(1), (p * p).mean(1)
    return _snr_db(m2, m2 - np.sqrt(np.maximum(2 * m2 * m2 - m4, 0)))


def quantile_floor(x, share=0.25):
    n = x.shape[1]
    w = np.hanning(n + 2)[1:-1]
    w /= np.sqrt((w ** 2).sum())
    p = np.sort(np.abs(np.fft.fft(x * w, axis=1)) ** 2, axis=1)
    k = int(share * n)
    # E[mean of the k lowest of n unit exponentials]
    order = np.cumsum(1.0 / (n - np.arange(n)))[:k].mean()
    return _snr_db((np.abs(x) ** 2).mean(1), p[:, :k].mean(1) / order)


def mdl(x, m=16):
    n = x.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(x, m, axis=1)  # [N, n-m+1, m]
    r = np.einsum("fti,ftj->fij", windows, windows.conj()) / windows.shape[1]
    lam = np.sort(np.linalg.eigvalsh(r), axis=1)[:, ::-1]
    snapshots = windows.shape[1]
    best = np.zeros(len(x), int)
    best_score = np.full(len(x), np.inf)
    for k in range(m - 1):
        rest = np.maximum(lam[:, k:], 1e-30)
        geo, ari = np.exp(np.log(rest).mean(1)), rest.mean(1)
        score = -snapshots * (m - k) * np.log(geo / ari) + 0.5 * k * (2 * m - k) * np.log(snapshots)
        better = score < best_score
        best[better], best_score[better] = k, score[better]
    noise = np.array([lam[i, best[i]:].mean() for i in range(len(x))])
    return _snr_db((np.abs(x) ** 2).mean(1), noise)


def _smoothed(x, half_width):
    n = x.shape[1]
    w = np.hanning(n + 2)[1:-1]
    w /= np.sqrt((w ** 2).sum())
    p = np.abs(np.fft.fft(x * w, axis=1)) ** 2
    padded = np.concatenate([p[:, -half_width:], p, p[:, :half_width]], 1)
    c = np.cumsum(np.concatenate([np.zeros((len(x), 1)), padded], 1), 1)
    return p, (c[:, 2 * half_width + 1:] - c[:, :-2 * half_width - 1]) / (2 * half_width + 1)


def replica(factor, final, n=128, half_width=6, k=13, calibration_frames=2000):
    """The module's method in numpy, with a given noise-bin limit and final step."""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((calibration_frames, n)) + 1j * rng.standard_normal((calibration_frames, n))) / np.sqrt(2)
    _, s = _smoothed(noise, half_width)
    bias = np.zeros(n + 1)
    for b in range(k, n + 1):
        bias[b] = np.sort(s[:, :b], 1)[:, :k].mean()

    def estimate(x):
        p, s = _smoothed(x, half_width)
        lowest = np.sort(s, 1)[:, :k].mean(1)
        noise = lowest / bias[n]
        for _ in range(8):
            b = np.clip((s < factor * noise[:, None]).sum(1), k, n)
            noise = lowest / bias[b]
        if final == "raw":
            below = s < factor * noise[:, None]
            count = below.sum(1)
            noise = np.where(count >= k, (p * below).sum(1) / np.maximum(count, 1), noise)
        m2 = (np.abs(x) ** 2).mean(1)
        snr = _snr_db(m2, noise)
        snr_m2m4 = m2m4(x)
        return np.where((snr_m2m4 > snr) & (snr_m2m4 > 8.0), snr_m2m4, snr)
    return estimate


CANDIDATES = {"m2m4": m2m4, "quantile": quantile_floor, "mdl": mdl,
              "module": lambda x: estimate_snr_db(x.astype(np.complex64)),
              **{f"{final} x{factor:g}": replica(factor, final)
                 for final in ("floor", "raw") for factor in (1.5, 2.0, 2.5)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-per-key", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    for variant in ("awgn", "all"):
        ds, clean = generate(frames_per_key=args.frames_per_key, variant=variant, seed=args.seed,
                             progress=False, return_clean=True)
        x, c = to_complex(ds.frames, np.complex128), to_complex(clean, np.complex128)
        true = 10 * np.log10((np.abs(c) ** 2).sum(1) / (np.abs(x - c) ** 2).sum(1))
        snrs, labels = ds.snrs, ds.labels
        qpsk = ds.classes.index("QPSK")
        print(f"== {variant}: {len(x)} frames")
        print("| estimator | mean abs(mean error), >= 0 dB | worst abs(mean error), >= 0 dB | median abs(error), "
              ">= 0 dB | QPSK worst abs(mean error) 0..20 dB | mean error at -10 dB | at -4 dB |")
        for name, estimate in CANDIDATES.items():
            error = estimate(x) - true
            keys = [(i, s) for i in range(len(ds.classes)) for s in np.unique(snrs) if s >= 0]
            means = np.array([error[(labels == i) & (snrs == s)].mean() for i, s in keys])
            q = max(abs(error[(labels == qpsk) & (snrs == s)].mean()) for s in np.unique(snrs) if 0 <= s <= 20)
            print(f"| {name} | {np.abs(means).mean():.2f} | {np.abs(means).max():.2f} "
                  f"| {np.median(np.abs(error[snrs >= 0])):.2f} | {q:.2f} "
                  f"| {error[snrs == -10].mean():.1f} | {error[snrs == -4].mean():.1f} |", flush=True)


if __name__ == "__main__":
    main()
