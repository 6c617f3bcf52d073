"""What the GRC block files tell the user is what the code does: their
parameter defaults are the blocks' own, and the numbers their documentation
states are read here against the constants they describe (the classifier's
text once said a back-off stopped at 3 batches while the code stopped at 8).  GRC shows a failed assert as its expression, so each assert
is one short rule that rejects a bad value."""
import ast
import inspect
import re
import subprocess

import pmt
import pytest
import yaml

from conftest import ROOT
from gnuradio import amcee
from gnuradio.amcee.blocks.batching import DEFAULT_MAX_LATENCY_MS
from gnuradio.amcee.data.dataset import paper_split
from gnuradio.amcee.data.synth.transmitters import SAMPLE_RATE, SAMPLES_PER_SYMBOL
from gnuradio.amcee.inference.engine import BATCH_ACTIVATION_BUDGET, MAX_DEFAULT_BATCH
from gnuradio.amcee.labels import RML22_CLASSES

BLOCK_FILES = sorted((ROOT / "grc").glob("*.block.yml"))
#: GRC defaults that differ from the Python block's on purpose, with why.
DIFFERENT_ON_PURPOSE = {
    # Both mean the shipped model; in Python None also tells "not given" from
    # exit_names given instead of a model.
    ("display", "model_path"),
}


def _block(path):
    return yaml.safe_load(path.read_text())


def _doc(name):
    text = _block(ROOT / "grc" / f"amcee_{name}.block.yml")["documentation"]
    return " ".join(text.split())  # one line: sentences wrap anywhere in the YAML


def _grc_value(param):
    """A parameter's GRC default as the Python value the generated code passes."""
    text, dtype = str(param["default"]), param.get("dtype", "raw")
    if dtype == "int":
        return int(text)
    if dtype == "real":
        return float(text)
    if dtype in ("raw", "bool"):
        return eval(text, {"__builtins__": {}, "list": list, "range": range, "float": float})
    return text  # enum, string, file_open: the text itself


def _python_defaults(block):
    """{keyword: default} of ``amcee.<block>``.  A C++ block bound with pybind11
    has no inspectable signature: its defaults are read from the signature
    pybind11 writes into the docstring ("vlen: int = 128")."""
    try:
        return {k: p.default for k, p in inspect.signature(block).parameters.items()}
    except ValueError:
        first_line = block.__init__.__doc__.strip().splitlines()[0]
        return {k: ast.literal_eval(v) for k, v in re.findall(r"(\w+): [\w.]+ = ([^,)]+)", first_line)}


def _defaults():
    for path in BLOCK_FILES:
        block = _block(path)
        call = re.search(r"amcee\.(\w+)\((.*)\)", block["templates"]["make"], re.S)
        name, arguments = call.group(1), call.group(2)
        keyword_of = {param: keyword for keyword, param in
                      re.findall(r"(\w+)=\$\{\s*(?:repr\()?(\w+)\)?\s*\}", arguments)}
        defaults = _python_defaults(getattr(amcee, name))
        for param in block["parameters"]:
            keyword = keyword_of.get(param["id"])
            if "default" not in param or keyword is None:
                continue
            python = defaults[keyword]
            if python is inspect.Parameter.empty or (name, keyword) in DIFFERENT_ON_PURPOSE:
                continue
            yield pytest.param(name, keyword, _grc_value(param), python, id=f"{name}.{keyword}")


@pytest.mark.parametrize("block, keyword, grc, python", list(_defaults()))
def test_grc_defaults_are_the_blocks_defaults(block, keyword, grc, python):
    same = tuple(grc) == tuple(python) if isinstance(python, (list, tuple)) else grc == python
    assert same, f"grc/amcee_{block}.block.yml gives {keyword} {grc!r}, the block {python!r}"


def test_the_defaults_are_read_from_every_block_file():
    blocks = {p.id.split(".")[0] for p in _defaults()}
    assert blocks == {re.match(r"amcee_(\w+)\.block", p.name).group(1) for p in BLOCK_FILES}


def test_classifier_snr_table_text():
    """What the classifier's text says of the SNR table: the tag it reads,
    the one it does not, and the Estimate SNR parameter."""
    from gnuradio.amcee.blocks.schema import SNR_EST_TAG_KEY, SNR_TAG

    doc = _doc("classifier")
    read = re.search(r'the "(\w+)" tag of amcee.snr_estimator\s+upstream', doc).group(1)
    ignored = re.search(r'The "(\w+)" tags\s+of a replayed dataset \(its true SNR\) are not used', doc).group(1)
    assert read == SNR_EST_TAG_KEY and ignored == pmt.symbol_to_string(SNR_TAG)
    params = {p["id"]: p for p in _block(ROOT / "grc" / "amcee_classifier.block.yml")["parameters"]}
    assert params["estimate_snr"]["dtype"] == "bool" and "Estimate SNR: Yes" in doc


def test_classifier_batching_numbers():
    doc = _doc("classifier")
    params = {p["id"]: p for p in _block(ROOT / "grc" / "amcee_classifier.block.yml")["parameters"]}
    assert _grc_value(params["max_batch"]) == 0  # the engine's batch for the model
    frames, length, channels, most, shipped = map(int, re.search(
        r"what (\d+) frames of (\d+) samples give the paper's (\d+)-channel network, at most (\d+) \((\d+) for "
        r"the shipped model", doc).groups())
    assert frames * length * channels == BATCH_ACTIVATION_BUDGET and most == MAX_DEFAULT_BATCH
    assert amcee.classifier().engine.max_batch == shipped
    stated = int(re.search(r"The default, (\d+) ms", doc).group(1))
    assert stated == DEFAULT_MAX_LATENCY_MS == _grc_value(params["max_latency"])
    frames, rate = re.search(r"batches about (\d+) frames at RML22's (\d+) frames/s", doc).groups()
    frames_per_second = SAMPLE_RATE / 128  # RML22's frames of 128 samples
    assert int(rate) == round(frames_per_second)
    assert int(frames) == round(frames_per_second * DEFAULT_MAX_LATENCY_MS / 1000)
    threads = int(re.search(r"Torch Threads: .*?\(default (\d+)", doc).group(1))
    assert threads == inspect.signature(amcee.classifier).parameters["num_threads"].default


def test_source_numbers():
    demo = _doc("demo_source")
    classes = int(re.search(r"stream of the (\d+) RML22 modulations", demo).group(1))
    assert classes == len(RML22_CLASSES) == int(re.search(r"cycle of (\d+) x len\(SNRs\)", demo).group(1))
    khz, sps = re.search(r"about (\d+) kHz \((\d+) samples per symbol\)", demo).groups()
    assert int(khz) == round(SAMPLE_RATE / 1e3) and int(sps) == SAMPLES_PER_SYMBOL
    dataset = _doc("dataset_source")
    test, val = re.search(r"\((\d+) % test, (\d+) % of the rest validation\)", dataset).groups()
    split = inspect.signature(paper_split).parameters
    assert int(test) / 100 == split["test_fraction"].default and int(val) / 100 == split["val_fraction"].default


def test_grc_choices_are_the_constants():
    """Every list a GRC parameter offers is the one the code accepts (order aside)."""
    from gnuradio.amcee.blocks.classifier import INPUT_FORMATS
    from gnuradio.amcee.data.dataset import SPLITS
    from gnuradio.amcee.data.synth.channel import VARIANTS
    from gnuradio.amcee.frames import LAYOUTS

    expected = {("classifier", "input_format"): INPUT_FORMATS, ("dataset_source", "layout"): tuple(LAYOUTS),
                ("dataset_source", "split"): SPLITS, ("demo_source", "variant"): VARIANTS}
    for (block, param_id), accepted in expected.items():
        params = {p["id"]: p for p in _block(ROOT / "grc" / f"amcee_{block}.block.yml")["parameters"]}
        assert sorted(params[param_id]["options"]) == sorted(accepted), f"{block}.{param_id}"


#: For every GRC assert, a parameter value it must reject. GRC reports a
#: failed assert only as 'Assertion "<expression>" failed', so the expression
#: is the message: each must be one short rule, and each must catch bad input.
BAD_VALUE_OF_ASSERT = {
    "${ frame_len >= 0 }": {"frame_len": -8},  # 0 = the model's (classifier), the file's (dataset_source)
    "${ frame_len % 8 == 0 }": {"frame_len": 100},
    "${ num_exits == 0 or num_exits >= 2 }": {"num_exits": 1},
    "${ max_batch >= 0 }": {"max_batch": -1},  # 0 = the engine's batch for the model
    "${ max_latency > 0 }": {"max_latency": 0.0},
    "${ num_threads >= 0 }": {"num_threads": -1},
    "${ seed >= 0 }": {"seed": -1},
    "${ split in ('all', 'train', 'val', 'test') }": {"split": "training"},
    "${ len(snrs) >= 1 }": {"snrs": []},
    "${ segment_samples >= 1 }": {"segment_samples": 0},
    "${ seed >= 1 }": {"seed": 0},
    "${ seed <= 2**31 - 101 }": {"seed": 2 ** 31 - 100},
    "${ window >= 1 }": {"window": 0},
    "${ history >= 1 }": {"history": 0},
    "${ refresh_ms >= 10 }": {"refresh_ms": 5},
    "${ vlen >= 16 }": {"vlen": 15},
}


def _asserts():
    for path in BLOCK_FILES:
        block = _block(path)
        defaults = {p["id"]: _grc_value(p) for p in block["parameters"] if "default" in p}
        for expression in block.get("asserts", []):
            yield pytest.param(path.name, expression, defaults, id=f"{path.name}: {expression}")


@pytest.mark.parametrize("block_file, expression, defaults", list(_asserts()))
def test_grc_asserts_are_short_rules_that_reject_bad_values(block_file, expression, defaults):
    assert len(expression) <= 60, f"{block_file}: assert too long to read as a message: {expression}"
    assert expression in BAD_VALUE_OF_ASSERT, f"{block_file}: give a bad value for the assert {expression}"
    python = re.fullmatch(r"\$\{(.*)\}", expression).group(1)  # GRC evaluates ${ ... } as Python
    assert eval(python, {}, defaults), f"{block_file}: the defaults fail {expression}"
    bad = BAD_VALUE_OF_ASSERT[expression]
    assert not eval(python, {}, {**defaults, **bad}), f"{block_file}: {expression} accepts {bad}"


def test_grc_reports_a_failed_assert_as_its_rule(tmp_path):
    """GRC itself: a bad Frame Length in an example flowgraph fails with the rule as the message."""
    flowgraph = yaml.safe_load((ROOT / "examples" / "classify_qpsk.grc").read_text())
    classifier = next(b for b in flowgraph["blocks"] if b["id"] == "amcee_classifier")
    classifier["parameters"]["frame_len"] = "100"
    path = tmp_path / "bad_frame_len.grc"
    path.write_text(yaml.safe_dump(flowgraph))
    result = subprocess.run(["grcc", "-o", str(tmp_path), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'Assertion "frame_len % 8 == 0" failed' in result.stdout + result.stderr
