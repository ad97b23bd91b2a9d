# Two commands a newcomer needs: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2

.PHONY: run test lint format bench bench-quick clean-instance system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]" --config-settings editable_mode=compat
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/lifeline db upgrade
	$(BIN)/lifeline demo-data
	$(BIN)/lifeline start

# Browser tests drive Debian's Chromium and PDF tests read text with poppler; install them when we can (root with
# apt-get), otherwise those tests skip and say why.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and poppler-utils for the browser and PDF tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null) \
	      || echo "could not install chromium/poppler-utils: browser and PDF tests will skip"; \
	  else echo "chromium or pdftotext missing: browser and PDF tests will skip"; fi; \
	fi

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean-instance:
	rm -rf instance

# The long load run (docs/OPERATIONS.md): 10,000 people at 100 calls/s on two workers while webhooks arrive at
# 1,000/s for 60 s, all on loopback. Needs PostgreSQL and Redis (the CI's, by default); sizes: LIFELINE_SOAK_PEOPLE,
# LIFELINE_SOAK_CALLS_PER_SECOND, LIFELINE_SOAK_BURST_RATE, LIFELINE_SOAK_BURST_SECONDS.
.PHONY: soak
soak: $(STAMP)
	LIFELINE_TEST_DATABASE_URL="$${LIFELINE_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/lifeline_test}" \
	LIFELINE_TEST_REDIS_URL="$${LIFELINE_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}" \
	$(BIN)/python -m pytest tests/chaos/test_soak.py -m soak -p no:xdist -s
