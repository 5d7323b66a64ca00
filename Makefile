# Everything installs into .venv; torch is pinned to the local CPU build by constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --constraint constraints.txt
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test install dev data lint bench clean mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) -e '.[dev,export,track,ray]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

# Fashion-MNIST ships as a Debian package; install it where the files are missing.
data:
	@test -f $(FMNIST) || scripts/apt-install.sh dataset-fashion-mnist

demo: install data
	$(BIN)/haq demo

test: dev data
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: dev
	$(BIN)/ruff check src tests benchmarks

# Mutation testing, not in CI (about 15 CPU-minutes): the share of single-operator changes to
# four core modules that their fast tests catch (docs/benchmarks.md, "Mutation testing").
mutation: dev
	$(BIN)/python scripts/mutate.py --fail-under 90 src/haq/cost/_projection.py tests/cost/test_projection.py tests/cost/test_projection_sets.py
	$(BIN)/python scripts/mutate.py --fail-under 90 src/haq/cost/_budget.py tests/cost/test_budget.py
	$(BIN)/python scripts/mutate.py --fail-under 90 src/haq/runs/_journal.py tests/runs/test_journal.py
	$(BIN)/python scripts/mutate.py --fail-under 90 src/haq/policy/_policy.py tests/policy/test_policy.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
