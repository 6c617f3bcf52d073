"""RML22's ten transmitters as GNU Radio hier blocks (complex baseband, 2 samples/symbol).

Digital classes take unpacked bits (one bit per byte, values 0/1), analog
classes take audio at 44.1 kHz; every transmitter outputs complex64 at
:data:`SAMPLE_RATE`.  :class:`modulated_source` adds the matching random-bit or
speech source.

The digital constellations reproduce gr-mapper, the OOT module RML22 used:
base points scaled to an average *magnitude* of 1 (so QAM16 has power ~1.115),
QPSK rotated by pi/4, PAM4 at +-0.5 and +-1.5, bits packed MSB first and mapped
through RML22's symbol-value tables (``point = base[symbol_values[index]]``).
"""
import math

import numpy as np
from gnuradio import analog, blocks, digital, filter, gr

from .audio import AUDIO_RATE, speech_source

#: Samples per symbol.
SAMPLES_PER_SYMBOL = 2
#: LTE symbol time RML22 derives its sample rate from.
SYMBOL_TIME = 66.67e-6
#: Sample rate of the generated baseband (about 30 kHz).
SAMPLE_RATE = SAMPLES_PER_SYMBOL / SYMBOL_TIME

#: Root-raised-cosine pulse shaping of the linear classes.
RRC_ROLLOFF = 0.35
RRC_FILTERS = 32
RRC_SPAN_SYMBOLS = 11

#: GFSK / CPFSK parameters (RML22's notebook).
GFSK_SENSITIVITY = 1.57
GFSK_BT = 0.3
CPFSK_INDEX = 0.5

#: WBFM: RML22 asks wfm_tx for ceil(fs / 44.1 kHz) * 44.1 kHz = 44.1 kHz, i.e.
#: no interpolation, and uses those samples as they are at the 30 kHz rate.
WBFM_QUAD_RATE = math.ceil(SAMPLE_RATE / AUDIO_RATE) * AUDIO_RATE
WBFM_MAX_DEV = 75e3
WBFM_TAU = 75e-6

_QAM16_BASE = [complex(i, q) for q in (3, 1, -1, -3) for i in (-3, -1, 1, 3)]
_QAM64_BASE = [complex(i, q) for q in (7, 5, 3, 1, -1, -3, -5, -7)
               for i in (-7, -5, -3, -1, 1, 3, 5, 7)]
_S = math.sqrt(0.5)

# class -> (gr-mapper base points, RML22 symbol values)
_MAPPER_TABLES = {
    "BPSK": ([1, -1], [0, 1]),
    "QPSK": ([c * complex(_S, _S) for c in (1, 1j, -1, -1j)], [0, 1, 3, 2]),
    "8PSK": ([1, complex(_S, _S), 1j, complex(-_S, _S), -1, complex(-_S, -_S), -1j,
              complex(_S, -_S)], [0, 1, 3, 2, 7, 6, 4, 5]),
    "PAM4": ([-3, -1, 3, 1], [0, 1, 3, 2]),
    "QAM16": (_QAM16_BASE, [2, 6, 14, 10, 3, 7, 15, 11, 1, 5, 13, 9, 0, 4, 12, 8]),
    "QAM64": (_QAM64_BASE, [
        0, 32, 8, 40, 3, 35, 11, 43, 48, 16, 56, 24, 51, 19, 59, 27,
        12, 44, 4, 36, 15, 47, 7, 39, 60, 28, 52, 20, 63, 31, 55, 23,
        2, 34, 10, 42, 1, 33, 9, 41, 50, 18, 58, 26, 49, 17, 57, 25,
        14, 46, 6, 38, 13, 45, 5, 37, 62, 30, 54, 22, 61, 29, 53, 21]),
}

#: Classes built from a symbol mapper and an RRC pulse shaper.
LINEAR_CLASSES = tuple(_MAPPER_TABLES)
#: Classes whose input is random bits.
DIGITAL_CLASSES = LINEAR_CLASSES + ("GFSK", "CPFSK")
#: Classes whose input is audio.
ANALOG_CLASSES = ("WBFM", "AM-DSB")
#: Every class this module can transmit.
CLASSES = DIGITAL_CLASSES + ANALOG_CLASSES


def _check_class(name):
    if name not in CLASSES:
        raise ValueError(f"unknown modulation {name!r}; expected one of {', '.join(CLASSES)}")


def constellation(name):
    """Symbol table of a linear class, indexed by the MSB-first bit pattern.

    Points are scaled to an average magnitude of 1, as gr-mapper does.
    """
    if name not in _MAPPER_TABLES:
        raise ValueError(f"{name!r} is not a linear modulation; expected one of "
                         f"{', '.join(LINEAR_CLASSES)}")
    base, symbol_values = _MAPPER_TABLES[name]
    base = np.asarray(base, dtype=complex)
    base *= len(base) / np.abs(base).sum()
    return base[np.asarray(symbol_values)].astype(np.complex64)


def bits_per_symbol(name):
    """Bits carried by one symbol (1 for GFSK and CPFSK)."""
    _check_class(name)
    if name in ANALOG_CLASSES:
        raise ValueError(f"{name} is analog and has no symbols")
    if name in _MAPPER_TABLES:
        return int(round(math.log2(len(_MAPPER_TABLES[name][1]))))
    return 1


def rrc_prototype(sps=SAMPLES_PER_SYMBOL):
    """Polyphase RRC prototype: 32 filters, 11 * sps taps each, roll-off 0.35."""
    return filter.firdes.root_raised_cosine(
        RRC_FILTERS, RRC_FILTERS, 1.0, RRC_ROLLOFF, RRC_FILTERS * RRC_SPAN_SYMBOLS * int(sps))


class linear_tx(gr.hier_block2):
    """Bits -> gr-mapper-style symbols -> RRC polyphase resampler (2 samples/symbol)."""

    def __init__(self, name, sps=SAMPLES_PER_SYMBOL):
        gr.hier_block2.__init__(
            self, f"linear_tx_{name}",
            gr.io_signature(1, 1, gr.sizeof_char),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        table = constellation(name)
        k = bits_per_symbol(name)
        self.mapper = digital.chunks_to_symbols_bc(table.tolist())
        self.shaper = filter.pfb_arb_resampler_ccf(float(sps), rrc_prototype(sps), RRC_FILTERS)
        if k > 1:
            self.pack = blocks.pack_k_bits_bb(k)  # MSB first, like gr-mapper
            self.connect(self, self.pack, self.mapper, self.shaper, self)
        else:
            self.connect(self, self.mapper, self.shaper, self)


class gfsk_tx(gr.hier_block2):
    """Bits -> GFSK (sensitivity 1.57, BT 0.3, 2 samples/symbol)."""

    def __init__(self, sps=SAMPLES_PER_SYMBOL):
        gr.hier_block2.__init__(
            self, "gfsk_tx",
            gr.io_signature(1, 1, gr.sizeof_char),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        # gfsk_mod wants packed bytes and unpacks them MSB first again.
        self.pack = blocks.unpacked_to_packed_bb(1, gr.GR_MSB_FIRST)
        self.mod = digital.gfsk_mod(int(sps), GFSK_SENSITIVITY, GFSK_BT)
        self.connect(self, self.pack, self.mod, self)


class cpfsk_tx(gr.hier_block2):
    """Bits -> binary CPFSK with modulation index 0.5 (2 samples/symbol)."""

    def __init__(self, sps=SAMPLES_PER_SYMBOL):
        gr.hier_block2.__init__(
            self, "cpfsk_tx",
            gr.io_signature(1, 1, gr.sizeof_char),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.mod = analog.cpfsk_bc(CPFSK_INDEX, 1.0, int(sps))
        self.connect(self, self.mod, self)


class wbfm_tx(gr.hier_block2):
    """Audio (44.1 kHz) -> wideband FM: 75 kHz deviation, 75 us pre-emphasis."""

    def __init__(self):
        gr.hier_block2.__init__(
            self, "wbfm_tx",
            gr.io_signature(1, 1, gr.sizeof_float),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.mod = analog.wfm_tx(AUDIO_RATE, WBFM_QUAD_RATE, WBFM_TAU, WBFM_MAX_DEV)
        self.connect(self, self.mod, self)


class am_dsb_tx(gr.hier_block2):
    """Audio (44.1 kHz) -> resampled to the baseband rate -> (audio + 1) * carrier.

    The carrier sits at ``carrier_hz`` (RML22: 0 Hz, i.e. a full-carrier DSB
    signal at baseband).
    """

    def __init__(self, carrier_hz=0.0):
        gr.hier_block2.__init__(
            self, "am_dsb_tx",
            gr.io_signature(1, 1, gr.sizeof_float),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.resampler = filter.mmse_resampler_ff(0.0, AUDIO_RATE / SAMPLE_RATE)
        self.to_complex = blocks.float_to_complex()
        self.add_carrier = blocks.add_const_cc(1.0)
        self.carrier = analog.sig_source_c(SAMPLE_RATE, analog.GR_COS_WAVE, carrier_hz, 1.0)
        self.mixer = blocks.multiply_cc()
        self.connect(self, self.resampler, self.to_complex, self.add_carrier, (self.mixer, 0))
        self.connect(self.carrier, (self.mixer, 1))
        self.connect(self.mixer, self)


def make_transmitter(name):
    """The hier block transmitting ``name`` (input: bits or audio, see :func:`input_kind`)."""
    _check_class(name)
    if name in LINEAR_CLASSES:
        return linear_tx(name)
    return {"GFSK": gfsk_tx, "CPFSK": cpfsk_tx, "WBFM": wbfm_tx, "AM-DSB": am_dsb_tx}[name]()


def input_kind(name):
    """``"bits"`` (bytes holding 0/1) or ``"audio"`` (float at 44.1 kHz)."""
    _check_class(name)
    return "audio" if name in ANALOG_CLASSES else "bits"


def input_length(name, n_out):
    """Input items that yield at least ``n_out`` output samples (with a margin)."""
    _check_class(name)
    if name == "WBFM":
        return int(n_out * AUDIO_RATE / WBFM_QUAD_RATE) + 64
    if name == "AM-DSB":
        return int(math.ceil(n_out * AUDIO_RATE / SAMPLE_RATE)) + 64
    symbols = int(math.ceil(n_out / SAMPLES_PER_SYMBOL)) + 32
    return symbols * bits_per_symbol(name)


class modulated_source(gr.hier_block2):
    """Endless signal of one class: seeded random bits or speech -> transmitter."""

    def __init__(self, name, seed=1):
        gr.hier_block2.__init__(
            self, f"modulated_source_{name}",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.tx = make_transmitter(name)
        if input_kind(name) == "bits":
            if not 0 < int(seed) < 2 ** 31:
                raise ValueError(f"seed must be in 1..2**31-1 (0 means 'time' to GNU Radio), got {seed}")
            self.source = analog.random_uniform_source_b(0, 2, int(seed))
        else:
            self.source = speech_source(seed=int(seed))
        self.connect(self.source, self.tx, self)

