# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing or stale (pyproject.toml changed, or the interpreter is gone),
# install the project with its extras, and are quick when already set up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hybridio-installed

.PHONY: demo test lint typecheck pytest pytest313 install clean

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

test: lint typecheck pytest pytest313

clean:
	rm -rf $(VENV) $(VENV313) .coverage htmlcov .mypy_cache .ruff_cache

# The core suite and the backends' tests also run on Python 3.13 (kind="interpreter" needs it), in a
# second venv, when a 3.13 is installed: python3.13 on PATH, else pyenv's latest 3.13.
PYTHON313 ?= $(shell for p in "$$(command -v python3.13)" "$$(PYENV_VERSION=$$(pyenv latest 3.13 2>/dev/null) pyenv which python3.13 2>/dev/null)"; do [ -n "$$p" ] && "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { echo "$$p"; break; }; done)
VENV313 := .venv313
STAMP313 := $(VENV313)/.hybridio-installed

$(STAMP313): pyproject.toml Makefile
	@test -x $(VENV313)/bin/python || $(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade pip
	$(VENV313)/bin/python -m pip install --quiet -e '.[test-core]'
	@touch $(STAMP313)

pytest313:
	@if [ -z "$(PYTHON313)" ]; then echo "pytest313: SKIPPED: no Python 3.13 here (python3.13 on PATH or a pyenv 3.13), so kind='interpreter' is not tested for real"; else $(MAKE) --no-print-directory $(STAMP313) && $(VENV313)/bin/python -m pytest tests/core tests/backends; fi
