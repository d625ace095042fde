# The two commands: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench bench-tools soak clean venv redis-server prometheus ops-lint

venv: $(STAMP)

# The first run takes about two minutes (a fresh venv and every dependency); each
# step says what it does, since pip itself is kept quiet.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	@echo "==> [1/3] creating the virtualenv $(VENV) (first run only: about 2 minutes in all)"
	@$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "==> [3/3] installing the gateway and its dependencies (aiohttp, redis, authlib, ...)"
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "==> ready: $(VENV)"

## make run: start the four stand-ins and the gateway (in-memory limits unless REDIS_URL is set).
## Ctrl-C stops it; from a script send SIGTERM to make (make passes SIGTERM on, and a
## script's background job ignores SIGINT).
run: venv
	$(BIN)/python -m gateway.devrun

## make test: lint, type-check, then the whole suite against a real Redis
test: venv redis-server prometheus lint ops-lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check gateway tests $(wildcard bench)
	$(BIN)/ruff format --check gateway tests $(wildcard bench)
	$(BIN)/mypy gateway

# Tests start a throwaway redis-server on a free port unless REDIS_URL is set; the
# fleet tests (tests/fleet) always start their own cluster and Sentinel processes
# and need redis-cli too. With REDIS_URL set, a failed install only skips those.
redis-server:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
	  echo "redis-server/redis-cli are missing: installing them with apt-get"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server redis-tools) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq redis-server redis-tools) >/dev/null 2>&1 || \
	  if [ -n "$$REDIS_URL" ]; then \
	    echo "WARNING: could not install redis-server; the cluster and Sentinel tests will be skipped"; \
	  else echo "redis-server could not be installed" >&2; exit 1; fi; \
	fi

# promtool and prometheus (Debian's package) for the rule and dashboard tests. The
# package's service is not started (RUNLEVEL=1). If it cannot be installed, the
# tests that need it are skipped, each saying why.
prometheus:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  echo "prometheus/promtool are missing: installing Debian's prometheus package"; \
	  export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus) >/dev/null 2>&1 || \
	  (sudo -E apt-get update -qq && sudo -E apt-get install -y -qq --no-install-recommends prometheus) >/dev/null 2>&1 || \
	  echo "WARNING: could not install prometheus; the tests that need it will be skipped"; \
	fi

# The Dockerfile (hadolint) and the dashboard generator (ruff).
ops-lint: venv
	$(BIN)/hadolint Dockerfile
	$(BIN)/ruff check deploy
	$(BIN)/ruff format --check deploy

# issue 12: the gateway against a bare aiohttp proxy and nginx direct, in front of a fixed
# nginx upstream (bench/speed.py, bench/README.md; about 10 minutes). BENCH_ARGS="--quick"
# for a smoke run, BENCH_ARGS="--soak 300000" to add the RSS soak. Not part of make test.
# The older scripts run on their own: .venv/bin/python bench/limiter.py (tracing.py, ...).
BENCH_ARGS ?=
bench: venv redis-server bench-tools
	$(BIN)/python bench/speed.py $(BENCH_ARGS)

# nginx (the fixed upstream) and wrk (the closed-loop load), Debian's packages; the
# package's nginx service is not started (RUNLEVEL=1). Without them bench/speed.py
# falls back to an asyncio upstream and its own Python load generator, and says so.
bench-tools:
	@if ! command -v wrk >/dev/null || ! { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null; then \
	  echo "nginx/wrk are missing: installing Debian's nginx and wrk packages"; \
	  export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx wrk) >/dev/null 2>&1 || \
	  (sudo -E apt-get update -qq && sudo -E apt-get install -y -qq --no-install-recommends nginx wrk) >/dev/null 2>&1 || \
	  echo "WARNING: could not install nginx/wrk: the benchmark falls back to an asyncio upstream and a Python load generator"; \
	fi

# issue 10: 10 minutes of mixed traffic (SOAK_MINUTES to change); not part of make test
SOAK_MINUTES ?= 10
soak: venv redis-server
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
