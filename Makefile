# The README's two commands: `make demo` (the main job on built-in data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install models

# torch goes in first and pinned: the CPU wheel; an unpinned torch would pull CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/timbre-transfer demo --out data/demo

# rebuild the shipped models from ../shared/data (about 40 minutes on 2 CPU cores; run alone)
models: $(STAMP)
	$(BIN)/python benchmarks/train_models.py

# the lint and the layer contract first: they take seconds and name the file and line
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
