"""The `amcee` command as a user meets it: the command list, --version, help
defaults, one SNR syntax, output folders, progress bars, rounded numbers,
short model versions and one-line errors for the wrong kind of file."""
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from conftest import ROOT, export_tiny_model
from tiny_data import make_tiny_dataset

AMCEE = [sys.executable, str(ROOT / "apps" / "amcee")]


def assert_rounded(text):
    """Every decimal number in ``text`` is as the CLI rounds it (4 significant digits)."""
    from gnuradio.amcee.cli import rounded

    for number in re.findall(r"\d+\.\d+", text):
        assert rounded(float(number)) == float(number), f"{number} in {text[:3000]}"


def run_on_terminal(args, timeout=300):
    """Run `amcee ARGS` with stderr on a pseudo-terminal (120 columns);
    returns (exit code, stdout, what reached the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(AMCEE + args, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode()
    return proc.wait(timeout=timeout), out, b"".join(seen).decode(errors="replace")


def cli(capsys, *args):
    """`amcee ARGS` in this process: (exit code, stdout, stderr)."""
    from gnuradio.amcee.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny dataset and a one-epoch `amcee train` run whose --out folder's
    parents did not exist."""
    from gnuradio.amcee.cli import main

    base = tmp_path_factory.mktemp("cli")
    data = base / "tiny.npz"
    make_tiny_dataset(data, frames_per_key=20)
    out = base / "not" / "yet" / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--exits", "V0", "V1", "--epochs", "1",
                 "--batch-size", "100", "--threads", "1", "--quiet", "--model-version", "tiny-1",
                 "--description", "a one-epoch test model"]) == 0
    return {"base": base, "data": str(data), "run": out, "model": str(out / "model.pt"),
            "checkpoint": str(out / "best.pt")}


# ------------------------------------------------------------ the program

def test_amcee_alone_prints_the_command_list_and_exits_0():
    result = subprocess.run(AMCEE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("synth", "train", "eval", "calibrate", "export", "demo", "info"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_version_is_cmakes(capsys):
    from gnuradio.amcee.version import __version__

    cmake = (ROOT / "CMakeLists.txt").read_text()
    parts = [re.search(rf"set\(VERSION_{p}\s+(\d+)\)", cmake).group(1) for p in ("MAJOR", "API", "ABI", "PATCH")]
    assert __version__ == ".".join(parts)
    from gnuradio.amcee.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"amcee {__version__}"


def _subcommand_actions():
    import argparse

    from gnuradio.amcee.cli import get_parser

    sub = next(a for a in get_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.help and action.help is not argparse.SUPPRESS:
                yield name, action, action.help % {"default": action.default, "prog": parser.prog}


def test_help_texts_state_the_real_defaults():
    """Every '(default: N ...)' with a number says what argparse really uses."""
    checked = 0
    for name, action, text in _subcommand_actions():
        if action.default is None or isinstance(action.default, bool):
            continue
        match = re.search(r"\(default: ([-+0-9.e]+(?: [-+0-9.e]+)*)(?=[),; ]|$)", text)
        if not match:
            continue
        stated = [float(v) for v in match.group(1).split()]
        default = action.default if isinstance(action.default, (list, tuple)) else [action.default]
        assert stated == [float(v) for v in default], f"amcee {name} {action.option_strings}: {text}"
        checked += 1
    assert checked > 30
    report = {a.dest: a.default for n, a, _ in _subcommand_actions() if n == "report"}
    assert report["frames_per_key"] == 200


def test_train_options_are_trainconfig_fields():
    """amcee train's defaults are TrainConfig's (declared there only) and each
    option sets the field of its name."""
    from gnuradio.amcee.cli import get_parser
    from gnuradio.amcee.cli.train import config_from_args
    from gnuradio.amcee.training.train import TrainConfig

    def config(*options):
        return config_from_args(get_parser().parse_args(["train", "--data", "d.npz", "--out", "run", *options]))

    assert config() == TrainConfig(data="d.npz", out_dir="run")
    given = config("--exits", "V0", "--quiet", "--calibrate", "0.5", "--lr", "0.001", "--compile")
    assert (given.exits, given.progress, given.calibrate_max_loss, given.lr, given.compile) == \
        (("V0",), False, 0.5, 0.001, True)
    assert config("--exits", "none").exits == ()


def test_choices_are_the_constants():
    from gnuradio.amcee.data.dataset import SPLITS
    from gnuradio.amcee.data.synth.channel import VARIANTS
    from gnuradio.amcee.network.architecture import EXIT_HEADS
    from gnuradio.amcee.training.train import SCHEMES

    choices = {(n, a.dest): tuple(a.choices) for n, a, _ in _subcommand_actions() if a.choices}
    assert choices[("synth", "variant")] == choices[("demo", "channel")] == VARIANTS
    assert choices[("train", "exit_head")] == EXIT_HEADS and choices[("train", "scheme")] == SCHEMES
    assert all(choices[(n, "split")] == SPLITS for n in ("eval", "calibrate", "replay", "bench", "export-stream"))


# ------------------------------------------------------------ SNR lists

def test_one_snr_syntax():
    from gnuradio.amcee.cli import parse_snrs

    assert parse_snrs("-20:20:10") == [-20.0, -10.0, 0.0, 10.0, 20.0]
    assert parse_snrs(["0", "10", "20"]) == parse_snrs("0,10,20") == [0.0, 10.0, 20.0]
    assert parse_snrs(["4:8", "-1.5"]) == [4.0, 6.0, 8.0, -1.5]  # LO:HI steps by 2 dB
    assert parse_snrs(["0:0.3:0.1"]) == [0.0, 0.1, 0.2, 0.3]
    assert parse_snrs(" -10:0:5") == [-10.0, -5.0, 0.0]  # as protected from argparse
    for bad, problem in (("1:x", "bad SNR '1:x'"), ("20:0", "bad SNR '20:0'"), ("0:10:0", "STEP > 0"),
                         ("0 0:4", "more than once: 0"), ("inf", "finite"), ("", "no SNR")):
        with pytest.raises(ValueError, match=problem):
            parse_snrs(bad.split(" "))


@pytest.mark.parametrize("command, extra", [("synth", ["--out", "x.npz"]), ("report", ["--out", "r"]),
                                            ("demo", [])])
@pytest.mark.parametrize("spelling", [["--snrs", "-10:20:10"], ["--snr", "-10:20:10"], ["--snrs=-10:20:10"],
                                      ["--snr", "-10", "0", "10", "20"], ["--snrs", "-10,0,10,20"]])
def test_every_subcommand_takes_negative_snrs_without_equals(command, extra, spelling):
    from gnuradio.amcee.cli import _protect_negative_lists, get_parser, parse_snrs

    args = get_parser().parse_args(_protect_negative_lists([command] + extra + spelling))
    assert parse_snrs(args.snrs) == [-10.0, 0.0, 10.0, 20.0]


def test_synth_with_a_negative_snr_range(tmp_path, capsys):
    from gnuradio.amcee.data.files import load_dataset

    code, out, err = cli(capsys, "synth", "--out", tmp_path / "new" / "s.npz", "--snrs", "-10:0:10",
                         "--frames-per-key", "2", "--classes", "BPSK", "--workers", "1", "--quiet")
    assert code == 0, err
    assert sorted(set(load_dataset(tmp_path / "new" / "s.npz").snrs.tolist())) == [-10.0, 0.0]
    assert_rounded(out)


# ------------------------------------------------------------ --out folders

def test_out_parents_of_every_subcommand(run, tmp_path, capsys):
    data, model, checkpoint = run["data"], run["model"], run["checkpoint"]
    fresh = tmp_path / "a" / "b"
    commands = {  # train made its --out's parents in the fixture
        "synth": (["--out", fresh / "synth" / "s.npz", "--frames-per-key", "1", "--snrs", "10",
                   "--classes", "BPSK", "--workers", "1", "--quiet"], fresh / "synth" / "s.npz"),
        "export-stream": ([data, "--out", fresh / "stream" / "rec"], fresh / "stream" / "rec.sigmf-meta"),
        "report": ([data, "--out", fresh / "report" / "fid"], fresh / "report" / "fid" / "fidelity.json"),
        "eval": ([model, "--data", data, "--out", fresh / "eval" / "ev", "--no-timing", "--quiet"],
                 fresh / "eval" / "ev" / "summary.md"),
        "calibrate": ([model, "--data", data, "--out", fresh / "cal" / "c.pt",
                       "--quiet"], fresh / "cal" / "c.pt"),
        "export": ([checkpoint, "--out", fresh / "export" / "m.pt"], fresh / "export" / "m.pt"),
        "replay": ([data, "--model", model, "--source", "file", "--max-frames", "40", "--out", fresh / "replay" / "r.json",
                    "--predictions", fresh / "pred" / "p.npz"], fresh / "replay" / "r.json"),
    }
    for command, (args, written) in commands.items():
        code, _, err = cli(capsys, command, *args)
        assert code == 0, (command, err)
        assert written.is_file(), command
    assert (fresh / "pred" / "p.npz").is_file()
    assert run["run"].joinpath("model.pt").is_file()


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, _, err = cli(capsys, "synth", "--out", tmp_path / "file" / "s.npz", "--frames-per-key", "1",
                       "--snrs", "0", "--classes", "BPSK", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "cannot create the folder" in err and "--out" in err


# ------------------------------------------------------------ progress bars

@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_progress_bar_on_a_terminal_only(run, tmp_path, command):
    args = {"eval": [run["model"], "--data", run["data"], "--out", str(tmp_path / "ev"), "--repeats", "1"],
            "calibrate": [run["model"], "--data", run["data"], "--out", str(tmp_path / "c.pt"),
                          "--overwrite"]}[command]
    code, out, terminal = run_on_terminal([command] + args)
    assert code == 0, terminal[-2000:]
    assert re.search(rf"{command}: [a-z ()0-9]+: +100%\|", terminal), terminal[-2000:]
    json.loads(out)  # stdout holds the JSON alone
    piped = subprocess.run(AMCEE + [command] + args, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "%|" not in piped.stderr, piped.stderr[-2000:]


# ------------------------------------------------------------ rounded numbers

def test_rounded():
    from gnuradio.amcee.cli import rounded

    assert rounded(0.5000000000000004) == 0.5 and rounded(0.123456) == 0.1235
    assert rounded(1027941.77) == 1027942.0 and rounded(12.3456) == 12.35 and rounded(-0.000123456) == -0.0001235
    assert rounded({"a": [0.30000000000000004, 7, None, "x", float("inf")]}) == {"a": [0.3, 7, None, "x", float("inf")]}


def test_printed_numbers_are_rounded(run, tmp_path, capsys):
    code, out, err = cli(capsys, "eval", run["model"], "--data", run["data"], "--out", tmp_path / "ev",
                         "--repeats", "1", "--quiet")
    assert code == 0, err
    assert_rounded(out)
    assert "accuracy_loss_pp" in json.loads(out)
    code, out, err = cli(capsys, "calibrate", run["model"], "--data", run["data"], "--out", tmp_path / "c.pt",
                         "--quiet")
    assert code == 0, err
    assert_rounded(out)
    code, out, err = cli(capsys, "info", tmp_path / "c.pt")
    assert code == 0, err
    assert_rounded(out)
    assert "thresholds    V0 " in out and "calibrated    on the val split" in out


def test_info_of_the_shipped_model_is_short_and_rounded(capsys):
    code, out, err = cli(capsys, "info")
    assert code == 0, err
    assert out.count("\n") < 20, out
    assert_rounded(out)
    assert out.splitlines()[0].endswith(": amcee-default-7")
    assert "SNR table     21 bins" in out and " dB: V0 " not in out
    code, bins, err = cli(capsys, "info", "--snr-table")
    assert code == 0, err
    assert len(re.findall(r"^  \[\S+, \S+\) dB: V0 ", bins, re.M)) == 21
    code, out, err = cli(capsys, "info", "--json")
    assert json.loads(out)["format"] == "amcee-early-exit-model"


# ------------------------------------------------------------ model versions

def test_model_version_is_short_with_the_description_beside_it(run, tmp_path, capsys):
    from gnuradio.amcee.inference.model_file import load_model

    loaded = load_model(run["model"])
    assert (loaded.version, loaded.description) == ("tiny-1", "a one-epoch test model")
    code, _, err = cli(capsys, "export", run["checkpoint"], "--out", tmp_path / "m.pt",
                       "--model-version", "tiny two")
    assert code == 2 and "model version must be a short name without spaces" in err and err.count("\n") == 1


def test_a_long_version_from_an_older_file_is_split(run, tmp_path, capsys):
    """Files exported before the description field (the shipped model) kept
    the paragraph in model_version: eval's title is the version alone, and
    calibrate writes the two apart."""
    from gnuradio.amcee.inference.model_file import METADATA_FILE, load_model

    old = tmp_path / "old.pt"
    export_tiny_model(old)
    loaded = load_model(str(old))
    meta = dict(loaded.meta)
    del meta["description"]
    meta["model_version"] = "amcee-old-3 (V0+V1; joint 10 epochs: calibrated for <= 0.4 pp loss)"
    loaded.module.save(str(old), _extra_files={METADATA_FILE: json.dumps(meta)})
    assert load_model(str(old)).version == "amcee-old-3"
    code, _, err = cli(capsys, "eval", old, "--data", run["data"], "--out", tmp_path / "ev", "--no-timing",
                       "--quiet")
    assert code == 0, err
    summary = (tmp_path / "ev" / "summary.md").read_text().splitlines()
    assert summary[0] == "# Evaluation of `amcee-old-3`"
    assert summary[2] == "V0+V1; joint 10 epochs: calibrated for <= 0.4 pp loss"
    code, out, err = cli(capsys, "calibrate", old, "--data", run["data"], "--out", tmp_path / "cal.pt",
                         "--quiet")
    assert code == 0 and json.loads(out)["model_version"] == "amcee-old-3", err
    stored = load_model(str(tmp_path / "cal.pt")).meta
    assert (stored["model_version"], stored["description"]) == (
        "amcee-old-3", "V0+V1; joint 10 epochs: calibrated for <= 0.4 pp loss")


# ------------------------------------------------------------ the wrong file

def test_checkpoint_where_a_model_is_expected_and_the_reverse(run, tmp_path, capsys):
    code, _, err = cli(capsys, "eval", run["checkpoint"], "--data", run["data"], "--out", tmp_path / "ev")
    assert code == 2 and err.count("\n") == 1, err
    assert "is a training checkpoint, not an exported model" in err and "amcee export" in err
    # An exported model given to export is written again with this version's code (an upgrade).
    code, out, err = cli(capsys, "export", run["model"], "--out", tmp_path / "m.pt")
    assert code == 0, err
    assert json.loads(out)["upgraded_from"] == str(run["model"]) and (tmp_path / "m.pt").is_file()
    for command in (["info", run["checkpoint"]], ["train", "--data", run["data"], "--out", tmp_path / "r",
                                                  "--resume", run["model"]]):
        code, _, err = cli(capsys, *command)
        assert code == 2 and err.count("\n") == 1 and "corrupted" not in err and "weights_only" not in err, err


def test_train_on_a_dataset_too_small_for_the_paper_split(tmp_path, capsys):
    data = tmp_path / "four.npz"
    make_tiny_dataset(data, frames_per_key=4, snrs=(0, 10))
    code, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "too small for the paper's split: QAM16 at 0 dB has 4 frames" in err
    assert "needs at least 6" in err and "torch" not in err


# ------------------------------------------------------------ demo off a terminal

def test_demo_live_view_redraws_on_a_terminal_and_logs_lines_elsewhere():
    from gnuradio.amcee.tools.demo import LiveTable

    def summary(seconds):
        row = {"frames": 10, "accuracy": 0.5, "exit_share": [0.25, 0.75]}
        return {"frames": int(100 * seconds), "seconds": seconds, "frames_per_second": 100.0,
                "transition_frames": 0, "exit_names": ["V0", "final"], "all": row,
                "per_class": [dict(row, **{"class": "BPSK"})]}

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log = io.StringIO()
    view = LiveTable(log, line_seconds=5)
    for t in range(1, 13):
        view.show(summary(float(t)))
    view.show(summary(12.5), final=True)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "acc%" not in log.getvalue()  # at 5 s and 10 s, no table
    assert lines[0].startswith("demo: 500 frames in 5 s (100 frames/s), accuracy 50.0 %; exits V0 25.0 %")

    screen = Terminal()
    view = LiveTable(screen)
    view.show(summary(1.0))
    view.show(summary(2.0))
    assert screen.getvalue().count("acc%") == 2 and screen.getvalue().count("\x1b[") == 2  # redrawn in place


def test_demo_on_a_terminal_and_piped(tiny_model_path):
    code, out, terminal = run_on_terminal(["demo", "--model", tiny_model_path, "--frames", "600",
                                           "--refresh", "0.1", "--json"])  # the live view on stderr
    assert code == 0, terminal[-2000:]
    assert "acc%" in terminal and json.loads(out)["frames"] == 600
    result = subprocess.run(AMCEE + ["demo", "--model", tiny_model_path, "--frames", "600", "--refresh", "0.1",
                                     "--snr", "-4:4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("acc%") == 2  # the summary per class and per SNR only
    assert "\x1b[" not in result.stdout and "summary per class:" in result.stdout
    assert re.search(r"^ +-4 ", result.stdout, re.M)  # the per-SNR table: --snr -4:4 without '='

