#!/usr/bin/env bash
# One-command setup of gr-amcee on Debian 12 (idempotent; a second run takes seconds).
#
#  1. GNU Radio 3.10 and the build tools from Debian (skipped when present).
#  2. A venv (.venv) made from Debian's Python with --system-site-packages, so it
#     sees Debian's GNU Radio, plus the pinned Python dependencies.
#  3. Configure, build and install the module into /usr/local, where Debian's
#     Python, the venv and GNU Radio Companion all find it.
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
APT_PACKAGES=(gnuradio gnuradio-dev cmake make g++ pkg-config python3-venv python3-dev
              gr-osmosdr xvfb xauth)
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

# GNU Radio Companion looks for block YAML under its own prefix (/usr) and in
# [grc] local_blocks_path; point it at ours when installing elsewhere.
if [ "$PREFIX" != "/usr" ]; then
    conf=/etc/gnuradio/conf.d/amcee.conf
    want="[grc]
local_blocks_path = $PREFIX/share/gnuradio/grc/blocks"
    if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
        echo "$want" | $SUDO tee "$conf" > /dev/null
    fi
fi

# GNU Radio Companion runs flowgraphs with the Python that runs it: this
# launcher makes that the venv's, which has torch.
cat > "$VENV/bin/gnuradio-companion" <<SH
#!/bin/sh
exec "$VENV/bin/python" /usr/bin/gnuradio-companion "\$@"
SH
chmod +x "$VENV/bin/gnuradio-companion"

"$VENV/bin/python" -c "from gnuradio import amcee" \
    && echo "==> gr-amcee ready: source .venv/bin/activate; amcee --help"
