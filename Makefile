# The README names these targets; CI runs `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint format bench clean

setup:  ## virtualenv, Tesseract, pinned dependencies, model weights
	@bash scripts/bootstrap.sh

demo: setup  ## make the demo recording and process it with the default config
	$(PY) -m streamer demo

test: setup lint  ## the whole test suite, with real weights, Tesseract, SQLite and video
	$(PY) -m pytest

lint:
	$(VENV)/bin/ruff check streamer tests
	$(VENV)/bin/ruff format --check streamer tests
	$(VENV)/bin/mypy

format:
	$(VENV)/bin/ruff format streamer tests
	$(VENV)/bin/ruff check --fix streamer tests

clean:
	rm -rf recordings/demo.mp4 recordings/events.jsonl recordings/dues.sqlite recordings/evidence
