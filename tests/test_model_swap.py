"""Swapping a model through the repository while a session talks: zero failed turns, and the next
turn is served (and recorded) by the new version."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from orchestrator.client import VoiceClient
from benchmarks.stack import AppServer, make_settings
from tests.audio_fixtures import spoken_turns, to_pcm16
from triton_models.launcher import TritonServer

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["vad", "stt", "embedder", "llm", "tts"]


def linked_repository(dest: Path) -> Path:
    """A private copy of the model repository made of hard links (no GBs copied)."""
    for model in MODELS:
        shutil.copytree(ROOT / "model_repository" / model, dest / model, copy_function=os.link)
    return dest


@pytest.fixture(scope="module")
def swap_stack(tmp_path_factory):
    repo = linked_repository(tmp_path_factory.mktemp("swap-repo"))
    with TritonServer(repo, http_port=18200, grpc_port=18201, metrics_port=18202, load_models=MODELS) as triton:
        settings = make_settings(triton, tmp_path_factory.mktemp("swap-app"), llm_max_tokens=40,
                                 database_url="mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_swap")
        with AppServer(settings) as app:
            yield repo, app


async def test_swap_tts_version_mid_session(swap_stack):
    repo, app = swap_stack
    session_id = f"swap-{uuid.uuid4().hex[:8]}"
    first, second = spoken_turns(2)
    async with VoiceClient(app.ws, session_id) as client:
        await client.start("user-swap")
        await client.stream(to_pcm16(first))
        final1 = await client.wait_for("transcript.final", timeout=30)
        await client.wait_for("response.audio.started", timeout=120, turn_id=final1["turn_id"])
        # while turn 1 is being spoken: export version 2 and make Triton load it
        # in a thread: the client's loop keeps answering the server's pings (the export took long enough on
        # a slow VM for the server to close a socket whose client did not answer them)
        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "export", "tts", "--new-version", "--repo", str(repo),
                             "--load-into", app.http], capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "version 2" in out.stdout
        done1 = await client.wait_for("response.done", timeout=120, turn_id=final1["turn_id"])
        assert done1["status"] == "completed" and done1["model_versions"]["tts"] in ("1", "2")
        await client.stream(to_pcm16(second))
        final2 = await client.wait_for("transcript.final", timeout=60, turn_id=final1["turn_id"] + 1)
        done2 = await client.wait_for("response.done", timeout=120, turn_id=final2["turn_id"])
        assert done2["status"] == "completed" and done2["model_versions"]["tts"] == "2"
        assert client.find("error") is None, client.find("error")
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient() as http:
        rows = (await http.get(f"{app.http}/api/sessions/{session_id}/turns")).json()
        health = (await http.get(f"{app.http}/api/health/")).json()
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert rows[-1]["model_versions"]["tts"] == "2"
    assert health["models"]["tts"]["version"] == "2"
