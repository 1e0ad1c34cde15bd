# Two commands do all set-up on a fresh machine (see README):
#   make launch   -- create .venv, install the pinned set, run `rnc-platform launch` (embedded default)
#   make test     -- create .venv, install the pinned set, run the whole test suite (what CI runs)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install launch compile test lint clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision, ray, pymoo, numba, mlflow, optuna"
	touch $(STAMP)

install: $(STAMP)

launch: $(STAMP)
	$(BIN)/rnc-platform launch $(ARGS)

compile: $(STAMP)
	$(BIN)/rnc-platform compile torchvision:mobilenet_v3_small:10 --input 3x64x64 --hardware rnc --crossbars 256 --strategy rnc

test: $(STAMP)
	$(BIN)/ruff check rnc tests benchmarks
	$(BIN)/python -m pytest tests -q

lint: $(STAMP)
	$(BIN)/ruff check rnc tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
