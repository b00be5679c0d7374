"""Example voice client (also used by the tests and the latency benchmark).

    python -m orchestrator.client --url ws://127.0.0.1:8080 --wav question.wav --user demo --out reply.wav

Streams a 16 kHz mono WAV in real time (20 ms frames), then silence so the server's VAD ends the
turn; prints the events and writes the reply audio. Every event gets a local monotonic receive time.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import websockets

from orchestrator.protocol import unpack_audio

FRAME_MS = 20


@dataclass
class Received:
    events: list[dict] = field(default_factory=list)
    audio: dict[int, list[tuple[float, int, bytes]]] = field(default_factory=dict)  # turn -> (t, seq, pcm)
    sample_rate: dict[int, int] = field(default_factory=dict)


class VoiceClient:
    def __init__(self, url: str, session_id: str, api_key: str | None = None):
        self.url = f"{url.rstrip('/')}/ws/voice/{session_id}"
        self.session_id, self.api_key = session_id, api_key
        self.rx = Received()
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> "VoiceClient":
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        self.ws = await websockets.connect(self.url, max_size=8 * 1024 * 1024, additional_headers=headers)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for message in self.ws:
            t = time.monotonic()
            if isinstance(message, bytes):
                turn, seq, rate, pcm = unpack_audio(message)
                self.rx.audio.setdefault(turn, []).append((t, seq, pcm))
                self.rx.sample_rate[turn] = rate
            else:
                event = json.loads(message)
                event["_t"] = t
                self.rx.events.append(event)
            async with self._changed:
                self._changed.notify_all()

    async def send_json(self, event: dict) -> None:
        await self.ws.send(json.dumps(event, ensure_ascii=False))

    async def start(self, user_id: str | None, voice_reference: np.ndarray | None = None, **extra) -> dict:
        event = {"type": "session.start", "user_id": user_id, **extra}
        if voice_reference is not None:
            event["voice_reference"] = base64.b64encode(voice_reference.astype(np.int16).tobytes()).decode()
        await self.send_json(event)
        return await self.wait_for("session.started")

    async def stream(self, pcm: np.ndarray, realtime: bool = True, trailing_silence_s: float = 1.2) -> float:
        """Send audio in 20 ms frames, paced in real time; returns the monotonic time the speech ended."""
        samples = 16000 * FRAME_MS // 1000
        pcm = pcm.astype(np.int16)
        t0 = time.monotonic()
        speech_end = t0
        audio = np.concatenate([pcm, np.zeros(int(trailing_silence_s * 16000), np.int16)])
        for i, start in enumerate(range(0, len(audio), samples)):
            await self.ws.send(audio[start:start + samples].tobytes())
            if start + samples >= len(pcm) and speech_end == t0:
                speech_end = time.monotonic()
            if realtime:
                await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME_MS / 1000 - time.monotonic()))
        return speech_end

    def find(self, type_: str, **match) -> dict | None:
        for event in self.rx.events:
            if event["type"] == type_ and all(event.get(k) == v for k, v in match.items()):
                return event
        return None

    async def wait_for(self, type_: str, timeout: float = 60.0, **match) -> dict:
        async def found():
            async with self._changed:
                while (event := self.find(type_, **match)) is None:
                    await self._changed.wait()
                return event
        return await asyncio.wait_for(found(), timeout)

    def reply_audio(self, turn_id: int) -> np.ndarray:
        frames = sorted(self.rx.audio.get(turn_id, []), key=lambda f: f[1])
        return np.frombuffer(b"".join(f[2] for f in frames), dtype=np.int16)


async def _main(args) -> None:
    import soundfile as sf

    audio, rate = sf.read(args.wav, dtype="int16")
    if rate != 16000 or audio.ndim != 1:
        raise SystemExit("the WAV must be 16 kHz mono")
    async with VoiceClient(args.url, args.session, args.api_key) as client:
        print(await client.start(args.user))
        await client.stream(audio)
        done = await client.wait_for("response.done", timeout=120)
        for event in client.rx.events:
            print({k: v for k, v in event.items() if k != "_t"})
        if args.out and (reply := client.reply_audio(done["turn_id"])).size:
            sf.write(args.out, reply, client.rx.sample_rate[done["turn_id"]])
            print(f"reply audio -> {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8080")
    parser.add_argument("--wav", required=True)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--session", default=f"demo-{uuid.uuid4().hex}")  # unguessable
    parser.add_argument("--api-key", default=os.environ.get("VOICE_API_KEY"))
    parser.add_argument("--out", default="reply.wav")
    asyncio.run(_main(parser.parse_args()))
