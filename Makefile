# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing or stale (pyproject.toml changed, or the interpreter is gone),
# install the project with its extras, and are quick when already set up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hybridio-installed

.PHONY: demo test lint typecheck pytest install clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Measures this machine: every seed claim, then the other scenarios (about a minute each).
demo: $(STAMP)
	$(VENV)/bin/hybridio bench all --quick --out demo-out
	@echo "Report: demo-out/report.md (data: demo-out/results.json, plots: demo-out/*.png)"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/ruff format --check src tests examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src

pytest: $(STAMP)
	$(PY) -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .coverage htmlcov .mypy_cache .ruff_cache
