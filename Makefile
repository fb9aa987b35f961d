# Two commands a newcomer needs: `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
DATA ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dflib-installed
RUN_ARGS ?=

.PHONY: help install run smoke lint format test test-fast sample benchmarks clean

help:
	@echo "make run      execute every notebook headless (embedded sample unless DATA=/path/to/Dataset), render notebooks/html/"
	@echo "make test     ruff (format + lint), then the whole test suite, including a smoke run of every notebook"
	@echo "make lint     ruff format --check and ruff check (make format fixes what it can)"
	@echo "make smoke    run every notebook with smoke=True into runs/smoke (fast check)"
	@echo "make install  create $(VENV) and install dflib with its dev extras"
	@echo "make benchmarks  the speed scripts in benchmarks/ (ratios measured side by side)"

# (Re)install when the venv is missing or the project's requirements changed.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "error: Python 3.10+ is needed, found " + sys.version.split()[0] + "; set PYTHON=/path/to/python3.10+")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

sample: $(STAMP)
	$(PY) -m dflib sample-data

run: $(STAMP)
	$(PY) -m dflib run-notebooks $(if $(DATA),-p data_dir "$(DATA)") $(RUN_ARGS)

smoke: $(STAMP)
	$(PY) -m dflib run-notebooks --smoke --out runs/smoke $(if $(DATA),-p data_dir "$(DATA)")

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebooks"

benchmarks: $(STAMP)
	$(PY) benchmarks/data_throughput.py
	$(PY) benchmarks/models_vs_reference.py --quick
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf runs .pytest_cache
