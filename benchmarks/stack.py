"""Run the real orchestrator app (uvicorn) in a background thread against a given Triton (tests, benchmarks)."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

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
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port,
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
