"""The stream tags and messages gr-amcee's blocks exchange.

Truth tags, on the first item of a frame (dataset_source) or of a segment
(demo_source's truth_switch): ``label`` (symbol: class name), ``snr``
(double: dB) and ``frame_index`` (uint64: the frame's index in its file).
amcee.snr_estimator tags every vector ``snr_est`` (double: its estimated SNR,
dB; lib/snr_estimator_impl.cc), which the classifier reads for a model's SNR
table.

The classifier tags every vector ``amc`` and publishes one PMT dict per
vector on ``classification`` and on the port of the exit that decided it
(``exit0`` .. ``exit{K-1}``): ``offset``, ``label``, ``class``,
``confidence``, ``entropy``, ``exit``, ``probs``, and the truth tags of the
vector as ``snr``, ``true_label`` and ``frame_index``.  On ``batch`` it
publishes one PMT dict per work() call with the same fields as vectors, one
item per vector of the call (include/gnuradio/amcee/decision_publisher.h):
a consumer of high-rate streams takes a handful of PMT objects per call
instead of a few dozen per vector.  Those are written in C++
(lib/decision_publisher.cc, the same names); the blocks that consume them
read their fields with message_field.
"""
import pmt

LABEL_TAG = pmt.intern("label")
SNR_TAG = pmt.intern("snr")
FRAME_INDEX_TAG = pmt.intern("frame_index")
#: Key of the estimator's tag (a str: the classifier reads it in C++, read_tag_numbers).
SNR_EST_TAG_KEY = "snr_est"

#: The classifier's port that carries every decision.
CLASSIFICATION_PORT = "classification"
#: The classifier's port that carries the decisions of each work() call in one message.
BATCH_PORT = "batch"

_ABSENT = pmt.PMT_NIL


def exit_port(k):
    """The classifier's port that carries the decisions of exit ``k``."""
    return f"exit{k}"


def message_field(msg, key, convert, default):
    """Field ``key`` of a classifier message (a PMT dict) through ``convert``
    (e.g. pmt.to_long), or ``default`` when the message lacks it."""
    value = pmt.dict_ref(msg, pmt.intern(key), _ABSENT)
    return default if pmt.eq(value, _ABSENT) else convert(value)
