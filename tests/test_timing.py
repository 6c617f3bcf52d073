"""timing.time_interleaved_samples: paired rounds whose order turns and reverses."""
import pytest

from gnuradio.amcee.timing import time_interleaved_samples


def test_rounds_are_paired_and_each_candidate_follows_each_other():
    """With three candidates the rounds run the six orders in turn, so no
    candidate always runs right after the same one (the bias a run of bench
    showed: a call right after the backbone's measures slower)."""
    calls = []
    candidates = {name: (lambda n: lambda: calls.append(n))(name) for name in "abc"}
    samples = time_interleaved_samples(candidates, repeats=5, warmup=1)
    assert {name: len(v) for name, v in samples.items()} == {"a": 5, "b": 5, "c": 5}
    rounds = ["".join(calls[i:i + 3]) for i in range(0, len(calls), 3)]
    assert rounds == ["abc", "cba", "bca", "acb", "cab", "bac"]
    after = {(r[i - 1], r[i]) for r in rounds for i in range(1, 3)}
    assert after == {(x, y) for x in "abc" for y in "abc" if x != y}


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_interleaved_samples({"a": lambda: None}, repeats=0)
