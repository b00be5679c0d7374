"""The phrase cache (triton_models/phrase_cache.py): the reply fallbacks' audio, made in the
background for the session's voice, serves a fallback at once. Fast unit layer; the same through the
real Triton `tts` model in test_tts_triton.py."""
from __future__ import annotations

import asyncio

import numpy as np

from orchestrator.metrics import TurnClock
from orchestrator.settings import DEFAULT_SYSTEM_PROMPT, Settings
from orchestrator.stages.prompting import reply_guard
from orchestrator.stages.respond import ResponseResult, fallback_phrases, fallback_sentences, respond
from tests.fakes.gateway import FakeGateway
from tests.test_playback_lead_unit import service
from tests.test_session_unit import Harness
from triton_models.phrase_cache import PhraseCache


def test_the_cache_keeps_the_most_recent_phrases_and_forgets_a_re_enrolled_voice():
    cache = PhraseCache(max_phrases=2)
    a, b, c = (PhraseCache.key(v, None, "네.") for v in ("a", "b", "c"))
    for key in (a, b):
        cache.put(key, [np.ones(3, np.float32)])
    assert cache.get(a) is not None  # a used last: b goes first
    cache.put(c, [np.ones(3, np.float32)])
    assert b not in cache and a in cache and c in cache
    cache.put(PhraseCache.key("a", None, "아니요."), [np.ones(3, np.float32)])
    cache.forget("a")
    assert len(cache) == 1 and c in cache
    cache.put(PhraseCache.key("a", 1.2, "네."), [])  # nothing made (a cancelled request): nothing kept
    assert PhraseCache.key("a", 1.2, "네.") not in cache
    # a phrase begun in a voice that an enrolment then replaced is not kept
    begun = cache.generation("c")
    cache.forget("c")
    cache.put(PhraseCache.key("c", None, "네."), [np.ones(3, np.float32)], begun)
    assert PhraseCache.key("c", None, "네.") not in cache
    cache.put(PhraseCache.key("c", None, "네."), [np.ones(3, np.float32)], cache.generation("c"))
    assert PhraseCache.key("c", None, "네.") in cache


def test_a_prepared_phrase_is_made_as_background_work_and_then_served_without_the_engine(monkeypatch):
    svc = service(monkeypatch)
    svc.phrases, served = PhraseCache(), []
    svc.on_cached_phrase = lambda: served.append(1)
    assert list(svc.chunks("잘 들었어요.", {"prepare": True, "first": True})) == []  # nothing streamed
    assert set(svc.priority.steps) == {"B"}  # every chunk yielded to critical work first
    runs = len(svc.priority.steps)
    made = list(svc.chunks("잘 들었어요.", {"cache": True, "first": True, "sample_rate": 16000}))
    assert len(made) == 4 and all(info["cached"] and info["sample_rate"] == 16000 for _, info in made)
    assert [info["last_in_sentence"] for _, info in made] == [False, False, False, True]
    assert len(svc.priority.steps) == runs and served == [1]  # the engine did not run again
    # another voice, another speed, or a request that does not ask for the cache: made anew
    for options in ({"cache": True, "voice": "user_2"}, {"cache": True, "speed": 1.1}, {}):
        steps = len(svc.priority.steps)
        assert not any(info.get("cached") for _, info in svc.chunks("잘 들었어요.", options))
        assert len(svc.priority.steps) == steps + runs
    svc.engine.enroll = lambda voice_id, reference, sr, pause=None: {"voice": voice_id}
    monkeypatch.setattr(svc.engine.clock, "perf_counter", lambda: 0.0, raising=False)  # the fake clock
    svc.enroll("default", np.zeros(16000, np.int16), 16000)  # the voice's id now names another voice
    assert not any(info.get("cached") for _, info in svc.chunks("잘 들었어요.", {"cache": True}))
    # an enrolment that lands while a phrase is being made: that phrase (partly the old voice) is not kept
    scripted = svc.engine.stream

    def enrolled_midway(*args, **kwargs):
        for i, chunk in enumerate(scripted(*args, **kwargs)):
            if i == 1:
                svc.enroll("user_1", np.zeros(16000, np.int16), 16000)
            yield chunk

    monkeypatch.setattr(svc.engine, "stream", enrolled_midway)
    list(svc.chunks("네, 알겠어요.", {"prepare": True, "voice": "user_1"}))
    assert PhraseCache.key("user_1", None, "네, 알겠어요.") not in svc.phrases


def test_a_phrase_another_preparation_is_making_is_made_once(monkeypatch):
    """The server's warm-up and a session (or two sessions) preparing one voice's fallbacks at once."""
    svc = service(monkeypatch)
    svc.phrases = PhraseCache()
    scripted, made, beside = svc.engine.stream, [], []

    def counted(sentence, *args, **kwargs):
        made.append(sentence)
        for i, chunk in enumerate(scripted(sentence, *args, **kwargs)):
            if i == 1 and len(made) == 1:  # midway through the first phrase, another preparation runs
                beside.append(list(svc.chunks("잘 들었어요. 더 말해 주세요.", {"prepare": True})))
            yield chunk

    monkeypatch.setattr(svc.engine, "stream", counted)
    assert list(svc.chunks("잘 들었어요. 더 말해 주세요.", {"prepare": True})) == [] and beside == [[]]
    assert made == ["잘 들었어요.", "더 말해 주세요."]  # each once: the other one skipped the one being made
    assert all(PhraseCache.key("default", None, s) in svc.phrases for s in made)
    # a preparation cancelled midway leaves its phrase neither kept nor claimed
    made.clear()
    cancelled = svc.chunks("이제 그만 말할게요.", {"prepare": True, "cache": True})
    monkeypatch.setattr(svc.engine, "stream", lambda *a, **k: (_ for _ in ()).throw(asyncio.CancelledError()))
    try:
        list(cancelled)
    except asyncio.CancelledError:
        pass
    assert PhraseCache.key("default", None, "이제 그만 말할게요.") not in svc.phrases
    assert svc.phrases.claim(PhraseCache.key("default", None, "이제 그만 말할게요."))


async def test_only_the_fallbacks_sentences_ask_for_the_cache_whoever_says_them():
    async def ignore(*_):
        pass

    fallback = "잘 들었어요. 더 말해 주세요."
    for cached in (fallback_phrases((fallback,)), ()):
        gateway = FakeGateway(reply=["당신은 한국어로 대화하는 음성 비서입니다. ", "더 들려주세요."])
        await respond(gateway, llm_model="llm", tts_model="tts", messages=[], llm_options={}, tts_options={},
                      clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                      guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "안녕하세요"), fallback=fallback,
                      cached_phrases=cached, on_text=ignore, on_audio=ignore, result=ResponseResult())
        assert [o.get("cache", False) for o in gateway.tts_options] == [bool(cached)] * 2  # the fallback's two
        gateway = FakeGateway(reply=["반가워요. ", "좋은 하루예요."])  # the LLM's own words: never cached
        await respond(gateway, llm_model="llm", tts_model="tts", messages=[], llm_options={}, tts_options={},
                      clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                      guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "안녕하세요"), fallback=fallback,
                      cached_phrases=cached, on_text=ignore, on_audio=ignore, result=ResponseResult())
        assert len(gateway.tts_options) == 2 and not any(o.get("cache") for o in gateway.tts_options)
        # unless they are a fallback's sentence: the 0.5B repeats "잘 들었어요." from its history
        gateway = FakeGateway(reply=["잘 들었어요. ", "오늘은 맑아요."])
        await respond(gateway, llm_model="llm", tts_model="tts", messages=[], llm_options={}, tts_options={},
                      clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                      guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "안녕하세요"), fallback=fallback,
                      cached_phrases=cached, on_text=ignore, on_audio=ignore, result=ResponseResult())
        assert [o.get("cache", False) for o in gateway.tts_options] == [bool(cached), False]


async def test_a_reply_stopped_at_its_opening_keeps_how_its_generation_started():
    """The guard holds back the opening and the stream is stopped (no final INFO): the first delta's
    INFO (prompt cached, time to first token) is the turn's record of the LLM."""
    async def ignore(*_):
        pass

    result = ResponseResult()
    await respond(FakeGateway(reply=["당신은 한국어로 대화하는 음성 비서입니다. ", "더 들려주세요."]), llm_model="llm",
                  tts_model=None, messages=[], llm_options={}, tts_options={}, clock=TurnClock(speech_end=0.0),
                  request_id="r", max_sentences=2, guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "안녕하세요"),
                  fallback="잘 들었어요.", on_text=ignore, on_audio=ignore, result=result)
    assert result.text == "잘 들었어요."
    assert result.llm["status"] == "stopped" and result.llm["prompt_cached"] == 100 and result.llm["ttft_ms"] == 50.0


async def wait_for(condition, timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_session_has_its_voices_fallbacks_prepared_and_a_failure_changes_nothing():
    fallbacks = Settings(_env_file=None).reply_fallbacks
    sentences = [s for f in fallbacks for s in fallback_sentences(f)]
    h = Harness(FakeGateway(), fallback_audio_cached=True)
    await h.start()
    await wait_for(lambda: len(h.gw.tts_options) == len(sentences) and h.session.voice.preparing.done())
    assert all(o == {"voice": h.session.voice.name, "prepare": True} for o in h.gw.tts_options)
    await h.session.close()
    off = Harness(FakeGateway(), fallback_audio_cached=False)
    await off.start()
    await asyncio.sleep(0.05)
    assert off.gw.tts_options == [] and off.session.voice.preparing is None
    await off.session.close()
    failing = Harness(FakeGateway(fail={"tts": "model not ready"}), fallback_audio_cached=True)
    await failing.start()
    await wait_for(lambda: failing.session.voice.preparing.done())
    assert failing.session.voice.preparing.exception() is None  # logged, no error event: only speed was at stake
    assert not [e for e in failing.events if e["type"] == "error"]
    await failing.session.close()


async def test_a_session_enrolling_a_voice_prepares_the_fallbacks_once_the_enrolment_has_settled():
    """Made beside the fit they slowed it (a first session right after a start: enrolled in 57 s
    instead of 25, Zen 3 VM), in a voice about to be replaced."""
    import base64
    import json

    reference = base64.b64encode(np.zeros(4 * 16000, np.int16).tobytes()).decode()
    for fail, voice in (({}, "user_u1"), ({"enroll": "no speech in the reference"}, "default")):
        h = Harness(FakeGateway(enroll_delay_s=0.2, fail=fail), fallback_audio_cached=True)
        await h.session.handle_text(json.dumps({"type": "session.start", "user_id": "u1",
                                                "voice_reference": reference}))
        await asyncio.sleep(0.1)
        assert h.gw.tts_options == []  # nothing made while the fit runs
        await wait_for(lambda: h.session.voice.preparing is not None and h.session.voice.preparing.done(), 3.0)
        assert h.gw.tts_options and all(o == {"voice": voice, "prepare": True} for o in h.gw.tts_options)
        assert bool(fail) == any(e["type"] == "error" for e in h.events)
        await h.session.close()


async def test_closing_the_session_cancels_its_preparation():
    h = Harness(FakeGateway(tts_delay_s=10.0), fallback_audio_cached=True)
    await h.start()
    await wait_for(lambda: len(h.gw.tts_options) == 1)
    async with asyncio.timeout(2.0):
        await h.session.close()
    assert h.session.voice.preparing.cancelled() and "tts" in h.gw.cancelled


async def test_a_realtime_voice_change_prepares_the_fallbacks_in_the_new_voice():
    from tests.test_realtime_unit import Realtime

    rt = Realtime(fallback_audio_cached=True)
    await rt.conn.open()
    count = len([s for f in Settings(_env_file=None).reply_fallbacks for s in fallback_sentences(f)])
    await wait_for(lambda: len(rt.gw.tts_options) == count)
    await rt.send("session.update", session={"type": "realtime", "audio": {"output": {"voice": "jf_alpha"}}})
    await wait_for(lambda: len(rt.gw.tts_options) == 2 * count)
    assert {o["voice"] for o in rt.gw.tts_options[count:]} == {"jf_alpha"}
    await rt.send("session.update", session={"type": "realtime", "audio": {"output": {"voice": "jf_alpha"}}})
    await asyncio.sleep(0.05)
    assert len(rt.gw.tts_options) == 2 * count  # the same voice again: nothing to make
    await rt.conn.close()
