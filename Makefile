# The two commands of the README: `make train` (the main job) and `make test`.
# Both create .venv and install the package into it first; nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Use the local copy of MNIST beside the project when there is one; otherwise mnistlab
# falls back to Keras' download cache. An explicit MNISTLAB_DATA always wins.
MNISTLAB_DATA ?= $(wildcard $(CURDIR)/../shared/data/mnist.npz)
export MNISTLAB_DATA

PIP := $(BIN)/pip install --quiet --disable-pip-version-check
# The exact versions (and every file's hash) come from the lock files; the package itself
# is installed on top of them with nothing more resolved or downloaded.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
COMPILE := .lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --all-build-deps \
	--no-emit-index-url --no-emit-find-links

.PHONY: install train test test-fast docs lint format lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	$(PIP) --require-hashes -r $(LOCK)
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(DEV_LOCK) $(VENV)/.installed
	$(PIP) --require-hashes -r $(DEV_LOCK)
	touch $@

install: $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/mnistlab train

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest

# The unit tier: synthetic data, no training; under 2 minutes.
test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -m unit -q

# The documentation site, into site/ (docs/hooks.py makes its generated tables).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Renew the lock files from pyproject's ranges: the newest versions they allow, today.
# Then `make test`, and commit the lock files with what changed.
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check pip-tools==7.6.2
	$(COMPILE) --upgrade -o $(LOCK) pyproject.toml
	$(COMPILE) --upgrade --extra dev -o $(DEV_LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .lock-venv runs site
