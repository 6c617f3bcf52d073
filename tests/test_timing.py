"""timing.time_interleaved_samples: paired rounds whose order turns."""
import pytest

from gnuradio.amcee.timing import time_interleaved_samples


def test_rounds_are_paired_and_the_order_turns():
    calls = []
    candidates = {name: (lambda n: lambda: calls.append(n))(name) for name in "abc"}
    samples = time_interleaved_samples(candidates, repeats=3, warmup=1)
    assert {name: len(v) for name, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [list("abc"), list("bca"), list("cab"), list("abc")]


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_interleaved_samples({"a": lambda: None}, repeats=0)
