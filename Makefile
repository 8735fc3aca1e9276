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

.PHONY: setup quick test test-fast lint bench clean-results examples examples-shapes-rip examples-toy

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
	$(BIN)/python benchmarks/bench_harness.py

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md ! -name examples -exec rm -rf {} +

## Regenerate the committed reproduction outputs in results/examples/ (CPU; see README "Hallucinations and
## reproductions"). Each runs into results/<name>/ from scratch, then copies the reports and figures.
EXAMPLES        := results/examples
SHAPES_RIP_ARGS ?= --images 32 --seeds 0,1,2 --iterations 12 --steps 25 --bands 3
SHAPES_RIP_FILES = shapes_rip.md shapes_rip.json shapes_rip_detection.csv shapes_rip_kinds.csv figures/shapes_rip.png

examples: examples-shapes-rip examples-toy

examples-shapes-rip: setup
	for mask in columns box; do \
	  rm -rf results/shapes-rip-$$mask $(EXAMPLES)/shapes-rip-$$mask && mkdir -p $(EXAMPLES)/shapes-rip-$$mask && \
	  $(BIN)/python -m ripbench repro shapes-rip --mask $$mask $(SHAPES_RIP_ARGS) --out results/shapes-rip-$$mask && \
	  for f in $(SHAPES_RIP_FILES); do cp results/shapes-rip-$$mask/$$f $(EXAMPLES)/shapes-rip-$$mask/; done \
	  || exit 1; \
	done

examples-toy: setup
	rm -rf results/hallucination-toy $(EXAMPLES)/hallucination-toy && mkdir -p $(EXAMPLES)/hallucination-toy
	$(BIN)/python -m ripbench repro hallucination-toy --out results/hallucination-toy
	cp results/hallucination-toy/report.md results/hallucination-toy/report.json results/hallucination-toy/*.png \
	  $(EXAMPLES)/hallucination-toy/
