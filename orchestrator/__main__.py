"""`python -m orchestrator`: start the lite Triton on the model repository, then serve the app.

With START_TRITON=false it only serves the app and talks to TRITON_URL (the compose setup).
"""
from __future__ import annotations

import logging
import signal

import uvicorn

from orchestrator.app import create_app, enabled_models
from orchestrator.settings import get_settings


def _exit_on_sigterm(signum, _frame) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler that was
    # installed before it: with the default one the process would die before `finally` stops Triton
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = None
    try:
        if settings.start_triton:
            from triton_models.launcher import TritonServer

            grpc_port = int(settings.triton_url.rsplit(":", 1)[1])
            server = TritonServer(settings.model_repository, http_port=settings.triton_http_port,
                                  grpc_port=grpc_port, metrics_port=settings.triton_metrics_port,
                                  load_models=[] if settings.lazy_load else enabled_models(settings))
            server.start(timeout=600)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                    ws_max_size=settings.ws_max_bytes)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
