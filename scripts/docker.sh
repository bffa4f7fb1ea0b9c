#!/usr/bin/env bash
# Docker for streamer, without a registry: Debian's dockerd, a minimal Debian base image made
# from Debian's packages, the two-stage image, and the README's commands in a fresh container.
#
#   scripts/docker.sh daemon   start dockerd (host networking only) unless it answers
#   scripts/docker.sh base     make the streamer-base:bookworm image with mmdebstrap (once)
#   scripts/docker.sh image    build the Dockerfile FROM that base, as streamer:latest
#   scripts/docker.sh postgres build PostgreSQL from Debian's packages FROM that base, as
#                              streamer-test-postgres:bookworm (tests/support/docker/postgres)
#   scripts/docker.sh readme   in a fresh container of the base: apt-get install make, then
#                              `make demo` and `make test`, as a new user on a stock Debian
#
# Each fails with one line saying why. dockerd is started without a bridge, iptables rules
# or ip_forward, so it changes nothing on the host's network: containers use the host's.
# Where HTTPS goes through a TLS-inspecting proxy, the host's CA bundle is handed to pip.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${STREAMER_DOCKER_BASE:-streamer-base:bookworm}
IMAGE=${STREAMER_DOCKER_IMAGE:-streamer:latest}
POSTGRES=streamer-test-postgres:bookworm  # named in tests/support/docker/compose.yaml
CA=/etc/ssl/certs/ca-certificates.crt
docker=/usr/bin/docker  # Debian's client: it builds with the BuildKit inside dockerd
[ -x "$docker" ] || docker=$(command -v docker || echo docker)
fail() { echo "docker.sh: $*" >&2; exit 1; }

answers() { "$docker" version >/dev/null 2>&1; }

start_daemon() {
    answers && return 0
    command -v dockerd >/dev/null 2>&1 || fail "dockerd is not installed (apt-get install docker.io)"
    [ "$(id -u)" = 0 ] || fail "dockerd is not running, and only root can start it"
    local log=/var/log/streamer-dockerd.log
    setsid dockerd --storage-driver overlay2 --iptables=false --ip6tables=false \
        --ip-forward=false --ip-masq=false --bridge=none >>"$log" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 150); do
        answers && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            fail "dockerd exited: $(grep -E 'level=(fatal|error)|failed' "$log" | tail -1 | cut -c1-300)"
        fi
        sleep 0.2
    done
    fail "dockerd did not answer within 30 s (see $log)"
}

make_base() {
    start_daemon
    "$docker" image inspect "$BASE" >/dev/null 2>&1 && return 0
    command -v mmdebstrap >/dev/null 2>&1 || fail "mmdebstrap is not installed (apt-get install mmdebstrap)"
    mmdebstrap --quiet --variant=minbase bookworm - | "$docker" import - "$BASE" >/dev/null \
        || fail "mmdebstrap could not make $BASE"
}

build_image() {
    make_base
    local secret=()
    [ -s "$CA" ] && secret=(--secret "id=ca,src=$CA")
    DOCKER_BUILDKIT=1 "$docker" build --quiet --network host --build-arg "BASE=$BASE" \
        "${secret[@]}" -t "$IMAGE" . >/dev/null || fail "docker build failed"
    "$docker" image inspect "$IMAGE" --format '{{.Size}}'
}

build_postgres() {
    make_base
    DOCKER_BUILDKIT=1 "$docker" build --quiet --network host --build-arg "BASE=$BASE" \
        -t "$POSTGRES" tests/support/docker/postgres >/dev/null || fail "docker build of $POSTGRES failed"
}

readme_in_container() {
    make_base
    name="streamer-readme-$$"
    local opts=(--network host -e STREAMER_IN_CONTAINER=1)
    if [ -s "$CA" ]; then
        opts+=(-v "$CA:/etc/host-ca.crt:ro" -e PIP_CERT=/etc/host-ca.crt
               -e SSL_CERT_FILE=/etc/host-ca.crt -e REQUESTS_CA_BUNDLE=/etc/host-ca.crt)
    fi
    "$docker" run -d --name "$name" "${opts[@]}" -w /root/streamer "$BASE" sleep infinity >/dev/null
    trap '"$docker" rm -f "$name" >/dev/null 2>&1 || true' EXIT
    # The project as a clone has it: what git tracks, as it is in the working tree.
    git ls-files -z --cached --others --exclude-standard | tar -c --null -T - \
        | "$docker" exec -i "$name" sh -c 'mkdir -p /root/streamer && tar -x -C /root/streamer'
    "$docker" exec "$name" sh -c 'apt-get update -qq && apt-get install -y -qq make >/dev/null'
    "$docker" exec "$name" make demo
    "$docker" exec "$name" make test
}

case "${1:-}" in
    daemon) start_daemon ;;
    base) make_base ;;
    image) build_image ;;
    postgres) build_postgres ;;
    readme) readme_in_container ;;
    *) fail "usage: scripts/docker.sh daemon|base|image|postgres|readme" ;;
esac
