"""A bounded, seeded run of scripts/fuzz_files.py: mutated and crafted
datasets of every format, model files and checkpoints give the promised
error type (DatasetError, ModelFileError, CheckpointError) or load; no model
file loads with other outputs (weights edited after export, even with fresh
CRCs, fail the digest in the metadata); memory stays bounded."""
import importlib.util

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("fuzz_files", ROOT / "scripts" / "fuzz_files.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    return fuzz, fuzz.Runner(str(tmp_path_factory.mktemp("fuzz")))


@pytest.mark.parametrize("kind, count", [("npz", 60), ("pickle", 60), ("sigmf", 60), ("model", 40),
                                         ("checkpoint", 20)])
def test_fuzzed_files_give_the_promised_errors(runner, kind, count):
    fuzz, run = runner
    results = [run.run(kind, index, seed=1) for index in range(count)]
    wrong = [r for r in results if r["outcome"] == "wrong_error"]
    assert not wrong, [(r["index"], r["error"]) for r in wrong[:3]]
    assert any(r["outcome"] == "refused" for r in results)
    changed = [r for r in results if r["outcome"] == "ok_changed"]
    assert not changed, changed[:3]
    over = [r for r in results if r["peak"] > fuzz.MEMORY_RATIO * r["bytes"] + fuzz.MEMORY_SLACK]
    assert not over, over[:3]


def test_the_probes_pickle_attacks_are_refused(runner):
    """Arrays over memory the file does not hold, a 2 GB shape from a few
    bytes, deep nesting, a huge memo index, a huge declared length."""
    fuzz, run = runner
    results = [run.run("pickle", index, seed=0) for index in range(len(fuzz.crafted_pickles()))]
    assert all(r["outcome"] == "refused" and r["error"] == "DatasetError" for r in results), results
