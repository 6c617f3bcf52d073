"""amcee.demo_source: an endless, labelled stream of changing modulations and SNRs.

One transmitter per class runs all the time (so switching never restarts a
pulse shaper), a :class:`truth_switch` picks one per segment and scales it to
the segment's SNR, and RML22's impairment chain (with unit-power noise) follows.
The stream carries ``label`` and ``snr`` tags on the first sample of every
segment; they travel with the samples through stream_to_vector and the
classifier, which copies them into its messages.
"""
from gnuradio import gr

from ..data.synth.channel import VARIANTS, impairments
from ..data.synth.transmitters import SAMPLE_RATE, modulated_source
from ..labels import RML22_CLASSES
from .truth_switch import truth_switch

#: Default SNR cycle of the demo: 0..20 dB.
DEMO_SNRS = tuple(range(0, 21, 2))


class demo_source(gr.hier_block2):
    """Complex baseband at :data:`SAMPLE_RATE` (2 samples/symbol) with truth tags.

    ``segment_samples`` is the length of one (class, SNR) segment; make it a
    multiple of the frame hop so that changes fall on frame starts and only the
    frame right at a change holds two modulations.
    """

    def __init__(self, classes=RML22_CLASSES, snrs=DEMO_SNRS, segment_samples=32 * 128,
                 variant="all", seed=1):
        gr.hier_block2.__init__(self, "demo_source", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        if variant not in VARIANTS:
            raise ValueError(f"unknown channel variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        if not 0 < int(seed) < 2 ** 31 - 100:
            raise ValueError(f"seed must be in 1..2**31-101, got {seed}")
        self.classes = tuple(classes)
        self.snrs = tuple(float(s) for s in snrs)
        self.sample_rate = SAMPLE_RATE
        self.sources = [modulated_source(name, int(seed) + i) for i, name in enumerate(self.classes)]
        self.switch = truth_switch(self.classes, self.snrs, segment_samples, seed=int(seed))
        # snr_db=0: unit-power noise; the switch sets each segment's SNR by its gain.
        self.channel = impairments(variant, snr_db=0.0, seed=int(seed) + 99)
        for i, src in enumerate(self.sources):
            self.connect(src, (self.switch, i))
        self.connect(self.switch, self.channel, self)
