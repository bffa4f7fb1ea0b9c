# streamer: Python slim + Debian's Tesseract + the package + the fetched plate model.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV STREAMER_CACHE=/opt/streamer-cache \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
RUN pip install . \
    && streamer model fetch
COPY config ./config
RUN mkdir -p recordings

VOLUME ["/app/recordings"]
CMD ["streamer", "run", "--config", "config/streamer.yaml"]
