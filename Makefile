# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing or stale (pyproject.toml changed, or the interpreter is gone),
# install the project with its extras and the `dev` dependency group (pip >= 25.1 reads groups),
# and are quick when already set up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hybridio-installed

.PHONY: demo test lint typecheck pytest docs install clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade 'pip>=25.1'
	$(PY) -m pip install --quiet -e '.[all,scrapy,cluster,asgi]' --group dev
	@touch $(STAMP)

install: $(STAMP)

# Measures this machine: every seed claim, then the other scenarios (about a minute each).
demo: $(STAMP)
	$(VENV)/bin/hybridio bench all --quick --out demo-out
	@echo ""
	@echo "Next, in your shell: . .venv/bin/activate   (or prefix each command with .venv/bin/), then try:"
	@echo "  1. python examples/tour.py     # the same work inline, in a thread, in a process"
	@echo "  2. hybridio serve              # then: curl 'http://127.0.0.1:8080/cpu?ms=20&mode=process'"
	@echo "  3. python examples/crawler.py  # crawl a generated local site, parsing in processes"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests type_tests examples
	$(VENV)/bin/ruff format --check src tests type_tests examples

# src, the tests, and type_tests/ (the public API's types, checked and never run).
typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src tests type_tests

pytest: $(STAMP)
	$(PY) -m pytest

# The docs site, with an API reference from the docstrings; --strict fails on a broken reference.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

test: lint typecheck docs pytest

clean:
	rm -rf $(VENV) .coverage htmlcov .mypy_cache .ruff_cache site
