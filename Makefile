# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install pinned deps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-mini wheel clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch==2.13.0 is the first line of requirements.txt: the CPU wheel, no CUDA download.
	$(BIN)/pip install -q -r requirements.txt
	# rapidocr pulls the GUI opencv-python as a hard dependency; we keep the headless build instead.
	$(BIN)/pip install -q --no-deps rapidocr_onnxruntime==1.4.4
	$(BIN)/pip install -q --no-deps -e .
	# gcld3 (DataComp's LAION-2B language rule) builds from source with Debian's protobuf-compiler and
	# libprotobuf-dev; optional: without it laion2b falls back to fastText and the gcld3 tests are skipped.
	$(BIN)/pip install -q gcld3==3.0.13 || echo "gcld3 could not be built (apt-get install protobuf-compiler libprotobuf-dev); its tests will be skipped"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/altsift demo --out demo_out
	# the miniature DataComp with the shipped tiny models: score, select with each strategy, train, evaluate
	# (--quick: 2000 pairs, one seed, oracle OCR; about 2-3 min on 2 cores)
	$(BIN)/altsift bench mini --quick -o demo_out/bench_mini
	@echo "Full mini DataComp (6000 pairs, 13 strategies x 3 seeds, RapidOCR, mean ± sd; 11.5 min on 2 idle cores, ~22 min with one busy, see benchmarks/RESULTS_mini.md): make bench-mini"

bench-mini: $(STAMP)
	$(BIN)/altsift bench mini -o bench_mini

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/pytest -q -rs

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# The installable wheel (core + extras metadata from pyproject.toml) in dist/.
wheel: $(STAMP)
	$(BIN)/pip wheel --no-deps --no-build-isolation -q -w dist .

clean:
	rm -rf demo_out bench_mini .pytest_cache dist
