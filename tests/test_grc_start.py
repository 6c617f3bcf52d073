"""GNU Radio Companion starts with gr-amcee the way GNU Radio users start it.

grcc compiles flowgraphs without GTK (tests/test_examples.py), so GRC's window
could fail to open ("Namespace Gtk not available": Debian's gnuradio does not
depend on gir1.2-gtk-3.0) with every test passing. These tests open GRC under
Xvfb, check the Python it runs flowgraphs with, and check the one-line error of
a flowgraph run by a Python without torch.
"""
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG_ROOT = ROOT / "build" / "pytest-pkgroot"
EXAMPLE = ROOT / "examples" / "classify_qpsk.grc"
VENV_LAUNCHER = ROOT / ".venv" / "bin" / "gnuradio-companion"
DEBIAN_PYTHON = "/usr/bin/python3"  # runs Debian's /usr/bin/gnuradio-companion; setup gives it no torch
LAUNCHER_MARK = "gnuradio-companion launcher of gr-amcee (scripts/setup.sh)"
START_TIMEOUT_S = 25
# Output lines that report a problem: GRC's [WARNING]/[ERROR] log lines, GNU
# Radio's "log :warning:", Gtk/GLib "-WARNING **", Python tracebacks and errors,
# GRC's "Failed to initialize GTK".
PROBLEM = re.compile(r"warn|error|critical|traceback|exception|fail|not available|cannot|unable|no module",
                     re.IGNORECASE)
TORCH_MISSING = ("ModuleNotFoundError: gr-amcee needs PyTorch, which this Python ({python}) lacks: "
                 "run the flowgraph with {venv_python} ")


def _problem_lines(text, *paths):
    """Lines of text that report a problem (paths GRC echoes are left out of the match)."""
    lines = []
    for line in text.splitlines():
        stripped = line
        for path in paths:
            stripped = stripped.replace(str(path), "")
        if PROBLEM.search(stripped):
            lines.append(line)
    return lines


def _require(program, package):
    path = shutil.which(program)
    assert path, f"{program} is missing: scripts/setup.sh installs it (Debian package {package})"
    return path


@pytest.fixture
def x_display():
    """A private Xvfb display (":N"); Xvfb picks a free N and reports it on -displayfd."""
    xvfb = _require("Xvfb", "xvfb")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 15)
        number = os.read(read_fd, 32).decode().strip() if ready else ""
        assert number.isdigit(), "Xvfb did not start within 15 s"
        yield f":{number}"
    finally:
        os.close(read_fd)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _grc_env(display, home):
    """GRC as a fresh user starts it (conftest keeps its block paths to GNU
    Radio's blocks and the source YAML)."""
    env = dict(os.environ, DISPLAY=display, HOME=str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    return env


def _viewable_grc_window(env, title_part):
    """The X id of GRC's main window once it is mapped and its title names title_part, else None."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10).stdout
    for window_id, title in re.findall(r'^\s*(0x[0-9a-f]+) "(.*)": \("gnuradio-companion"', tree, re.M):
        if title_part in title:
            info = subprocess.run(["xwininfo", "-id", window_id], env=env, capture_output=True, text=True,
                                  timeout=10).stdout
            if "Map State: IsViewable" in info:
                return window_id
    return None


def _process_argv(pid):
    return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def _open_example_in_grc(launcher, display, home, log_path):
    """Starts GRC with the example, waits for its window and the end of loading,
    and returns (the Python GRC runs in, GRC's output). GRC is stopped after."""
    _require("xwininfo", "x11-utils")
    env = _grc_env(display, home)
    with open(log_path, "w") as log:
        grc = subprocess.Popen([str(launcher), str(EXAMPLE)], env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        window = None
        while time.monotonic() < deadline and grc.poll() is None:
            window = window or _viewable_grc_window(env, EXAMPLE.name)
            if window and ">>> Done" in log_path.read_text():
                break
            time.sleep(0.2)
        time.sleep(0.5)  # let anything GRC logs right after loading reach the log
        output = log_path.read_text()
        assert grc.poll() is None, f"GRC exited with code {grc.returncode}:\n{output}"
        assert window, f"GRC's window with {EXAMPLE.name} did not come up within {START_TIMEOUT_S} s:\n{output}"
        assert ">>> Done" in output, f"GRC did not finish loading {EXAMPLE.name}:\n{output}"
        # The launcher execs Python in its own process: argv[0] is the Python
        # that GRC's sys.executable, and so its run_command, names.
        return _process_argv(grc.pid)[0], output
    finally:  # GRC leads its own process group (with its docstring loader)
        os.killpg(grc.pid, signal.SIGTERM)
        try:
            grc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(grc.pid, signal.SIGKILL)
            grc.wait()


def test_grc_opens_an_example_without_errors_and_runs_flowgraphs_with_torch(x_display, tmp_path):
    """`gnuradio-companion` from PATH, as GNU Radio users start GRC, and the
    venv's launcher (started too unless it is the same script)."""
    on_path = pathlib.Path(_require("gnuradio-companion", "gnuradio"))
    assert LAUNCHER_MARK in on_path.read_text(errors="replace"), (
        f"`gnuradio-companion` on PATH is {on_path}, not gr-amcee's launcher: its flowgraphs would run without "
        "torch (run scripts/setup.sh; /usr/local/bin must come before /usr/bin on PATH)")
    assert VENV_LAUNCHER.exists(), f"{VENV_LAUNCHER} is missing: run scripts/setup.sh"
    launchers = [on_path]
    if VENV_LAUNCHER.read_bytes() != on_path.read_bytes():
        launchers.append(VENV_LAUNCHER)
    for n, launcher in enumerate(launchers):
        home = tmp_path / f"home{n}"
        home.mkdir()
        python, output = _open_example_in_grc(launcher, x_display, home, tmp_path / f"grc{n}.log")
        assert not _problem_lines(output, ROOT, tmp_path), f"{launcher}:\n{output}"
        # GRC runs a flowgraph as "{python} -u {filename}" with python = sys.executable.
        result = subprocess.run([python, "-c", "import torch; from gnuradio import amcee"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"flowgraphs that {launcher} runs with {python} cannot import gr-amcee:\n" \
                                       f"{result.stderr}"


def test_qt_gui_import_logs_nothing():
    """Every QT flowgraph imports gnuradio.qtgui, which warns when matplotlib's
    Qt backend cannot load (pip's matplotlib needs Debian's python3-pyqt5.qtsvg)."""
    result = subprocess.run([sys.executable, "-c", "from gnuradio import qtgui"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert not _problem_lines(result.stdout + result.stderr), result.stdout + result.stderr


def _require_debian_python_without_torch():
    if not os.path.exists(DEBIAN_PYTHON):
        pytest.skip(f"{DEBIAN_PYTHON} is absent")
    has_torch = subprocess.run([DEBIAN_PYTHON, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0
    if has_torch:
        pytest.skip(f"{DEBIAN_PYTHON} has torch here: no Python without it to test with")


def test_generated_flowgraph_run_without_torch_names_the_python_to_use(tmp_path):
    """The flowgraph that GRC from /usr/bin (Debian's Python) would run."""
    _require_debian_python_without_torch()
    compiled = subprocess.run(["grcc", "-o", str(tmp_path), str(EXAMPLE)], capture_output=True, text=True,
                              timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    result = subprocess.run([DEBIAN_PYTHON, "-u", str(tmp_path / "classify_qpsk.py")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    expected = TORCH_MISSING.format(python=DEBIAN_PYTHON, venv_python=ROOT / ".venv" / "bin" / "python")
    assert last_line.startswith(expected), result.stderr


@pytest.mark.parametrize("shebang", ["venv python", "/usr/bin/env python3"])
def test_installed_package_without_torch_names_the_python_it_was_installed_for(shebang, tmp_path):
    """Installed under a prefix, the package names the Python in the shebang
    that CMake wrote into <prefix>/bin/amcee (the venv's); a shebang that
    names no particular Python gives the venv's usual place."""
    _require_debian_python_without_torch()
    package = tmp_path / "lib" / "python3" / "dist-packages" / "gnuradio" / "amcee"
    package.mkdir(parents=True)
    # The check needs only the package's __init__ and the compiled module it imports first.
    shutil.copy(ROOT / "python" / "amcee" / "__init__.py", package)
    for compiled in (PKG_ROOT / "gnuradio" / "amcee").glob("amcee_python*.so"):
        (package / compiled.name).symlink_to(compiled.resolve())
    if shebang == "venv python":
        venv_python = tmp_path / "venv" / "bin" / "python"
        venv_python.parent.mkdir(parents=True)
        venv_python.symlink_to(sys.executable)
        shebang, expected_python = str(venv_python), str(venv_python)
    else:
        expected_python = "the Python of the venv that scripts/setup.sh makes (.venv/bin/python)"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "amcee").write_text(f"#!{shebang}\nimport sys\n")
    site = str(package.parents[1])
    code = f"import sys; sys.path.insert(0, {site!r}); from gnuradio import amcee"
    result = subprocess.run([DEBIAN_PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(TORCH_MISSING.format(python=DEBIAN_PYTHON, venv_python=expected_python)), \
        result.stderr
