"""``agent-memory serve`` (and ``python -m gateway``): start the bundled Triton server (unless
told not to) and the gateway, configured by ``MEMORY_*`` settings.

Ctrl-C stops the gateway first, then Triton, so no request is cut off mid-inference.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from gateway.api.header_deadline import protocol
from gateway.api.security import install_request_id_logging
from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import TritonLaunchError, TritonSupervisor, server_from_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def main() -> int:
    """Serve until Ctrl-C; 1 when the bundled Triton cannot be started."""
    logging.basicConfig(level=logging.INFO)
    install_request_id_logging(LOG_FORMAT)
    settings = Settings()
    triton = server_from_settings(settings) if settings.triton_managed else None
    supervisor: TritonSupervisor | None = None
    try:
        if triton is not None:
            print(f"starting Triton (log: {triton.log_file}) ...", file=sys.stderr, flush=True)
            triton.start(settings.triton_start_timeout_s)
            print(f"Triton ready on grpc {triton.grpc_url}", file=sys.stderr, flush=True)
            # a Triton that dies is started again, with backoff; /readyz follows it
            supervisor = TritonSupervisor(
                triton, start_timeout_s=settings.triton_start_timeout_s).start()
        print(
            f"\n  memory gateway: http://{settings.host}:{settings.port}   "
            f"(API docs: http://{settings.host}:{settings.port}/docs)\n",
            file=sys.stderr, flush=True,
        )
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    log_level="info", access_log=False,
                    http=protocol(settings.header_timeout_s))  # slowloris: a header deadline
    except TritonLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if triton is not None:
            print("stopping Triton ...", file=sys.stderr, flush=True)
            triton.stop()
    return 0

