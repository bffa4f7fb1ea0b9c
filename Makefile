# The README names these targets; CI runs `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-test demo test lint format clean

setup:  ## virtualenv, Tesseract, pinned dependencies, model weights
	@bash scripts/bootstrap.sh

setup-test:  ## setup, plus the GStreamer RTSP server the live-camera tests use
	@bash scripts/bootstrap.sh --test

demo: setup  ## make the demo recording and process it with the default config
	$(PY) -m streamer demo

test: setup-test lint  ## the whole test suite, with real weights, Tesseract, SQLite and video
	$(PY) -m pytest

lint:  ## ruff, mypy, the layout (modules under 400 lines, no import cycles), and the docs
	$(VENV)/bin/ruff check streamer tests bench scripts
	$(VENV)/bin/ruff format --check streamer tests bench scripts
	$(VENV)/bin/mypy
	$(PY) scripts/layout.py --quiet
	$(PY) scripts/config_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

format:
	$(VENV)/bin/ruff format streamer tests bench scripts
	$(VENV)/bin/ruff check --fix streamer tests bench scripts

clean:
	rm -rf recordings/demo.mp4 recordings/events.jsonl* recordings/dues.sqlite recordings/outbox.sqlite* recordings/evidence
