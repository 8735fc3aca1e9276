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

.PHONY: setup quick test test-fast lint bench bench-device clean-results examples examples-quick examples-shapes-rip examples-shapes-rip-columns examples-shapes-rip-box examples-toy

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

## ruff, and mypy on ripbench/ (settings in pyproject.toml [tool.mypy]); both must be clean.
lint: setup
	$(BIN)/ruff check ripbench tests benchmarks examples
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_harness.py --threads 1

## The device benchmark (GPU: full-size SD-2 inpainting architecture; CPU: a small variant).
bench-device: setup
	PYTHON=$(BIN)/python bash benchmarks/device.sh

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md ! -name examples -exec rm -rf {} +

## Regenerate the committed example outputs under results/examples/ (each target names its command).
examples: examples-quick examples-shapes-rip examples-toy

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

## results/examples/shapes-rip-{columns,box}: `ripbench repro shapes-rip` with each mask policy (README
## "Hallucinations and reproductions"): reports, tables, figure.
SHAPES_RIP_ARGS  ?= --images 32 --seeds 0,1,2 --iterations 12 --steps 100 --bands 3
SHAPES_RIP_FILES  = shapes_rip.md shapes_rip.json shapes_rip_detection.csv shapes_rip_baselines.csv shapes_rip_kinds.csv figures/shapes_rip.png
examples-shapes-rip: examples-shapes-rip-columns examples-shapes-rip-box

## One mask policy each (`make -j2 examples-shapes-rip` runs both at once, one core each).
examples-shapes-rip-columns examples-shapes-rip-box: examples-shapes-rip-%: setup
	rm -rf build/examples/shapes-rip-$* results/examples/shapes-rip-$*
	mkdir -p results/examples/shapes-rip-$*
	$(BIN)/python -m ripbench --threads 1 repro shapes-rip --mask $* $(SHAPES_RIP_ARGS) \
	  --out build/examples/shapes-rip-$*
	for f in $(SHAPES_RIP_FILES); do cp build/examples/shapes-rip-$*/$$f results/examples/shapes-rip-$*/; done

## results/examples/hallucination-toy: `ripbench repro hallucination-toy` (Aithal et al.'s Gaussian toy data).
examples-toy: setup
	rm -rf build/examples/hallucination-toy results/examples/hallucination-toy
	$(BIN)/python -m ripbench --threads 1 repro hallucination-toy --out build/examples/hallucination-toy
	mkdir -p results/examples/hallucination-toy
	cp build/examples/hallucination-toy/report.md build/examples/hallucination-toy/report.json \
	  build/examples/hallucination-toy/*.png results/examples/hallucination-toy/
