# failbench: `make all` regenerates every result and report; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-installed only when the pins or the package metadata change.
STAMP  := $(VENV)/.installed
PROFILE ?= quick
# Grid points run in parallel, one per core; the metrics are the same as a serial run's (tests/test_scale.py).
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: help install all run check report test bench ui clean distclean

help:
	@echo "make all      install, run every case on the $(PROFILE) profile, check the expectations"
	@echo "make test     install, run the test suite"
	@echo "make run      run every case (PROFILE=quick|full, WORKERS=$(WORKERS))"
	@echo "make check    judge the stored runs against each case's expectations"
	@echo "make report   render the HTML reports; prints reports/index.html"
	@echo "make bench    run the benchmarks"
	@echo "make ui       browse the runs in the MLflow UI"
	@echo "make clean    remove results (mlflow.db, artifacts, rendered reports); distclean also the venv"

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# --no-compile: Python writes the bytecode of what it imports on first use; compiling every file of
	# every package up front (mlflow, torch, scipy: tens of thousands) is most of the install's CPU.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name failbench --display-name "failbench (.venv)" >/dev/null
	touch $@

# Checks the expectations, renders the reports whatever the verdict, then exits with the verdict.
all: install run
	$(BIN)/failbench check --profile $(PROFILE); status=$$?; \
	$(BIN)/failbench report --profile $(PROFILE) && exit $$status

report: install
	$(BIN)/failbench report --profile $(PROFILE)

run: install
	$(BIN)/failbench run --profile $(PROFILE) --workers $(WORKERS)

check: install
	$(BIN)/failbench check --profile $(PROFILE)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# one pytest worker per core (pytest-xdist): the slow tests train and render on one core each
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -p no:cacheprovider

ui: install
	$(BIN)/failbench ui

clean:
	rm -rf mlflow.db mlflow.db-wal mlflow.db-shm mlruns mlartifacts reports/out reports/index.html .pytest_cache .benchmarks

distclean: clean
	rm -rf $(VENV) *.egg-info
