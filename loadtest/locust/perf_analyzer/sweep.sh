#!/usr/bin/env bash
# perf_analyzer concurrency sweep against the docker/ compose stack (see README.md beside this).
#   loadtest/locust/perf_analyzer/sweep.sh [model] [concurrency-range]
# Needs docker and the NGC SDK image; run from the repository root after `docker compose up`.
set -euo pipefail
MODEL="${1:-embedder}"
RANGE="${2:-1:32:2}"
SDK="${SDK_IMAGE:-nvcr.io/nvidia/tritonserver:24.10-py3-sdk}"
NETWORK="${COMPOSE_NETWORK:-agent-memory_default}"
HERE="$(cd "$(dirname "$0")" && pwd)"

python -m loadtest.locust.perf_analyzer.inputs --repository "${REPOSITORY:-docker/model_repository}"
docker run --rm --network "$NETWORK" -v "$HERE:/pa" "$SDK" \
    perf_analyzer -m "$MODEL" -u triton:8001 -i grpc \
    --input-data "/pa/data/${MODEL}_inputs.json" \
    --concurrency-range "$RANGE" --percentile=99 \
    --measurement-interval 5000 --stability-percentage 10 \
    -f "/pa/data/${MODEL}_concurrency.csv"
echo "CSV: $HERE/data/${MODEL}_concurrency.csv"
