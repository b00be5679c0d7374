"""A real TCP forwarder between the app and a server, for fault tests: `stop()` cuts every connection
and refuses new ones (the server is unreachable), `start()` lets them through again."""
from __future__ import annotations

import asyncio
import threading

from benchmarks.stack import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def start(self) -> "TcpProxy":
        async def start():
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self._run(start())
        return self

    def stop(self) -> None:
        async def stop():
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()
            await self.server.wait_closed()
        self._run(stop())

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
