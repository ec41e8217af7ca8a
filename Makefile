# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install, run the end-to-end demo
#   make test   - create .venv if needed, install, run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=/path/to/python3.11 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meterflow demo

test: $(STAMP)
	@scripts/browser.sh
	@mkdir -p .meterflow; status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  echo $$status > .meterflow/pytest-exit; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy meterflow storage services ingest pipelines api dashboards notify fixtures analytics decoders

bench: $(STAMP)
	$(BIN)/meterflow bench decode
	$(BIN)/meterflow bench ingest

clean:
	rm -rf $(VENV) .meterflow .pytest_cache .mypy_cache .ruff_cache
