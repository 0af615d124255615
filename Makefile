# The two commands of the README: `make train` (the main job) and `make test`.
# Both create .venv and install the package into it first; nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Use the local copy of MNIST beside the project when there is one; otherwise mnistlab
# falls back to Keras' download cache. An explicit MNISTLAB_DATA always wins.
MNISTLAB_DATA ?= $(wildcard $(CURDIR)/../shared/data/mnist.npz)
export MNISTLAB_DATA

.PHONY: install train test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/mnistlab train

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs
