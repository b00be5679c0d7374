"""Events a fast test has received, and waits on them (never on sleeps)."""
from __future__ import annotations

import asyncio


class EventRecorder:
    def __init__(self):
        self.events: list[dict] = []
        self.changed = asyncio.Event()

    def record(self, event: dict) -> None:
        self.events.append(event)
        self.changed.set()

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    async def wait_for(self, type_: str, timeout: float = 5.0, **match) -> dict:
        async def find():
            while True:
                for e in self.events:
                    if e["type"] == type_ and all(e.get(k) == v for k, v in match.items()):
                        return e
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(find(), timeout)

    async def wait_until(self, predicate, timeout: float = 5.0) -> None:
        async def poll():
            while not predicate():
                await asyncio.sleep(0.001)
        await asyncio.wait_for(poll(), timeout)

    @staticmethod
    async def drain_listener(listener) -> None:
        """Wait until the listener has consumed every queued frame."""
        while not listener.audio_in.empty():
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
