"""End to end: a real WebSocket client streams real Korean speech in real time to the app, which
uses the real Triton (VAD, Whisper, LLM, TTS, embedder), the local MariaDB and Milvus Lite."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import kocer
import numpy as np
import pytest

from orchestrator.client import VoiceClient
from orchestrator.stages.respond import fallback_phrases
from benchmarks.stack import AppServer, make_settings
from benchmarks.corpus import HUMAN_DEV, human_clips, trim_to_speech
from tests.audio_fixtures import synth_clip, to_pcm16
from tests.conftest import triton_counter

QUESTION = "오늘 저녁 메뉴로 뭘 먹으면 좋을까요?"


def question() -> tuple[np.ndarray, str]:
    """Real Korean speech (ko_speech_dev) when present, else our TTS asking QUESTION (a TTS clip's
    intelligibility shifts with the CPU's ONNX kernels, so it is only the fallback)."""
    if (HUMAN_DEV / "transcripts.tsv").exists():
        clips = {name: (audio, text) for audio, text, name in human_clips()}
        audio, text = clips.get("zeroth_spk104_104_003_0294.wav") or next(iter(clips.values()))
        return trim_to_speech(audio), text
    return synth_clip(QUESTION), QUESTION


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("app"), llm_max_tokens=48)
    with AppServer(settings) as server:
        yield server


async def app_metric(app, sample: str) -> float:
    """One sample of the app's /metrics (0 before it is first counted)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{app.http}/metrics")).text
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample + " ")), 0.0)


def timeline(client: VoiceClient) -> str:
    """The session's events, one a line, for an assertion's message."""
    t0 = client.rx.events[0]["_t"] if client.rx.events else 0.0
    return "\n".join(f"{e['_t'] - t0:7.2f} {e['type']} {e.get('turn_id', '')} "
                     f"{e.get('status', '')}{e.get('text', e.get('delta', ''))}" for e in client.rx.events)


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_health_reports_every_part(app):
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{app.http}/api/health/")
    body = r.json()
    assert r.status_code == 200, body
    assert body["database"] and body["vector_db"] and body["triton"]
    assert {"stt", "vad", "llm", "tts", "embedder"} <= set(body["models"])
    assert all(m["ready"] for m in body["models"].values())
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{app.http}/metrics")).text
    assert "voice_stage_latency_seconds" in metrics and "voice_turns_total" in metrics


async def test_an_idle_server_warms_every_model_up(app):
    """No session is open yet in this module: the start's warm-up (orchestrator/warmup.py) runs to its end
    through the real models."""
    async with httpx.AsyncClient() as http, asyncio.timeout(300):
        while (warm := (await http.get(f"{app.http}/api/health/")).json()["warm_up"])["state"] == "running":
            await asyncio.sleep(1.0)
    print(f"\nwarm-up: {warm}")
    assert warm["state"] == "done" and set(warm["took_s"]) == {"stt", "stt final", "embedder", "llm", "tts"}


async def test_voice_turn_end_to_end(app):
    session_id = sid("e2e")
    async with VoiceClient(app.ws, session_id) as client:
        started = await client.start("user-e2e")
        assert started["output_sample_rate"] == 24000
        audio, text = question()
        await client.stream(to_pcm16(audio))
        await client.wait_for("speech.started", timeout=10)
        final = await client.wait_for("transcript.final", timeout=30)
        partial = client.find("transcript.partial")  # partials arrive while the user still speaks
        assert partial is not None and partial["turn_id"] == final["turn_id"] and partial["_t"] < final["_t"]
        cer = kocer.cer(text, final["text"])
        print(f"\nE2E transcript {final['text']!r} CER={cer:.3f}")
        assert cer <= 0.3  # Whisper base on human read speech: 0.09 mean on ko_speech_dev, this clip ~0.19
        done = await client.wait_for("response.done", timeout=120, turn_id=final["turn_id"])
        assert done["status"] == "completed" and done["text"]
        deltas = [e["delta"] for e in client.rx.events if e["type"] == "response.text.delta"]
        assert "".join(deltas) == done["text"]
        reply = client.reply_audio(done["turn_id"])
        assert client.rx.sample_rate[done["turn_id"]] == 24000 and len(reply) > 24000 * 0.5
        timings = done["timings"]
        assert 0 < timings["stt_done"] < timings["llm_first_token"] < timings["first_audio"]
        assert set(done["model_versions"]) == {"stt", "llm", "tts"}
        # how the final transcript was made: the stt model's own time, within the turn's STT stage
        assert 0 < done["stt"]["infer_ms"] < timings["stt_done"] and done["stt"]["waited_ms"] > -1
        print(f"E2E reply {done['text']!r}, {len(reply) / 24000:.1f}s audio, timings {timings}")
    async with httpx.AsyncClient() as http:
        for _ in range(100):  # the turn is stored just after the reply
            rows = (await http.get(f"{app.http}/api/sessions/{session_id}/turns")).json()
            if rows:
                break
            await asyncio.sleep(0.1)
        assert (await http.get(f"{app.http}/api/sessions/nope-{session_id}/turns")).status_code == 404
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    assert rows[0]["user_text"] == final["text"] and rows[0]["assistant_text"] == done["text"]
    assert rows[0]["assistant_audio_ms"] > 500 and rows[0]["timings"]["first_audio"] > 0
    # both sides of the turn are in Milvus for this user, and recalled by a later session
    async with VoiceClient(app.ws, sid("e2e2")) as client:
        await client.start("user-e2e")
        await client.stream(to_pcm16(audio))  # the same words again: the earlier turn is recalled
        started = await client.wait_for("response.started", timeout=60)
        assert started["memory_hits"] >= 1
        await client.wait_for("response.done", timeout=120)


async def test_silence_gives_no_turn(app):
    session_id = sid("silence")
    async with VoiceClient(app.ws, session_id) as client:
        await client.start("user-silence")
        noise = (np.random.default_rng(0).normal(0, 0.003, 16000 * 2) * 32767).astype(np.int16)
        await client.stream(noise, trailing_silence_s=0.8)
        audio, _text = question()  # then real words: the server hears in order, so once they are
        await client.stream(to_pcm16(audio))  # transcribed the noise has been dealt with, not just pending
        async def words_heard() -> dict:
            while not (finals := [e for e in client.rx.events if e["type"] == "transcript.final" and e["text"]]):
                await asyncio.sleep(0.05)
            return finals[0]

        spoken = (await asyncio.wait_for(words_heard(), 30))["turn_id"]
        await client.wait_for("response.done", timeout=120, turn_id=spoken)
        noise_events = [e for e in client.rx.events if e.get("turn_id") not in (None, spoken)]
        assert not [e for e in noise_events if e["type"] == "transcript.final" and e["text"]]
        assert not [e for e in noise_events if e["type"] in ("response.text.delta", "response.audio.started")]
        assert set(client.rx.audio) <= {spoken}


async def test_barge_in_cancels_answer_and_nothing_stale_follows(app):
    # both clips made first: a synthesis between the reply's first audio and the interruption delayed
    # it by seconds on a busy CI machine, past the end of a short reply; and before the socket opens,
    # or a slow CPU (>10 s for both, Zen 3 VM) outlasts the server's wait for session.start
    ask, interruption = [to_pcm16(synth_clip(text)) for text in
                         ("한국의 역사에 대해서 아주 길고 자세하게 이야기해 주세요.", "잠깐만요, 그만하세요.")]
    async with VoiceClient(app.ws, sid("barge")) as client:
        await client.start("user-barge")
        await client.stream(ask)
        first_final = await client.wait_for("transcript.final", timeout=30)
        turn = first_final["turn_id"]
        await client.wait_for("response.audio.started", timeout=120, turn_id=turn)
        await client.stream(interruption)
        done = await client.wait_for("response.done", timeout=30, turn_id=turn)
        assert done["status"] == "interrupted", timeline(client)
        second = await client.wait_for("response.done", timeout=120, turn_id=turn + 1)
        assert second["status"] in ("completed", "empty")
        stale = [t for t, _seq, _pcm in client.rx.audio.get(turn, []) if t > done["_t"]]
        assert not stale, f"{len(stale)} audio frames of the interrupted turn arrived after its response.done"


async def test_bad_input_gets_error_events_and_session_survives(app):
    async with VoiceClient(app.ws, sid("bad")) as client:
        await client.ws.send(b"\x00\x01" * 160)  # audio before session.start
        assert (await client.wait_for("error", code="session_not_started"))
        await client.ws.send("this is not json")
        await client.wait_for("error", code="bad_json")
        await client.send_json({"type": "session.teleport"})
        await client.wait_for("error", code="unknown_event")
        await client.send_json({"type": "session.start", "user_id": "bad id with spaces"})
        await client.wait_for("error", code="invalid_event")
        await client.start("user-bad")
        await client.ws.send(b"\x00" * 321)  # odd length: not PCM16
        await client.wait_for("error", code="bad_audio_frame")
        await client.ws.send(b"\x00\x00" * 40000)  # 80 kB > 1 s per frame
        await client.wait_for("error", code="frame_too_large")
        await client.send_json({"type": "session.start", "user_id": "user-bad"})
        await client.wait_for("error", code="session_already_started")
        # the session still works after all that
        await client.stream(to_pcm16(synth_clip("안녕하세요?")))
        done = await client.wait_for("response.done", timeout=120)
        assert done["status"] == "completed"
    async with VoiceClient(app.ws, "bad$id") as client:
        await client.wait_for("error", code="bad_session_id")


async def test_voice_enrolment_runs_in_the_background_and_stays_with_the_user(app, triton, gateway):
    """A human reference clip at session start: the session answers in the stock voice while the fit
    runs, then says voice.enrolled; the user's next session starts in the fitted voice."""
    from benchmarks.voice_clone import dev_speakers, load

    reference = load(dev_speakers()["zeroth_104"][-1])[: 15 * 16000]
    user = sid("enrol-user")
    async with VoiceClient(app.ws, sid("enrol")) as client:
        started = await client.start(user, voice_reference=to_pcm16(reference))
        assert started["voice"] == "default"
        audio, _text = question()
        # sent at once (not paced): the turn starts a second into the fit, so a reply that does not
        # wait for the fit (seconds) starts well before it ends, even on a slow machine
        await client.stream(to_pcm16(audio), realtime=False)
        first_audio = await client.wait_for("response.audio.started", timeout=120)
        enrolled = await client.wait_for("voice.enrolled", timeout=180)
        assert first_audio["_t"] < enrolled["_t"], "the reply waited for the enrolment"
        print(f"\nreply audio {enrolled['_t'] - first_audio['_t']:.1f} s before voice.enrolled")
        assert enrolled["voice"] == f"user_{user}" and 0 < enrolled["similarity"] <= 1
        print(f"\nenrolled in {enrolled['enroll_ms'] / 1000:.1f} s beside a live turn: {enrolled}")
    prepared = 'voice_fallback_audio_prepared_total{outcome="ready"}'
    ready_before = await app_metric(app, prepared)
    async with VoiceClient(app.ws, sid("enrol2")) as client:
        assert (await client.start(user))["voice"] == f"user_{user}"
        async with asyncio.timeout(180):  # the session makes the fallbacks' audio in its voice, in the background
            while await app_metric(app, prepared) == ready_before:
                await asyncio.sleep(0.5)
    # what a fallback reply in this voice then asks the tts model for is served from its phrase cache
    sentences = fallback_phrases(tuple(app.settings.reply_fallbacks))
    served_before = await triton_counter(triton, "voice_tts_phrases_cached_total")
    for sentence in sentences:
        items = [i async for i in gateway.tts_stream("tts", sentence, {"voice": f"user_{user}", "cache": True})]
        assert items[:-1] and all(c.info.get("cached") for c in items[:-1]), sentence
    assert await triton_counter(triton, "voice_tts_phrases_cached_total") - served_before == len(sentences)
