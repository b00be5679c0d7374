"""`python -m orchestrator` stopped the way systemd, docker and Ctrl-C stop it: Triton and every model
process exit with it and no port stays bound."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.stack import free_port

ROOT = Path(__file__).resolve().parent.parent


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process."""
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out[int(proc.name)] = (ppid, cmd)
    return out


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_triton_and_every_model_process(sig, tmp_path):
    app_port, base = free_port(), 18600 + 10 * (sig == signal.SIGINT)
    env = {**os.environ, "PORT": str(app_port), "TRITON_URL": f"127.0.0.1:{base + 1}",
           "TRITON_HTTP_PORT": str(base), "TRITON_METRICS_PORT": str(base + 2),
           "STT_ENABLED": "false", "LLM_ENABLED": "false", "TTS_ENABLED": "false",  # vad + embedder: fast start
           "DATABASE_URL": "mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_test",
           "MILVUS_URI": str(tmp_path / "milvus.db"), "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the orchestrator died while starting"
            try:
                if httpx.get(f"http://127.0.0.1:{app_port}/api/health/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the orchestrator did not become healthy"
            time.sleep(1)
        table = processes()
        triton = [pid for pid, (ppid, cmd) in table.items() if ppid == proc.pid and "tritonserver" in cmd]
        assert len(triton) == 1, "the orchestrator started no tritonserver"
        stubs = [pid for pid, (ppid, cmd) in table.items() if ppid == triton[0] and "backend_stub" in cmd]
        assert stubs, "no model process found"
        proc.send_signal(sig)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (0, 128 + sig, -sig), code
    deadline = time.monotonic() + 10
    while (left := set(triton + stubs) & set(processes())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left behind: {[processes()[p][1][:80] for p in left]}"
    assert all(port_free(p) for p in (app_port, base, base + 1, base + 2))
