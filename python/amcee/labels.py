"""Class lists of the datasets the module understands.

Index order matters: a model's output index ``i`` means ``classes[i]``, and the
order below is the one used by RML22's notebooks and the reference paper's code.
"""

#: RML22's 10 classes in the paper's index order (QAM16:0 ... QPSK:9).
RML22_CLASSES = (
    "QAM16", "QAM64", "8PSK", "WBFM", "BPSK",
    "CPFSK", "AM-DSB", "GFSK", "PAM4", "QPSK",
)

#: RadioML 2016.10a's 11 classes (adds AM-SSB, which is noise only in that set),
#: in the sorted order its public notebooks use.
RML2016_CLASSES = (
    "8PSK", "AM-DSB", "AM-SSB", "BPSK", "CPFSK", "GFSK",
    "PAM4", "QAM16", "QAM64", "QPSK", "WBFM",
)

#: RML22's SNR grid in dB: -20..20 step 2.
RML22_SNRS = tuple(range(-20, 21, 2))
