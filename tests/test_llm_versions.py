"""LLM versions that roll back: `export llm --gguf PATH --new-version` with other weights, load it,
remove it, load again → version 1 serves (its weights are named in its own version folder). LLM
requests run the whole time and none fails, and no model process is left behind."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.triton_client import TritonGateway
from tests.test_shutdown import processes
from triton_models.launcher import TritonServer

ROOT = Path(__file__).resolve().parent.parent


def llm_stubs(repo: Path) -> list[str]:
    """Command lines of this repository's live llm stub processes."""
    return [cmd for _ppid, cmd in processes().values()
            if "triton_python_backend_stub" in cmd and f"{repo}/llm/" in cmd]


async def settle(repo: Path, timeout: float = 90) -> list[str]:
    """Wait (bounded) until exactly one llm stub is alive: the old version's process has exited."""
    deadline = time.monotonic() + timeout
    while len(stubs := llm_stubs(repo)) != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return stubs


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("llm-versions")
    shutil.copytree(ROOT / "model_repository" / "llm", repo / "llm", copy_function=os.link)
    for extra in repo.glob("llm/[2-9]*"):  # start from version 1 only
        shutil.rmtree(extra)
    with TritonServer(repo, http_port=18300, grpc_port=18301, metrics_port=18302, load_models=["llm"]) as server:
        yield repo, server


async def test_new_gguf_version_then_rollback_without_failed_requests(llm_server):
    from benchmarks.answers import gguf

    repo, server = llm_server
    gateway = TritonGateway(server.grpc_url, timeout_s=120)
    seen, failures, running = [], [], True

    async def traffic():
        while running:
            try:
                text = ""
                async for item in gateway.llm_stream("llm", [{"role": "user", "content": "안녕하세요"}],
                                                     {"max_tokens": 8, "temperature": 0.0}):
                    if item.final:
                        break
                    text += item.data.reshape(-1)[0].decode()
                seen.append(item.model_version)
                assert text, "empty reply"
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                failures.append(repr(exc))

    async def wait_for_version(version: str) -> None:
        count = len(seen)
        while not (len(seen) > count and seen[-1] == version):
            await asyncio.sleep(0.2)

    task = asyncio.create_task(traffic())
    try:
        await asyncio.wait_for(wait_for_version("1"), 120)
        other = gguf("gemma3-270m")  # other weights in a plain local GGUF file
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "export", "llm", "--gguf", str(other),
                                                       "--new-version", "--repo", str(repo)],
                                      capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (repo / "llm" / "2" / other.name).exists() and (repo / "llm" / "2" / "params.json").exists()
        assert await gateway.load_model("llm") == "2"
        await asyncio.wait_for(wait_for_version("2"), 120)
        assert len(await settle(repo)) == 1, llm_stubs(repo)
        shutil.rmtree(repo / "llm" / "2")  # roll back: the config.pbtxt still names version 2's weights
        assert await gateway.load_model("llm") == "1"
        await asyncio.wait_for(wait_for_version("1"), 120)
        stubs = await settle(repo)
        assert len(stubs) == 1 and f"{repo}/llm/1/" in stubs[0], stubs
    finally:
        running = False
        await asyncio.wait_for(task, 120)
        await gateway.close()
    assert not failures, failures
    assert seen.count("2") >= 1 and seen[-1] == "1"
