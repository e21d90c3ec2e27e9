# Quick start: `make demo` and `make test`. Both create .venv when absent, install the
# local torch 2.13.0 CPU build first (a newer torch would pull GBs of CUDA packages),
# then the package with its development extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.collabfilter-installed
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

# Machines of this project keep MovieLens under ../shared/datasets (no internet there);
# use it unless the caller chose another folder.
SHARED_DATA := $(abspath ../shared/datasets)
ifeq ($(strip $(COLLABFILTER_DATA_DIR)),)
ifneq ($(wildcard $(SHARED_DATA)/ml-100k),)
export COLLABFILTER_DATA_DIR := $(SHARED_DATA)
endif
endif

.PHONY: demo test lint format bench setup clean tutorial

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/collabfilter demo

# Runs docs/tutorial.ipynb from the top in docs/ (its plots and model file go to
# docs/out/tutorial) and saves it with its outputs; nbclient is in the dev extra. The
# notebook is replaced only once every cell has run, so a failure leaves it as it was.
tutorial: $(STAMP)
	cd docs && ../$(PY) -c 'import nbformat, os; from nbclient import NotebookClient; \
	nb = nbformat.read("tutorial.ipynb", as_version=4); \
	NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False, \
	               resources={"metadata": {"path": "."}}).execute(); \
	nbformat.write(nb, ".tutorial.ipynb.tmp"); os.replace(".tutorial.ipynb.tmp", "tutorial.ipynb")'

# pytest exits 5 when it collects nothing: that must fail loudly, never pass.
test: $(STAMP) lint
	$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

BENCH_STAMP := $(VENV)/.collabfilter-bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PIP) -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The benchmarks measure peers (myFM, LensKit) side by side: installed here only.
bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
