"""RML22's impairment chain as a GNU Radio hier block.

Order (RML22 "All"): sample-rate offset -> ETU70 fading -> carrier-frequency
offset -> phase offset -> AWGN.  Variants select parts of it:

=========  ===========================================================
clean      nothing
awgn       AWGN
clock      sample-rate offset, carrier-frequency offset, phase offset
fading     ETU70 fading
all        everything, in the order above
=========  ===========================================================

Clock model: a 10 MHz crystal whose error (Hz) follows a bounded random walk
(step std 1e-4 Hz, bound 5 Hz, uniform starting bias).  Scaled to the 1 GHz
carrier it gives the CFO (up to +-500 Hz), scaled to the 100 MHz ADC clock the
SRO (+-0.5 ppm).  Over one run of ~7400 samples the walk moves by ~0.01 Hz, so
each hier block uses one constant drawn from the walk (its mean over the run).

Noise: ``noise_source_c(GR_GAUSSIAN, 10**(-snr/20))`` has power
``10**(-snr/10)``, so the SNR is nominal relative to a unit-power signal, as
in RML22 (where fading adds its own average gain, sum of ETU path powers).
"""
import cmath

import numpy as np
from gnuradio import analog, blocks, channels, filter, gr

from .transmitters import SAMPLE_RATE

VARIANTS = ("clean", "awgn", "clock", "fading", "all")

CARRIER_HZ = 1e9
ADC_CLOCK_HZ = 100e6
CRYSTAL_HZ = 10e6
CRYSTAL_STEP_STD_HZ = 1e-4
CRYSTAL_MAX_DEV_HZ = 5.0

#: ETU channel: path delays (ns) and gains (dB); Doppler of ETU70.
ETU_DELAYS_NS = (0, 50, 120, 200, 230, 500, 1600, 2300, 5000)
ETU_GAINS_DB = (-1, -1, -1, 0, 0, 0, -3, -5, -7)
DOPPLER_HZ = 70.0
FADING_SINUSOIDS = 8
FADING_TAPS = 8
RICIAN_K = 4.0  # unused without a line-of-sight path; RML22 passes 4


def _stages(variant):
    if variant not in VARIANTS:
        raise ValueError(f"unknown channel variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return {
        "clock": variant in ("clock", "all"),
        "fading": variant in ("fading", "all"),
        "noise": variant in ("awgn", "all"),
    }


def crystal_error_walk(n, rng, step_std=CRYSTAL_STEP_STD_HZ, max_dev=CRYSTAL_MAX_DEV_HZ):
    """Bounded random walk of the crystal error in Hz (``n`` samples).

    Starts at a uniform bias in (-max_dev, max_dev); steps are Gaussian; the
    walk is reflected at +-max_dev so that it never leaves the bound.
    """
    if n <= 0:
        raise ValueError(f"walk length must be positive, got {n}")
    bias = rng.uniform(-max_dev + step_std, max_dev - step_std)
    walk = bias + np.cumsum(step_std * rng.standard_normal(n))
    # Fold into [-max_dev, max_dev] (reflection at both bounds).
    period = 4 * max_dev
    walk = np.mod(walk + max_dev, period)
    return np.where(walk > 2 * max_dev, period - walk, walk) - max_dev


def _gr_seed(rng):
    # GNU Radio treats seed 0 as "seed from the clock": never hand it out.
    return int(rng.integers(1, 2 ** 31 - 1))


class impairments(gr.hier_block2):
    """RML22 channel for one run (complex in, complex out).

    Random parameters (crystal error, phase offset, fading and noise seeds) are
    drawn from ``seed`` when not given.  With ``clean_output=True`` a second
    output carries the signal just before the noise adder, i.e. the same
    realisation without AWGN (the fidelity report measures SNR from the pair).
    """

    def __init__(self, variant="all", snr_db=10.0, seed=1, sample_rate=SAMPLE_RATE,
                 clock_error_hz=None, phase_rad=None, clean_output=False, run_length=7400):
        n_out = 2 if clean_output else 1
        gr.hier_block2.__init__(
            self, f"impairments_{variant}",
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
            gr.io_signature(n_out, n_out, gr.sizeof_gr_complex))
        stages = _stages(variant)
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        rng = np.random.default_rng(seed)
        self.variant = variant
        self.sample_rate = float(sample_rate)
        if clock_error_hz is None:
            clock_error_hz = float(crystal_error_walk(int(run_length), rng).mean())
        if phase_rad is None:
            phase_rad = float(rng.uniform(0.0, 2 * np.pi))
        fading_seed, noise_seed = _gr_seed(rng), _gr_seed(rng)

        chain = []
        if stages["clock"]:
            self.sro = filter.mmse_resampler_cc(0.0, 1.0)
            chain.append(self.sro)
        if stages["fading"]:
            delays = [d * 1e-9 * self.sample_rate for d in ETU_DELAYS_NS]
            gains = [10 ** (g / 20.0) for g in ETU_GAINS_DB]
            self.fading = channels.selective_fading_model(
                FADING_SINUSOIDS, DOPPLER_HZ / self.sample_rate, False, RICIAN_K,
                fading_seed, delays, gains, FADING_TAPS)
            chain.append(self.fading)
        if stages["clock"]:
            # An NCO (fixed-point phase) times the signal rather than rotator_cc:
            # volk's rotator rounds differently with the scheduler's chunking,
            # which would break bit-exact reproducibility.
            self.cfo = analog.sig_source_c(self.sample_rate, analog.GR_COS_WAVE, 0.0, 1.0)
            self.mixer = blocks.multiply_cc()
            self.phase = blocks.multiply_const_cc(1.0)
            self.connect(self.cfo, (self.mixer, 1))
            chain += [self.mixer, self.phase]
            self.set_clock_error_hz(clock_error_hz)
            self.set_phase_rad(phase_rad)
        if not chain:
            chain.append(blocks.copy(gr.sizeof_gr_complex))
        self.connect(self, *chain)
        last = chain[-1]
        if stages["noise"]:
            self.noise = analog.noise_source_c(analog.GR_GAUSSIAN, 1.0, noise_seed)
            self.adder = blocks.add_cc()
            self.connect(last, (self.adder, 0))
            self.connect(self.noise, (self.adder, 1))
            self.connect(self.adder, (self, 0))
            self.set_snr_db(snr_db)
        else:
            self.connect(last, (self, 0))
        if clean_output:
            self.connect(last, (self, 1))

    # Runtime parameters (for live flowgraphs).
    def set_snr_db(self, snr_db):
        self.snr_db = float(snr_db)
        if hasattr(self, "noise"):
            self.noise.set_amplitude(10 ** (-self.snr_db / 20.0))

    def get_snr_db(self):
        return self.snr_db

    def set_clock_error_hz(self, error_hz):
        """Crystal error in Hz of the 10 MHz reference; sets CFO and SRO."""
        self.clock_error_hz = float(error_hz)
        if hasattr(self, "cfo"):
            cfo_hz = self.clock_error_hz * CARRIER_HZ / CRYSTAL_HZ
            self.cfo.set_frequency(cfo_hz)
            sro_hz = self.clock_error_hz * ADC_CLOCK_HZ / CRYSTAL_HZ
            self.sro.set_resamp_ratio(1.0 + sro_hz / ADC_CLOCK_HZ)

    def get_clock_error_hz(self):
        return self.clock_error_hz

    def get_cfo_hz(self):
        return self.clock_error_hz * CARRIER_HZ / CRYSTAL_HZ

    def set_phase_rad(self, phase_rad):
        self.phase_rad = float(phase_rad)
        if hasattr(self, "phase"):
            self.phase.set_k(cmath.exp(1j * self.phase_rad))

    def get_phase_rad(self):
        return self.phase_rad
