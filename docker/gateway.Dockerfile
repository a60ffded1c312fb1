# The memory gateway: FastAPI + the Triton gRPC client. No model, no Triton server inside.
# Build from the repository root:  docker build -f docker/gateway.Dockerfile -t agent-memory-gateway .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY export ./export
COPY loadtest ./loadtest
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app memory \
    && mkdir -p /app/data \
    && chown memory /app/data
COPY --from=build /install /usr/local
WORKDIR /app
USER 10001
ENV MEMORY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    MEMORY_DATA_DIR=/app/data \
    MEMORY_TRITON_MANAGED=false \
    PYTHONUNBUFFERED=1
EXPOSE 8080
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "gateway"]
