"""LAZY_LOAD: with explicit model control and nothing loaded, the first call loads the model."""
from __future__ import annotations

import numpy as np

from orchestrator.triton_client import TritonGateway
from triton_models.launcher import TritonServer
from tests.audio_fixtures import korean_clip, to_pcm16


async def test_first_use_loads_the_model():
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent / "model_repository"
    with TritonServer(repo, http_port=18400, grpc_port=18401, metrics_port=18402, load_models=[]) as server:
        gateway = TritonGateway(server.grpc_url, lazy_load=True)
        try:
            assert (await gateway.model_status(["stt"]))["stt"]["ready"] is False
            audio, _ = korean_clip()
            result = await gateway.transcribe("stt", to_pcm16(audio[: 16000 * 3]))
            assert result.text and result.model_version == "1"
            assert (await gateway.model_status(["stt"]))["stt"]["ready"] is True
            silent = await gateway.transcribe("stt", np.zeros(16000, np.int16))  # already loaded: no reload
            assert silent.text == ""
        finally:
            await gateway.close()
