"""One script for every real client of /v1/realtime: a spoken turn, a barge-in, a cancel.

A `Driver` wraps a client library (the openai SDK's GA or beta connection, the openai-agents
runner): it sends PCM16 24 kHz and a cancel, and records the server's events as plain dicts.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np
from scipy.signal import resample_poly

from benchmarks.corpus import HUMAN_DEV, human_clips, synth_clip, trim_to_speech, voiced_frames
from tests.fakes.recorder import EventRecorder

CHUNK_S = 0.04


def speech_24k(n: int) -> tuple[list[bytes], str]:
    """n utterances as PCM16 24 kHz: real people (ko_speech_dev) when present, else our TTS."""
    if (HUMAN_DEV / "transcripts.tsv").exists():
        clips = sorted(human_clips(), key=lambda c: len(c[0]))[:n]
        audio, material = [trim_to_speech(a) for a, _t, _n in clips], "human speech (ko_speech_dev)"
    else:
        texts = ["오늘 날씨가 정말 좋네요.", "주말에 뭐 하면 좋을까요?", "잠깐만요, 다른 질문이 있어요."]
        audio, material = [synth_clip(t) for t in texts[:n]], "TTS speech (ko_speech_dev missing)"
    pcm = [(np.clip(resample_poly(a, 3, 2), -1, 1) * 32767).astype(np.int16).tobytes() for a in audio]
    return pcm, material


def without_lead_in(pcm: bytes, keep_ms: int = 60) -> bytes:
    """PCM16 24 kHz from its first 20 ms frame above 1/30 of the loudest (less keep_ms): a recording's
    quiet lead-in (~0.9 s in some ko_speech_dev clips) would delay a barge-in by as much."""
    frame = 480
    voiced = voiced_frames(np.frombuffer(pcm, np.int16), frame)
    start = max(0, voiced[0] * frame - keep_ms * 24) if len(voiced) else 0
    return pcm[start * 2:]


class Driver(EventRecorder):
    audio_delta = "response.output_audio.delta"

    async def append(self, pcm: bytes) -> None:
        raise NotImplementedError

    async def cancel(self) -> None:
        raise NotImplementedError

    async def say(self, pcm: bytes, silence_s: float = 1.2, until=None) -> None:
        """Stream at real time (40 ms chunks), then silence so server VAD ends the turn; the silence
        stops early once `until()` is true (the server has answered: the user may speak again)."""
        step, start, speech = int(24000 * CHUNK_S) * 2, time.monotonic(), len(pcm)
        pcm = pcm + b"\x00\x00" * int(24000 * silence_s)
        for i, offset in enumerate(range(0, len(pcm), step)):
            if offset >= speech and until is not None and until():
                return
            await self.append(pcm[offset:offset + step])
            await asyncio.sleep(max(0.0, start + (i + 1) * CHUNK_S - time.monotonic()))

    def responses(self, status: str | None = None) -> list[dict]:
        return [e["response"] for e in self.of("response.done") if status in (None, e["response"]["status"])]

    async def nth(self, type_: str, n: int, timeout: float = 120) -> dict:
        await self.wait_until(lambda: len(self.of(type_)) >= n, timeout)
        return self.of(type_)[n - 1]

    def audio_of(self, response_id: str) -> int:
        return sum(len(e["delta"]) * 3 // 4 for e in self.of(self.audio_delta) if e["response_id"] == response_id)


async def turn_barge_in_cancel(driver: Driver, speech: list[bytes]) -> dict:
    """1) a spoken turn answered in full; 2) the user speaks over the next answer while it is under way
    (barge-in); 3) the answer to that is cancelled by the client. Returns what was observed."""
    await driver.say(speech[0])
    first = await driver.nth("response.done", 1)
    assert first["response"]["status"] == "completed", first
    transcripts = [e["transcript"] for e in driver.of("conversation.item.input_audio_transcription.completed")]
    assert transcripts and transcripts[0].strip(), transcripts
    reply = first["response"]["output"][0]["content"][0]["transcript"]
    assert reply.strip() and driver.audio_of(first["response"]["id"]) > 24000 * 2 * 0.5
    # barge-in: the user speaks again, at once, as soon as the second answer is under way. Waiting for
    # its audio, or a clip's quiet lead-in, raced a fast machine, which sent a one-sentence answer whole
    # ~1.1 s after it was created, before the barge-in counted (250 ms of speech).
    await driver.say(speech[1], until=lambda: len(driver.of("response.created")) >= 2)
    await driver.nth("response.created", 2)
    await driver.say(without_lead_in(speech[2]))
    second = (await driver.nth("response.done", 2))["response"]
    assert second["status"] == "cancelled" and second["status_details"]["reason"] == "turn_detected", second
    third_created = await driver.nth("response.created", 3)
    third_id = third_created["response"]["id"]
    await driver.wait_until(lambda: driver.audio_of(third_id) > 0, 120)
    await driver.cancel()
    third = (await driver.nth("response.done", 3, timeout=30))["response"]
    assert third["id"] == third_id and third["status"] == "cancelled", third
    assert third["status_details"]["reason"] == "client_cancelled"
    return {"transcript": transcripts[0], "reply": reply, "reply_audio_s": driver.audio_of(first["response"]["id"])
            / 48000}
