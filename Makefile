# ripbench developer commands. `make quick` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Genuine LPIPS backbone weights for offline machines (optional; see README "LPIPS weights").
LPIPS_WEIGHTS ?= $(firstword $(wildcard ../shared/lpips-weights))
ifneq ($(LPIPS_WEIGHTS),)
export RIPBENCH_LPIPS_WEIGHTS ?= $(abspath $(LPIPS_WEIGHTS))
endif

.PHONY: setup quick test test-fast lint bench bench-device clean-results examples examples-quick

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

## Run the built-in default benchmark (quick preset, ~1 minute on 2 CPU cores).
quick: setup
	$(BIN)/ripbench run

## Run the whole test suite (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

## Skip tests marked slow.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check ripbench tests benchmarks examples

bench: setup
	$(BIN)/python benchmarks/bench_harness.py --threads 1

## The device benchmark (GPU: full-size SD-2 inpainting architecture; CPU: a small variant).
bench-device: setup
	PYTHON=$(BIN)/python bash benchmarks/device.sh

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md ! -name examples -exec rm -rf {} +

## Regenerate the committed example outputs under results/examples/ (each target names its command).
examples: examples-quick

## results/examples/quick: the quick preset (`ripbench run`), its summary and collapse curves.
examples-quick: setup
	rm -rf build/examples/quick results/examples/quick
	$(BIN)/ripbench --threads 1 run --output-dir build/examples --no-progress
	$(BIN)/ripbench report build/examples/quick --out build/examples/quick-report
	@size=$$(wc -c < build/examples/quick-report/report.html); test $$size -lt 1000000 || \
		{ echo "report.html is $$size bytes: over the 1 MB budget"; exit 1; }
	mkdir -p results/examples/quick
	cp build/examples/quick-report/summary.md build/examples/quick-report/summary.csv results/examples/quick/
	cp build/examples/quick/figures/collapse_curves.png results/examples/quick/
	cp build/examples/quick/manifest.json results/examples/quick/
