# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing or stale (pyproject.toml changed, or the interpreter is gone),
# install the project with its extras and the `dev` dependency group (pip >= 25.1 reads groups),
# and are quick when already set up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hybridio-installed

.PHONY: demo test lint typecheck pytest pytest313 docs install tools clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade 'pip>=25.1'
	$(PY) -m pip install --quiet -e '.[all,scrapy,cluster,asgi]' --group dev
	@touch $(STAMP)

install: $(STAMP)

# The Debian tools the benchmarks drive: wrk loads the servers, nginx serves the crawled sites,
# CPython's HTML docs are the real site the demo crawls. Each missing one is installed with apt-get
# when we are root (the nginx service the package starts is stopped: the bench runs its own);
# elsewhere a note (the benchmark that needs one says so, and how to get it).
TOOLS := wrk:/usr/bin/wrk nginx-light:/usr/sbin/nginx
demo: TOOLS += python3.11-doc:/usr/share/doc/python3.11/html/index.html
tools:
	@for t in $(TOOLS); do \
	  package=$${t%%:*}; [ -e "$${t#*:}" ] && continue; \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then echo "tools: $$package is not installed (use your package manager)"; continue; fi; \
	  install="apt-get install -y -q --no-install-recommends $$package"; \
	  DEBIAN_FRONTEND=noninteractive $$install >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$install >/dev/null 2>&1; } || echo "tools: apt-get could not install $$package"; \
	  [ "$$package" != nginx-light ] || systemctl disable --now nginx >/dev/null 2>&1 || true; \
	done

# Measures this machine: every seed claim, then the other scenarios (about a minute each).
demo: $(STAMP) tools
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

# Branch coverage of the 3.11 run (code in worker processes is not counted): 80.8% measured when
# the floor was set (fresh clone, busy machine); a change that drops below it fails `make test`.
pytest: $(STAMP) tools
	$(PY) -m pytest --cov=hybridio --cov-branch --cov-report=term:skip-covered --cov-fail-under=78

# The docs site, with an API reference from the docstrings; --strict fails on a broken reference.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

test: lint typecheck docs pytest pytest313

clean:
	rm -rf $(VENV) $(VENV313) .coverage htmlcov .mypy_cache .ruff_cache site

# The core suite and the backends' tests also run on Python 3.13 (kind="interpreter" needs it), in a
# second venv, when a 3.13 is installed: python3.13 on PATH, else pyenv's latest 3.13.
PYTHON313 ?= $(shell for p in "$$(command -v python3.13)" "$$(PYENV_VERSION=$$(pyenv latest 3.13 2>/dev/null) pyenv which python3.13 2>/dev/null)"; do [ -n "$$p" ] && "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { echo "$$p"; break; }; done)
VENV313 := .venv313
STAMP313 := $(VENV313)/.hybridio-installed

$(STAMP313): pyproject.toml Makefile
	@test -x $(VENV313)/bin/python || $(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(VENV313)/bin/python -m pip install --quiet -e '.[cloudpickle]' --group test-core
	@touch $(STAMP313)

pytest313:
	@if [ -z "$(PYTHON313)" ]; then echo "pytest313: SKIPPED: no Python 3.13 here (python3.13 on PATH or a pyenv 3.13), so kind='interpreter' is not tested for real"; else $(MAKE) --no-print-directory $(STAMP313) && $(VENV313)/bin/python -m pytest tests/core tests/backends; fi
