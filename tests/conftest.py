"""Shared fixtures: one real Triton server for the whole test session, on private ports."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from triton_models.launcher import TritonServer  # noqa: E402

MODELS = [m for m in os.environ.get("TEST_MODELS", "stt,vad,embedder,tts,llm").split(",") if m]
BASE_PORT = int(os.environ.get("TEST_TRITON_PORT", "18100"))


def pytest_configure(config):
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@pytest.fixture(scope="session")
def triton():
    repo = ROOT / "model_repository"
    missing = [m for m in MODELS if not (repo / m / "config.pbtxt").exists()]
    if missing:
        pytest.fail(f"models not exported: {missing}; run `python -m export all` (scripts/setup.sh does)")
    server = TritonServer(repo, http_port=BASE_PORT, grpc_port=BASE_PORT + 1, metrics_port=BASE_PORT + 2,
                          load_models=MODELS)
    server.start(timeout=600)
    yield server
    server.stop()


@pytest.fixture
async def gateway(triton):
    from orchestrator.triton_client import TritonGateway

    gw = TritonGateway(triton.grpc_url)
    yield gw
    await gw.close()


async def triton_counter(server, name: str) -> float:
    """A counter from Triton's metrics port (TritonServer.counter), read off the event loop."""
    import asyncio

    return await asyncio.to_thread(server.counter, name)
