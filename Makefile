# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test export bench bench-ann lint install clean help

help:
	@echo "make run     - install, export models, start Triton + gateway on http://127.0.0.1:$${GATEWAY_PORT:-8080}"
	@echo "make test    - install and run the whole test suite (real Triton server, real SQLite)"
	@echo "make export  - export/validate the embedder into model_repository/ (idempotent)"
	@echo "make bench   - embedding, ingest and search benchmarks -> loadtest/results/*.json"
	@echo "make bench-ann - vector search per backend (exact/HNSW/CAGRA) -> JSON + PNG plot"
	@echo "make lint    - ruff and mypy"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[triton,export,dev]'
	@touch $(STAMP)

install: $(STAMP)

export: install
	$(PY) -m export embedder

run: export
	$(PY) -m gateway

test: export
	$(PY) -m pytest

bench: export
	$(PY) -m loadtest.bench

bench-ann: export
	$(PY) -m loadtest.bench_ann

lint: install
	$(PY) -m ruff check gateway export loadtest tests
	$(PY) -m mypy gateway

clean:
	rm -rf $(VENV) data logs model_repository/*/[0-9]*
