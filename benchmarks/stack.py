"""Run the real orchestrator app (uvicorn) in a background thread against a given Triton (tests, benchmarks)."""
from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from orchestrator.app import create_app
from orchestrator.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def reset_database(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    parsed = make_url(url)
    engine = create_async_engine(parsed.set(database=""))
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    await engine.dispose()


class AppServer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=settings.port,
                                                    log_level="warning", ws_max_size=settings.ws_max_bytes))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}"

    def __enter__(self) -> "AppServer":
        asyncio.run(reset_database(self.settings.database_url))
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("orchestrator app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def make_settings(triton, tmp_path, **overrides) -> Settings:
    defaults = {"database_url": "mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_test",
                "milvus_uri": str(tmp_path / "milvus" / "turns.db")}
    return Settings(_env_file=None, triton_url=triton.grpc_url, start_triton=False, port=free_port(),
                    **{**defaults, **overrides})


async def stored_turns(database_url: str, milvus_uri: str, collection: str = "turns") -> tuple[list, set[int]]:
    """(turn rows in MariaDB by session and index, ids of the turns that have vectors in Milvus): for
    checks that every turn is accounted for and nothing is half-stored. Uses its own connections (the
    app's belong to the app's event loop or process)."""
    from sqlalchemy import select

    from orchestrator.storage.db import Database, Turn
    from orchestrator.storage.vectors import VectorMemory

    db = Database(database_url)
    try:
        async with db.sessionmaker() as s:
            rows = list(await s.scalars(select(Turn).order_by(Turn.session_id, Turn.turn_index)))
    finally:
        await db.close()
    memory = await asyncio.to_thread(VectorMemory, milvus_uri, collection)
    try:
        return rows, await memory.turn_ids()
    finally:
        memory.close()


class MilvusProcess:
    """Milvus Lite as its own server process (`python -m milvus_lite server`), the way a deployment runs
    Milvus: other processes can read it, and it can be killed and started again on the same data."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port, self.proc = data_dir, free_port(), None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MilvusProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("milvus lite server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
