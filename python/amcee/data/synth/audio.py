"""Speech-like audio for the analog classes (WBFM, AM-DSB), made on the spot.

RML22 modulates the real part of a podcast recording: talk spurts with pauses,
at a podcast's level (active speech around -20 dBFS).  The pauses matter for
classification: a silent WBFM or AM-DSB signal is a bare carrier, which is what
makes those two classes hard to tell apart.  This module synthesises audio with
the same structure so nothing has to be downloaded:

* voiced syllables: a glottal-pulse train (speaker pitch with intonation and
  jitter) shaped by a spectral tilt and three vowel formants;
* unvoiced onsets: short bursts of high-passed noise (fricatives);
* a syllable-rate (about 4-5 Hz) amplitude envelope, talk spurts of 0.6-2.5 s
  separated by pauses of 0.15-1 s, and a faint room-noise floor.

Everything is drawn from a ``numpy.random.Generator``, so a seed gives the same
audio on every machine.
"""
import numpy as np
from gnuradio import blocks, gr

#: Audio sample rate of the analog transmitters (RML22: 44.1 kHz).
AUDIO_RATE = 44100

#: RMS level of active speech in full-scale units (about -20 dBFS).
SPEECH_RMS = 0.1

#: RMS of the room-noise floor heard in pauses (about -66 dBFS).
NOISE_FLOOR_RMS = 5e-4

# (F1, F2, F3) in Hz of common vowels (Peterson & Barney averages, male voices).
_VOWEL_FORMANTS = np.array([
    (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
    (570, 840, 2410), (660, 1720, 2410), (520, 1190, 2390), (390, 1990, 2550),
], dtype=float)
_FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 120.0])


def _vowel_response(n, formants, pitch, rate):
    """Complex frequency response on an rfft grid: formant resonators + glottal tilt."""
    w = 2 * np.pi * np.fft.rfftfreq(n, 1.0 / rate) / rate
    z1 = np.exp(-1j * w)
    h = np.ones_like(z1)
    for f, bw in zip(formants, _FORMANT_BANDWIDTHS):
        r = np.exp(-np.pi * bw / rate)
        theta = 2 * np.pi * f / rate
        # Unit gain at DC so that every formant contributes a comparable level.
        dc = 1 - 2 * r * np.cos(theta) + r * r
        h *= dc / (1 - 2 * r * np.cos(theta) * z1 + r * r * z1 * z1)
    freq = w * rate / (2 * np.pi)
    tilt = 1.0 / (1.0 + (freq / (2.0 * pitch)) ** 2)  # glottal source roll-off
    return h * tilt


def _voiced(n, f0_start, f0_end, formants, rng, rate):
    """One vowel: jittered glottal pulses through the vowel's response."""
    f0 = np.linspace(f0_start, f0_end, n) * (1 + 0.01 * rng.standard_normal(n))
    phase = np.cumsum(f0 / rate)
    excitation = np.zeros(n)
    excitation[np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)] = 1.0
    excitation += 0.02 * rng.standard_normal(n)  # breathiness
    spectrum = np.fft.rfft(excitation) * _vowel_response(n, formants, f0.mean(), rate)
    return np.fft.irfft(spectrum, n)


def _fricative(n, rng, rate):
    """Unvoiced consonant: white noise high-passed above a few kHz."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freq = np.fft.rfftfreq(n, 1.0 / rate)
    cutoff = rng.uniform(2500, 5000)
    spectrum *= 1.0 / (1.0 + (cutoff / np.maximum(freq, 1.0)) ** 4)
    return np.fft.irfft(spectrum, n)


def _envelope(n):
    """Syllable envelope: quick rise, sustained nucleus, slower decay."""
    t = np.linspace(0.0, 1.0, n)
    rise = np.clip(t / 0.2, 0, 1)
    fall = np.clip((1 - t) / 0.35, 0, 1)
    return np.sin(0.5 * np.pi * np.minimum(rise, fall)) ** 2


def _syllable(rng, f0_base, tract_scale, rate):
    n = int(rate * rng.uniform(0.12, 0.30))
    formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * tract_scale
    glide = rng.uniform(0.85, 1.15, size=2)  # intonation within the syllable
    out = _voiced(n, f0_base * glide[0], f0_base * glide[1], formants, rng, rate)
    out /= np.sqrt(np.mean(out ** 2)) + 1e-12
    out *= _envelope(n)
    if rng.random() < 0.4:  # consonant onset
        m = int(rate * rng.uniform(0.02, 0.06))
        burst = _fricative(m, rng, rate)
        burst *= 0.5 * np.hanning(m) / (np.sqrt(np.mean(burst ** 2)) + 1e-12)
        out = np.concatenate([burst, out])
    return out * rng.uniform(0.5, 1.0)


def speech_like(n_samples, rng, rate=AUDIO_RATE):
    """``n_samples`` float32 samples of speech-like audio in [-1, 1] with pauses.

    ``rng`` is a ``numpy.random.Generator`` (or an int seed).  Active speech is
    scaled to :data:`SPEECH_RMS`; pauses keep only a faint noise floor.
    """
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    if rate < 16000:
        raise ValueError(f"audio rate must be at least 16 kHz, got {rate}")
    rng = np.random.default_rng(rng)
    f0_base = rng.uniform(90, 220)          # speaker pitch
    tract_scale = rng.uniform(0.9, 1.15)    # speaker vocal-tract length
    pieces, active, total = [], [], 0
    # Start at a random point of the talk/pause cycle, as a random window would.
    if rng.random() < 0.35:
        pause = int(rate * rng.uniform(0.0, 0.9))
        pieces.append(np.zeros(pause))
        active.append(np.zeros(pause, bool))
        total += pause
    while total < n_samples:
        spurt_len = rate * rng.uniform(0.6, 2.5)
        spurt_gain = 10 ** (rng.uniform(-4, 4) / 20)
        spurt = []
        while sum(map(len, spurt)) < spurt_len:
            spurt.append(_syllable(rng, f0_base, tract_scale, rate))
            if rng.random() < 0.15:  # short gap between words
                spurt.append(np.zeros(int(rate * rng.uniform(0.03, 0.1))))
        spurt = np.concatenate(spurt) * spurt_gain
        pause = np.zeros(int(rate * rng.uniform(0.15, 1.0)))
        pieces += [spurt, pause]
        active += [np.ones(len(spurt), bool), np.zeros(len(pause), bool)]
        total += len(spurt) + len(pause)
    audio = np.concatenate(pieces)[:n_samples]
    speaking = np.concatenate(active)[:n_samples]
    if speaking.any():
        audio *= SPEECH_RMS / (np.sqrt(np.mean(audio[speaking] ** 2)) + 1e-12)
    audio += NOISE_FLOOR_RMS * rng.standard_normal(n_samples)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


class speech_source(gr.hier_block2):
    """Endless speech-like audio at :data:`AUDIO_RATE` (a looped synthetic track).

    For live flowgraphs; ``seconds`` sets the loop length.
    """

    def __init__(self, seed=0, seconds=30.0):
        gr.hier_block2.__init__(
            self, "speech_source",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_float))
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        track = speech_like(int(seconds * AUDIO_RATE), np.random.default_rng(seed))
        self.source = blocks.vector_source_f(track.tolist(), True)
        self.connect(self.source, self)
