"""The playback lead: a reply's TTS is critical-path work while its listener is about to run out of
audio (orchestrator/stages/respond.py sends the lead, triton_models/tts.py decides per chunk)."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from orchestrator.metrics import TurnClock
from orchestrator.stages.respond import ResponseResult, respond
from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine
from tests.fakes.gateway import FakeGateway
from triton_models import tts as tts_module
from triton_models.tts import TtsService


class Clock:
    t = 0.0

    def monotonic(self) -> float:
        return self.t


class ScriptedEngine(TtsEngine):
    """Chunks of `chunk_s` audio, each taking `decode_s` of the fake clock to make."""
    sample_rate = 24000

    def __init__(self, clock: Clock, chunks: int, chunk_s: float, decode_s: float):
        self.clock, self.chunks, self.chunk_s, self.decode_s = clock, chunks, chunk_s, decode_s
        self.aheads: list[float] = []

    def check_voice(self, voice: str) -> None:
        pass

    def stream(self, sentence, voice, speed, windowed_first=False, ahead_s=0.0):
        self.aheads.append(ahead_s)
        for i in range(self.chunks):
            self.clock.t += self.decode_s
            yield SynthChunk(np.zeros(int(self.chunk_s * self.sample_rate), np.float32), sentence,
                             last=i == self.chunks - 1)


class Recorder:
    """Which chunks ran as critical-path work ("C") and which yielded first ("B")."""

    def __init__(self):
        self.steps: list[str] = []
        self.orders: list[float | None] = []  # the turn order each critical chunk was marked with

    @contextmanager
    def critical(self, what: str, order: float | None = None):
        self.steps.append("C")
        self.orders.append(order)
        yield

    def yield_to_critical(self) -> float:
        self.steps.append("B")
        return 0.0

    def yield_to_earlier(self, order: float | None) -> float:
        return 0.0

    def yield_to_first_audio(self) -> float:
        return 0.0


def service(monkeypatch, chunks=4, chunk_s=0.65, decode_s=0.2) -> TtsService:
    clock = Clock()
    monkeypatch.setattr(tts_module, "time", clock)
    svc = TtsService.__new__(TtsService)  # no model load: the engine is scripted
    svc.engine, svc.priority = ScriptedEngine(clock, chunks, chunk_s, decode_s), Recorder()
    return svc


@pytest.mark.parametrize("options, expected", [
    # a reply's first sentence: its first chunk, then chunks until 1 s of audio is ahead of playback
    ({"first": True, "lead_min_s": 1.0}, "CCBB"),
    ({"first": True}, "CBBB"),                          # no lead asked for: only the first chunk
    ({"lead_s": 0.3, "lead_min_s": 1.0}, "CCBB"),       # a later sentence, its listener nearly dry
    ({"lead_s": 5.0, "lead_min_s": 1.0}, "BBBB"),       # plenty still to play: background work
])
def test_chunks_are_critical_while_the_listener_is_about_to_run_dry(monkeypatch, options, expected):
    svc = service(monkeypatch)
    chunks = list(svc.chunks("안녕하세요.", {"sample_rate": 24000, **options}))
    assert len(chunks) == 4
    assert "".join(svc.priority.steps[:4]) == expected


@pytest.mark.parametrize("options, expected", [
    ({"first": True}, "CBBB"),   # no lead asked for: only the first chunk, however slow the decode
    ({}, "BBBB"),                # not a reply's start, no lead asked for: all background
    ({"first": True, "lead_min_s": 1.0}, "CCCC"),  # a lead asked for: critical while it is short
])
def test_without_a_lead_asked_for_a_slow_decode_stays_background(monkeypatch, options, expected):
    """Slower than real time (a loaded CPU): the listener is always behind. Without `lead_min_s` that
    must not make every chunk critical work (it would stop other streams' decodes and voice fits)."""
    svc = service(monkeypatch, decode_s=2.0)
    chunks = list(svc.chunks("안녕하세요.", {"sample_rate": 24000, **options}))
    assert len(chunks) == 4
    assert "".join(svc.priority.steps[:4]) == expected


def test_only_a_replys_first_chunk_takes_its_turns_place_in_line(monkeypatch):
    """A reply's first chunk is first-audio work, ranked by its turn's order against other
    conversations' turns; the chunks after it, critical while the listener runs dry, rank nobody (a
    later turn's first audio must not wait for this reply's lead)."""
    svc = service(monkeypatch, decode_s=2.0)
    list(svc.chunks("안녕하세요.", {"sample_rate": 24000, "first": True, "lead_min_s": 1.0, "order": 1234.5}))
    first, *later = svc.priority.orders
    assert first == 1234.5 and len(later) >= 3 and set(later) == {None}


@pytest.mark.parametrize("options, expected", [
    ({"first": True}, [0.0, 4 * 0.65 - 3 * 0.2]),         # a reply's start: nothing ahead; playback
                                                          # starts with its first chunk
    ({"lead_s": 2.0}, [2.0, 2.0 + 4 * 0.65 - 4 * 0.2]),   # a later sentence: the lead, then what it made
    ({"lead_s": 0.5}, [0.5, 0.5 + 4 * 0.65 - 4 * 0.2]),
])
def test_the_engine_is_told_the_audio_still_ahead_of_each_sentence(monkeypatch, options, expected):
    """With enough audio ahead, the engine speaks a sentence in one call (kokoro.py: phrases only
    when the listener would otherwise wait)."""
    svc = service(monkeypatch)
    list(svc.chunks("안녕하세요. 반가워요.", {"sample_rate": 24000, **options}))
    assert svc.engine.aheads == pytest.approx(expected)


async def test_each_later_sentence_carries_the_audio_still_ahead_of_playback():
    gateway = FakeGateway(reply=["네, ", "반가워요. ", "좋은 하루예요."])  # 0.1 s of audio per sentence

    async def ignore(*_):
        pass

    await respond(gateway, llm_model="llm", tts_model="tts", messages=[], llm_options={},
                  tts_options={"lead_min_s": 1.0}, clock=TurnClock(speech_end=0.0), request_id="r",
                  on_text=ignore, on_audio=ignore, result=ResponseResult())
    first, *later = gateway.tts_options
    assert first["first"] and "lead_s" not in first and first["lead_min_s"] == 1.0
    assert [o["first"] for o in later] == [False] * len(later) and later
    for sentences_before, o in enumerate(later, start=1):
        assert 0.0 <= o["lead_s"] <= 0.1 * sentences_before
