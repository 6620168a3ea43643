# queuetool: `make demo` runs it against a local gearmand, `make test` passes the tests.
# Both install what they need on a fresh Debian machine (as root, or with sudo).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES := gearman-job-server gearman-tools mariadb-server mariadb-client sqlite3 \
                   postgresql prometheus chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps venv test lint format demo demo-stop bench clean

deps:  ## Debian packages: gearmand, gearadmin, MariaDB, PostgreSQL, Prometheus, Chromium
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/queuetool: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/queuetool

test: deps venv lint  ## lint and types first, then the whole suite against real servers
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check queuetool tests
	$(BIN)/ruff format --check queuetool tests
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix queuetool tests
	$(BIN)/ruff format queuetool tests

demo: deps venv  ## a local gearmand on a SQLite queue under ./demo, a few hundred jobs, a report
	$(BIN)/python tests/demo.py start

demo-stop:
	$(BIN)/python tests/demo.py stop

bench: deps venv  ## speed and memory against bare SQL (set BENCH_ROWS=100000 for a quick run)
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(VENV) demo *.egg-info .pytest_cache .ruff_cache .hypothesis
