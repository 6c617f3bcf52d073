#!/usr/bin/env bash
# One-command setup of gr-amcee on Debian 12 (idempotent; a second run takes seconds).
#
#  1. GNU Radio 3.10 and the build tools from Debian (skipped when present).
#  2. A venv (.venv) made from Debian's Python with --system-site-packages, so it
#     sees Debian's GNU Radio, plus the pinned Python dependencies.
#  3. Configure, build and install the module into /usr/local, where Debian's
#     Python, the venv and GNU Radio Companion all find it.
#  4. A gnuradio-companion launcher (in the venv and in /usr/local/bin) that
#     runs GRC with the venv's Python, so that the flowgraphs it runs have torch.
#
# Options: AMCEE_WITH_SDR=1 also installs the SoapySDR hardware modules; AMCEE_PREFIX overrides the install prefix.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PREFIX="${AMCEE_PREFIX:-/usr/local}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# gr-osmosdr (RTL-SDR, HackRF, ...) is small and lets grcc compile the live
# SDR examples; xvfb/xauth let the tests screenshot the QT display headless.
# With --no-install-recommends Debian's gnuradio leaves out what GNU Radio
# Companion's GTK window needs: it imports Gtk, Gdk, Pango and PangoCairo through
# GObject introspection, whose typelibs are gir1.2-gtk-3.0 and its dependencies
# (python3-gi and python3-gi-cairo do come with gnuradio). Without them GRC stops
# with "Namespace Gtk not available"; x11-utils' xwininfo lets the tests see
# GRC's window come up.
# python3-pyqt5.qtsvg: matplotlib's Qt backend imports PyQt5.QtSvg, and without
# it gnuradio.qtgui logs "Matplotlib is a required dependency to use
# DistanceRadar" in every QT flowgraph. Debian's python3-matplotlib would not
# help: the venv's pip matplotlib (requirements.txt) comes first on its path,
# and a pip PyQt5 must not replace Debian's, which gr-qtgui is built against.
# python3-h5py reads RadioML 2018.01A's HDF5 file (data/radioml2018.py): Debian's
# build links Debian's libhdf5 and its numpy ABI, which the venv's numpy<2 keeps,
# and the venv sees it through --system-site-packages; a pip h5py would bring a
# second HDF5 library in its wheel.
APT_PACKAGES=(gnuradio gnuradio-dev cmake make g++ pkg-config python3-venv python3-dev
              gr-osmosdr xvfb xauth x11-utils gir1.2-gtk-3.0 python3-pyqt5.qtsvg python3-h5py)
if [ "${AMCEE_WITH_SDR:-0}" = "1" ]; then
    APT_PACKAGES+=(soapysdr-tools soapysdr-module-all)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> venv: $VENV (Debian python, system site packages)"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# pip only installs what is missing: the requirement file pins torch (a CPU
# wheel) and numpy<2 (numpy 2 breaks Debian's GNU Radio).
if ! "$VENV/bin/python" - "$ROOT/requirements.txt" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
from packaging.requirements import Requirement
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    if version(req.name) not in req.specifier:
        raise SystemExit(1)
PY
then
    echo "==> pip: installing requirements.txt"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
fi

echo "==> cmake: build and install into $PREFIX"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
      -DPYTHON_EXECUTABLE="$VENV/bin/python" -Wno-dev > "$ROOT/build.log" 2>&1 \
    || { cat "$ROOT/build.log"; exit 1; }
cmake --build "$ROOT/build" -j"$(nproc)" >> "$ROOT/build.log" 2>&1 || { cat "$ROOT/build.log"; exit 1; }
$SUDO cmake --install "$ROOT/build" >> "$ROOT/build.log" 2>&1 || { cat "$ROOT/build.log"; exit 1; }
$SUDO ldconfig

# GNU Radio Companion looks for block YAML in Debian's [grc] global_blocks_path
# (/usr and /usr/local) and in local_blocks_path; point the latter at ours for
# any other prefix.
if [ "$PREFIX" != "/usr" ]; then
    conf=/etc/gnuradio/conf.d/amcee.conf
    want="[grc]
local_blocks_path = $PREFIX/share/gnuradio/grc/blocks"
    if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
        echo "$want" | $SUDO tee "$conf" > /dev/null
    fi
fi

# GNU Radio Companion runs a flowgraph with the Python that runs GRC itself (the
# Options block's run_command "{python} -u {filename}", python = sys.executable),
# and Debian's /usr/bin/gnuradio-companion is run by /usr/bin/python3, which has
# no torch. The launcher runs Debian's GRC with the venv's Python instead. It is
# written twice: into the venv, and as /usr/local/bin/gnuradio-companion, which
# comes before /usr/bin on Debian's PATH, so that `gnuradio-companion` from a
# shell and the desktop menu entry (Exec=gnuradio-companion) start it too.
# Giving /usr/bin/python3 torch instead (pip --break-system-packages, or a .pth
# that adds the venv's site-packages) would change the packages of every Python
# program on the machine; the launcher changes only how GRC starts.
GRC_LAUNCHER_MARK="gnuradio-companion launcher of gr-amcee (scripts/setup.sh)"
grc_launcher="$(cat <<SH
#!/bin/sh
# $GRC_LAUNCHER_MARK: runs Debian's GNU Radio
# Companion with the gr-amcee venv's Python, so that the flowgraphs GRC runs
# (with the Python that runs GRC) can import torch.
if [ ! -x "$VENV/bin/python" ]; then
    echo "gnuradio-companion: $VENV/bin/python is missing: run $ROOT/scripts/setup.sh" >&2
    exit 1
fi
exec "$VENV/bin/python" /usr/bin/gnuradio-companion "\$@"
SH
)"
if [ "$(cat "$VENV/bin/gnuradio-companion" 2>/dev/null)" != "$grc_launcher" ]; then
    echo "$grc_launcher" > "$VENV/bin/gnuradio-companion"
    chmod 755 "$VENV/bin/gnuradio-companion"
fi
path_launcher=/usr/local/bin/gnuradio-companion
if [ "$(cat "$path_launcher" 2>/dev/null)" != "$grc_launcher" ]; then
    # Never replace a gnuradio-companion that is not ours (a GNU Radio built from source lives in /usr/local).
    if [ -e "$path_launcher" ] && ! grep -qF "$GRC_LAUNCHER_MARK" "$path_launcher"; then
        echo "==> warning: $path_launcher is not gr-amcee's launcher, left as it is;" \
             "start GRC with $VENV/bin/gnuradio-companion" >&2
    else
        echo "==> GRC launcher: $path_launcher"
        echo "$grc_launcher" | $SUDO tee "$path_launcher" > /dev/null
        $SUDO chmod 755 "$path_launcher"
    fi
fi

"$VENV/bin/python" -c "from gnuradio import amcee" \
    && echo "==> gr-amcee ready: source .venv/bin/activate; amcee --help; gnuradio-companion examples/demo_qt_gui.grc"
