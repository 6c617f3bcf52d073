"""Speech-like audio for the analog classes (WBFM, AM-DSB), made on the spot.

RML22 modulates the real part of a podcast recording: talk spurts with pauses,
at a podcast's level (active speech around -20 dBFS).  The pauses matter for
classification: a silent WBFM or AM-DSB signal is a bare carrier, which is what
makes those two classes hard to tell apart.  The high frequencies matter too:
WBFM's 75 us pre-emphasis raises everything above 2.1 kHz (+12 dB at 8 kHz),
so the fricatives and sibilants of real speech (energy up to 8-10 kHz) set much
of a WBFM signal's instantaneous frequency.  This module synthesises audio with
both properties so nothing has to be downloaded:

* voiced syllables: a glottal-pulse train (speaker pitch with intonation and
  jitter) shaped by a spectral tilt and three vowel formants;
* consonants: high-frequency fricatives (/s z f th/: noise shaped at 4-10 kHz,
  see :data:`HIGH_FREQUENCY_PHONEME_SHARE` for how often) and other short
  consonant bursts (stop releases, /sh h/: noise at 1.5-4 kHz);
* a syllable-rate (about 4-5 Hz) amplitude envelope, talk spurts of 0.6-2.5 s
  separated by pauses of 0.15-1 s, and a faint room-noise floor;
* the whole track equalised so that its long-term average spectrum is the
  published one of Byrne et al. (1994), :data:`LTASS_BANDS`.

Everything is drawn from a ``numpy.random.Generator``, so a seed gives the same
audio on every machine.  :func:`speech_like_v1` keeps the generator of the
datasets made before the spectrum was matched (it has almost no energy above
4 kHz), for comparison and to reproduce those sets.
"""
import numpy as np
from gnuradio import blocks, gr

#: Audio sample rate of the analog transmitters (RML22: 44.1 kHz; carries up to 22 kHz).
AUDIO_RATE = 44100

#: RMS level of active speech in full-scale units (about -20 dBFS).
SPEECH_RMS = 0.1

#: RMS of the room-noise floor heard in pauses (about -66 dBFS).
NOISE_FLOOR_RMS = 5e-4

#: Long-term average speech spectrum, 1/3-octave band centre (Hz) -> band level
#: (dB SPL at 0.45 m for 70 dB overall): the "universal" LTASS, male and female
#: talkers of 12 languages averaged, of Byrne, Dillon, Tran et al. (1994), "An
#: international comparison of long-term average speech spectra", J. Acoust.
#: Soc. Am. 96(4), 2108-2120.  Only the shape is used (levels relative to the total).
LTASS_BANDS = (
    (63, 38.6), (80, 43.5), (100, 54.4), (125, 57.7), (160, 56.8), (200, 60.2),
    (250, 60.3), (315, 59.0), (400, 62.1), (500, 62.1), (630, 60.5), (800, 56.8),
    (1000, 53.7), (1250, 53.0), (1600, 52.0), (2000, 48.7), (2500, 48.1), (3150, 46.8),
    (4000, 45.6), (5000, 44.5), (6300, 44.3), (8000, 43.7), (10000, 43.4), (12500, 41.3),
    (16000, 40.7),
)

#: Share of phonemes that are /s z f th/, the fricatives whose energy lies mostly
#: above 4 kHz (/sh zh/ and the affricates peak at 2.5-4 kHz and are left out):
#: 4.81 + 2.46 + 1.79 + 0.37 % of the phonemes of British English (RP) speech in
#: the phoneme-frequency table of D. Crystal, The Cambridge Encyclopedia of the
#: English Language (Cambridge University Press).
#: The generator makes this share of active-speech time high-frequency
#: fricatives; :func:`speech_statistics` measures it back as frames.
HIGH_FREQUENCY_PHONEME_SHARE = 0.0943

#: Frequency (Hz) dividing low from high in :func:`speech_statistics`.
HIGH_FREQUENCY_SPLIT_HZ = 4000.0
#: Analysis frame of :func:`speech_statistics` (s).
ANALYSIS_FRAME_S = 0.02

#: Largest correction (dB) the long-term equaliser applies to one band: a short
#: track with no fricative in it gets a bounded boost, not voiced frames turned into hiss.
_MAX_EQ_DB = 15.0

# (F1, F2, F3) in Hz of common vowels (Peterson & Barney averages, male voices).
_VOWEL_FORMANTS = np.array([
    (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
    (570, 840, 2410), (660, 1720, 2410), (520, 1190, 2390), (390, 1990, 2550),
], dtype=float)
_FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 120.0])

# Durations (s) of the pieces; the fricative probability per syllable follows from
# them so that fricatives take HIGH_FREQUENCY_PHONEME_SHARE of the talking time.
_SYLLABLE_S = (0.12, 0.30)
_FRICATIVE_S = (0.06, 0.14)
_BURST_S = (0.02, 0.06)
_BURST_PROBABILITY = 0.3


def _fricative_probability():
    vowel, fric, burst = (np.mean(r) for r in (_SYLLABLE_S, _FRICATIVE_S, _BURST_S))
    share = HIGH_FREQUENCY_PHONEME_SHARE
    # share = p * fric / (vowel + burst_p * burst + p * fric), solved for p
    return share * (vowel + _BURST_PROBABILITY * burst) / (fric * (1 - share))


def ltass_band_edges():
    """Edges (Hz) of the :data:`LTASS_BANDS` 1/3-octave bands (centre * 2**(+-1/6))."""
    centres = np.array([c for c, _ in LTASS_BANDS], dtype=float)
    return centres * 2 ** (-1 / 6), centres * 2 ** (1 / 6)


def ltass_reference_db():
    """:data:`LTASS_BANDS` levels relative to their power sum (dB)."""
    levels = np.array([lv for _, lv in LTASS_BANDS])
    return levels - 10 * np.log10(np.sum(10 ** (levels / 10)))


def _band_levels_db(power, freq):
    """Power spectrum (rfft grid ``freq``) summed into the LTASS bands, dB relative to the total."""
    lo, hi = ltass_band_edges()
    cum = np.concatenate([[0.0], np.cumsum(power)])
    bands = cum[np.searchsorted(freq, hi)] - cum[np.searchsorted(freq, lo)]
    bands = np.maximum(bands, 1e-30)
    return 10 * np.log10(bands / bands.sum())


def _equalise_to_ltass(audio, rate):
    """Apply one zero-phase EQ so that ``audio``'s long-term spectrum is :data:`LTASS_BANDS`."""
    spectrum = np.fft.rfft(audio)
    freq = np.fft.rfftfreq(len(audio), 1.0 / rate)
    measured = _band_levels_db(np.abs(spectrum) ** 2, freq)
    correction = np.clip(ltass_reference_db() - measured, -_MAX_EQ_DB, _MAX_EQ_DB)
    centres = np.array([c for c, _ in LTASS_BANDS], dtype=float)
    # Interpolated on log frequency between band centres, held flat beyond the ends.
    gain_db = np.interp(np.log(np.maximum(freq, 1.0)), np.log(centres), correction)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), len(audio))


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


def _shaped_noise(n, rng, rate, low_hz, high_hz, order=4):
    """White noise band-passed to [low_hz, high_hz] (smooth Butterworth-like skirts)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freq = np.maximum(np.fft.rfftfreq(n, 1.0 / rate), 1.0)
    spectrum *= 1.0 / np.sqrt((1.0 + (low_hz / freq) ** (2 * order)) * (1.0 + (freq / high_hz) ** (2 * order)))
    out = np.fft.irfft(spectrum, n)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def _high_frequency_fricative(rng, rate):
    """/s z f th/: noise with its energy at 4-10 kHz (sibilant peak 4-8 kHz, upper edge 8-11 kHz)."""
    n = int(rate * rng.uniform(*_FRICATIVE_S))
    out = _shaped_noise(n, rng, rate, rng.uniform(3500, 6000), rng.uniform(8000, 11000))
    ramp = min(n // 4, int(0.015 * rate))  # 15 ms onset/offset
    window = np.ones(n)
    window[:ramp] = np.hanning(2 * ramp)[:ramp]
    window[n - ramp:] = np.hanning(2 * ramp)[ramp:]
    return out * window * 10 ** (rng.uniform(-10, -3) / 20)


def _burst(rng, rate):
    """Other consonants (stop releases, /sh h/): a short noise burst at 1.5-4 kHz."""
    n = int(rate * rng.uniform(*_BURST_S))
    out = _shaped_noise(n, rng, rate, rng.uniform(1200, 2000), rng.uniform(3000, 4000), order=2)
    return out * 0.5 * np.hanning(n)


def _envelope(n):
    """Syllable envelope: quick rise, sustained nucleus, slower decay."""
    t = np.linspace(0.0, 1.0, n)
    rise = np.clip(t / 0.2, 0, 1)
    fall = np.clip((1 - t) / 0.35, 0, 1)
    return np.sin(0.5 * np.pi * np.minimum(rise, fall)) ** 2


def _syllable(rng, f0_base, tract_scale, rate, fricative_p):
    n = int(rate * rng.uniform(*_SYLLABLE_S))
    formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * tract_scale
    glide = rng.uniform(0.85, 1.15, size=2)  # intonation within the syllable
    out = _voiced(n, f0_base * glide[0], f0_base * glide[1], formants, rng, rate)
    out /= np.sqrt(np.mean(out ** 2)) + 1e-12
    out *= _envelope(n)
    pieces = [out]
    if rng.random() < _BURST_PROBABILITY:
        pieces.insert(0, _burst(rng, rate))
    if rng.random() < fricative_p:  # onset (/s/ in "see") or coda (/s/ in "yes")
        fricative = _high_frequency_fricative(rng, rate)
        if rng.random() < 0.5:
            pieces.insert(0, fricative)
        else:
            pieces.append(fricative)
    return np.concatenate(pieces) * rng.uniform(0.5, 1.0)


def speech_like(n_samples, rng, rate=AUDIO_RATE):
    """``n_samples`` float32 samples of speech-like audio in [-1, 1] with pauses.

    ``rng`` is a ``numpy.random.Generator`` (or an int seed).  The long-term
    spectrum is :data:`LTASS_BANDS`; active speech is scaled to :data:`SPEECH_RMS`;
    pauses keep only a faint noise floor.
    """
    n_samples, rng = _check(n_samples, rng, rate)
    fricative_p = _fricative_probability()
    audio, speaking = _talk(n_samples, rng, rate,
                            lambda f0, tract: _syllable(rng, f0, tract, rate, fricative_p))
    if speaking.any():
        audio = _equalise_to_ltass(audio, rate)
    return _finish(audio, speaking, rng)


def speech_like_v1(n_samples, rng, rate=AUDIO_RATE):
    """The first generator (datasets made before the LTASS match, e.g. ``data/synth_200.npz``).

    Same talk/pause structure, no equaliser, and only short 2.5-5 kHz noise
    onsets as consonants: almost no energy above 4 kHz.
    """
    n_samples, rng = _check(n_samples, rng, rate)
    audio, speaking = _talk(n_samples, rng, rate,
                            lambda f0, tract: _syllable_v1(rng, f0, tract, rate))
    return _finish(audio, speaking, rng)


def _check(n_samples, rng, rate):
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    if rate < 24000:
        raise ValueError(f"audio rate must be at least 24 kHz (speech reaches 10-12 kHz), got {rate}")
    return n_samples, np.random.default_rng(rng)


def _talk(n_samples, rng, rate, syllable):
    """Talk spurts of ``syllable()`` pieces and pauses: (audio, speaking mask)."""
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
            spurt.append(syllable(f0_base, tract_scale))
            if rng.random() < 0.15:  # short gap between words
                spurt.append(np.zeros(int(rate * rng.uniform(0.03, 0.1))))
        spurt = np.concatenate(spurt) * spurt_gain
        pause = np.zeros(int(rate * rng.uniform(0.15, 1.0)))
        pieces += [spurt, pause]
        active += [np.ones(len(spurt), bool), np.zeros(len(pause), bool)]
        total += len(spurt) + len(pause)
    return np.concatenate(pieces)[:n_samples], np.concatenate(active)[:n_samples]


def _finish(audio, speaking, rng):
    if speaking.any():
        audio *= SPEECH_RMS / (np.sqrt(np.mean(audio[speaking] ** 2)) + 1e-12)
    audio += NOISE_FLOOR_RMS * rng.standard_normal(len(audio))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _fricative_v1(n, rng, rate):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freq = np.fft.rfftfreq(n, 1.0 / rate)
    cutoff = rng.uniform(2500, 5000)
    spectrum *= 1.0 / (1.0 + (cutoff / np.maximum(freq, 1.0)) ** 4)
    return np.fft.irfft(spectrum, n)


def _syllable_v1(rng, f0_base, tract_scale, rate):
    n = int(rate * rng.uniform(0.12, 0.30))
    formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * tract_scale
    glide = rng.uniform(0.85, 1.15, size=2)
    out = _voiced(n, f0_base * glide[0], f0_base * glide[1], formants, rng, rate)
    out /= np.sqrt(np.mean(out ** 2)) + 1e-12
    out *= _envelope(n)
    if rng.random() < 0.4:
        m = int(rate * rng.uniform(0.02, 0.06))
        burst = _fricative_v1(m, rng, rate)
        burst *= 0.5 * np.hanning(m) / (np.sqrt(np.mean(burst ** 2)) + 1e-12)
        out = np.concatenate([burst, out])
    return out * rng.uniform(0.5, 1.0)


def speech_statistics(audio, rate=AUDIO_RATE):
    """Long-term spectrum and high-frequency frame share of a speech track.

    Returns ``{"band_db": [...], "high_frequency_frame_share": x, "active_frames": n}``:
    ``band_db`` are the :data:`LTASS_BANDS` band levels of the whole track
    (running speech with its pauses, as an LTASS is measured) relative to
    their sum, comparable with :func:`ltass_reference_db`;
    ``high_frequency_frame_share`` is the fraction of active
    :data:`ANALYSIS_FRAME_S` frames with more energy above
    :data:`HIGH_FREQUENCY_SPLIT_HZ` than below.  A frame is active when its
    RMS is within 35 dB of :data:`SPEECH_RMS` (above the noise floor).
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = int(round(ANALYSIS_FRAME_S * rate))
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    frames = frames[np.sqrt(np.mean(frames ** 2, axis=1)) > SPEECH_RMS * 10 ** (-35 / 20)]
    power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    freq = np.fft.rfftfreq(n, 1.0 / rate)
    high = power[:, freq >= HIGH_FREQUENCY_SPLIT_HZ].sum(axis=1)
    low = power[:, freq < HIGH_FREQUENCY_SPLIT_HZ].sum(axis=1)
    # One periodogram of the whole track: fine enough for the 15 Hz wide 63 Hz band.
    long_power = np.abs(np.fft.rfft(audio)) ** 2
    return {
        "band_db": _band_levels_db(long_power, np.fft.rfftfreq(len(audio), 1.0 / rate)).tolist(),
        "high_frequency_frame_share": float(np.mean(high > low)) if len(frames) else 0.0,
        "active_frames": int(len(frames)),
    }


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
