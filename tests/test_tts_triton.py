"""The streaming `tts` model through the real Triton: chunk order and rate, cancellation, round trip
through Whisper (CER ceiling), and a zero-shot voice fitted to a human speaker."""
from __future__ import annotations

import asyncio
import time

import kocer
import numpy as np
import pytest

from orchestrator.triton_client import TritonCallError
from tests.conftest import triton_counter

ROUND_TRIP_CER_CEILING = 0.15
TEXT = "안녕하세요, 만나서 반갑습니다. 오늘은 날씨가 맑고 따뜻해서 산책하기 좋은 날이에요."


async def collect(gateway, text, options):
    items = [item async for item in gateway.tts_stream("tts", text, options)]
    return items[:-1], items[-1]


async def test_chunks_stream_in_order_at_declared_rate(gateway):
    chunks, final = await collect(gateway, TEXT, {"sample_rate": 24000})
    assert final.final and final.info["status"] == "done" and final.info["items"] == len(chunks)
    order = [(c.info["sentence"], c.info["chunk"]) for c in chunks]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert {c.info["sentence"] for c in chunks} == {0, 1}
    assert all(c.info["sample_rate"] == 24000 and c.data.dtype == np.int16 and len(c.data) for c in chunks)
    total_24k = sum(len(c.data) for c in chunks)
    chunks16, _ = await collect(gateway, TEXT, {"sample_rate": 16000})
    total_16k = sum(len(c.data) for c in chunks16)
    assert total_16k / total_24k == pytest.approx(16000 / 24000, rel=0.02)


@pytest.mark.parametrize("lead_s, one_call", [(0.0, 0), (30.0, 1)], ids=["listener dry", "audio ahead"])
async def test_a_sentence_is_one_call_only_when_the_listener_has_audio_ahead(gateway, triton, lead_s, one_call):
    """The second sentence of TEXT is longer than a first phrase: in phrases when its listener has no
    audio ahead, one Kokoro call when 30 s are still to play (the model's sentence counters)."""
    sentence = TEXT.split(". ")[1]
    names = ("voice_tts_sentences_one_call_total", "voice_tts_sentences_phrases_total")
    counts = [await triton_counter(triton, m) for m in names]
    chunks, final = await collect(gateway, sentence, {"lead_s": lead_s})
    after = [await triton_counter(triton, m) for m in names]
    assert final.info["status"] == "done"
    assert [a - b for a, b in zip(after, counts)] == [one_call, 1 - one_call]
    assert len(chunks) == 1 if one_call else len(chunks) > 1


async def test_round_trip_through_whisper(gateway):
    chunks, _ = await collect(gateway, TEXT, {"sample_rate": 16000})
    pcm = np.concatenate([c.data for c in chunks])
    transcript = await gateway.transcribe("stt", pcm, beam_size=5)
    cer = kocer.cer(TEXT, transcript.text)
    print(f"\nTTS round trip: {transcript.text!r} CER={cer:.3f}")
    assert cer <= ROUND_TRIP_CER_CEILING


async def test_cancel_stops_within_one_chunk(gateway, triton):
    before = await triton_counter(triton, "voice_tts_chunks_total")
    long_text = " ".join(["오늘 회의에서는 다음 분기의 예산과 일정, 그리고 새로운 프로젝트의 방향에 대해 논의했습니다."] * 6)
    received = 0
    stream = gateway.tts_stream("tts", long_text, {})
    async for _item in stream:
        received += 1
        if received == 1:
            break
    await stream.aclose()  # the gateway cancels the gRPC stream
    await asyncio.sleep(0.5)
    made = await triton_counter(triton, "voice_tts_chunks_total") - before  # the model's metric
    assert received <= made <= received + 1
    chunks, final = await collect(gateway, "네.", {})  # the model is free again at once
    assert final.info["status"] == "done"


async def test_a_prepared_phrase_is_served_from_the_cache(gateway, triton):
    """{"prepare": true} makes a sentence into the phrase cache and streams nothing; {"cache": true}
    then serves it at once: the same speech (Whisper hears it), at the rate asked for."""
    sentence, served = "그 얘기를 조금만 더 들려주시겠어요?", "voice_tts_phrases_cached_total"
    before, made_before = await triton_counter(triton, served), await triton_counter(triton, "voice_tts_chunks_total")
    chunks, final = await collect(gateway, sentence, {"prepare": True})
    assert final.info["status"] == "done" and chunks == []
    made = await triton_counter(triton, "voice_tts_chunks_total") - made_before
    t0 = time.perf_counter()
    cached, final = await collect(gateway, sentence, {"cache": True, "first": True, "sample_rate": 16000})
    served_s = time.perf_counter() - t0
    fresh, _ = await collect(gateway, sentence, {"sample_rate": 16000})
    assert await triton_counter(triton, served) - before == 1
    assert final.info["status"] == "done" and cached and all(c.info.get("cached") for c in cached)
    assert not any(c.info.get("cached") for c in fresh)
    assert made == 0  # prepared audio is not counted as chunks sent
    pcm = np.concatenate([c.data for c in cached])
    assert len(pcm) == pytest.approx(sum(len(c.data) for c in fresh), rel=0.1)
    transcript = await gateway.transcribe("stt", pcm, beam_size=5)
    print(f"\nserved from the cache in {served_s * 1000:.0f} ms: {transcript.text!r}")
    assert kocer.cer(sentence, transcript.text) <= ROUND_TRIP_CER_CEILING


async def test_bad_requests_are_clear_errors(gateway):
    with pytest.raises(TritonCallError, match="empty"):
        await collect(gateway, "   ", {})
    with pytest.raises(TritonCallError, match="sample_rate"):
        await collect(gateway, "안녕", {"sample_rate": 44100})
    with pytest.raises(TritonCallError, match="unknown voice"):
        await collect(gateway, "안녕", {"voice": "nobody"})


async def test_voice_fitted_to_a_human_reference_is_closer_than_stock(gateway):
    """Reference: one human speaker's clip (Zeroth spk104, ../shared/ko_speech_dev); scored against his
    *other* recordings, on the benchmark's three sentences (one sentence alone is too noisy a sample)."""
    from benchmarks.voice_clone import EVAL_SENTENCES, dev_speakers, load
    from RealTime_zeroshot_TTS_ko.voice_fit import similarity, speaker_embedding

    clips = dev_speakers()["zeroth_104"]
    reference = load(clips[-1])[: 15 * 16000]
    target = np.mean([speaker_embedding(load(p), 16000) for p in clips[:-1]], axis=0)
    info = await gateway.enroll_voice("tts", "test_user_voice", (reference * 32767).astype(np.int16), 16000)
    assert info["voice"] == "test_user_voice" and info["enroll_ms"] > 0

    async def sim(voice):
        chunks = [c for text in EVAL_SENTENCES for c in (await collect(gateway, text, {"voice": voice}))[0]]
        audio = np.concatenate([c.data for c in chunks]).astype(np.float32) / 32768
        return similarity(speaker_embedding(audio, 24000), target)

    fitted, stock = await sim("test_user_voice"), await sim("default")
    print(f"\nsimilarity to the speaker's other clips: fitted={fitted:.3f} stock={stock:.3f} ({info})")
    assert fitted > stock


async def test_a_reply_is_spoken_while_a_voice_fit_runs(gateway):
    """A reply's first chunk (OPTIONS first) asked for while another user's fit runs arrives long
    before the fit ends: the fit runs beside replies and yields to their critical path, it never
    gates them (the e2e enrolment test shows the same for a spoken turn)."""
    from benchmarks.voice_clone import dev_speakers, load

    reference = (load(dev_speakers()["zeroth_104"][-1])[: 15 * 16000] * 32767).astype(np.int16)
    loop = asyncio.get_running_loop()
    fit = asyncio.create_task(gateway.enroll_voice("tts", "test_fit_beside_reply", reference, 16000))
    await asyncio.sleep(0.5)
    asked = loop.time()
    async for item in gateway.tts_stream("tts", TEXT, {"first": True}):
        if not item.final and not item.info.get("heartbeat"):
            break
    first_chunk_s = loop.time() - asked
    assert not fit.done(), f"the fit ended before the reply's first chunk ({first_chunk_s:.1f} s)"
    info = await fit
    print(f"\nfirst chunk {first_chunk_s:.2f} s into a {info['enroll_ms'] / 1000:.1f} s fit")


@pytest.mark.parametrize("options, critical", [
    ({"first": True}, True),                           # a reply's first chunk
    ({"lead_s": 0.0, "lead_min_s": 1.0}, True),        # a later sentence whose listener has run dry
    ({"lead_s": 30.0, "lead_min_s": 1.0}, False),      # a later sentence with 30 s still to play
], ids=["reply start", "listener dry", "listener ahead"])
async def test_a_critical_chunk_does_not_wait_for_another_streams_later_phrase(gateway, triton, options, critical):
    """Another conversation's reply is mid-way (a later phrase decoding, not critical). A critical chunk
    (a reply's first, or one whose listener is about to run out of audio: the playback lead) stops that
    decode instead of queueing behind it, and the stopped stream still speaks all of its text (the
    decode starts over). A chunk whose listener has plenty ahead queues like any background work."""
    long_text = "오늘 회의에서는 다음 분기의 예산과 일정, 그리고 새로운 프로젝트의 방향에 대해 아주 자세히 논의했습니다."
    await collect(gateway, TEXT, options)  # this request's path once, whole: nothing is loaded during the race
    before = await triton_counter(triton, "voice_tts_preempted_total")
    loop = asyncio.get_running_loop()
    arrivals, first_arrived = [], asyncio.Event()

    async def background():
        async for item in gateway.tts_stream("tts", long_text, {}):
            if item.final:
                return item
            if not item.info.get("heartbeat"):
                arrivals.append(("background", item.info["chunk"], loop.time()))
                first_arrived.set()

    other = asyncio.create_task(background())
    await asyncio.wait_for(first_arrived.wait(), 60)
    await asyncio.sleep(0.1)  # its second phrase (~1 s of decoding here) is under way
    async for item in gateway.tts_stream("tts", TEXT, options):
        if not item.final and not item.info.get("heartbeat"):
            arrivals.append(("reply", 0, loop.time()))
            break
    final = await asyncio.wait_for(other, 120)
    order = [(who, chunk) for who, chunk, _ in sorted(arrivals, key=lambda a: a[2])]
    print(f"\narrival order: {order}")
    assert final.info["status"] == "done" and final.info["items"] == len([a for a in arrivals if a[0] == "background"])
    preempted = await triton_counter(triton, "voice_tts_preempted_total") - before
    if critical:
        assert order[:3] == [("background", 0), ("reply", 0), ("background", 1)]
        assert preempted >= 1
    else:  # the later phrase in progress finishes first; nothing is stopped
        assert order[:2] == [("background", 0), ("background", 1)] and preempted == 0



@pytest.mark.parametrize("final", [True, False], ids=["final transcript", "partial transcript"])
async def test_a_lead_decode_stops_for_another_turns_final_transcript(gateway, triton, final):
    """A reply is mid-way and its listener has run dry: each chunk is critical for its lead, and a
    long phrase decodes. Another conversation's final transcript starts in the `stt` model (another
    process; its turn's first-audio work). The decode stops for it instead of halving its two cores,
    waits, and starts over: the reply still speaks all of its text. A partial transcript (background
    work) stops nothing."""
    from tests.audio_fixtures import korean_clip, to_pcm16

    long_text = "네, 알겠습니다. 오늘 회의에서는 다음 분기의 예산과 일정, 그리고 새로운 프로젝트의 방향에 대해 아주 자세히 논의했습니다."
    lead = {"lead_s": 0.0, "lead_min_s": 30.0}
    speech = to_pcm16(korean_clip()[0])
    await gateway.transcribe("stt", speech, vad=False, partial=not final)  # both paths once, whole
    await collect(gateway, long_text, lead)
    before = await triton_counter(triton, "voice_tts_preempted_total")
    first_arrived = asyncio.Event()

    async def reply():
        async for item in gateway.tts_stream("tts", long_text, lead):
            if item.final:
                return item
            if not item.info.get("heartbeat"):
                first_arrived.set()

    speaking = asyncio.create_task(reply())
    await asyncio.wait_for(first_arrived.wait(), 60)
    await asyncio.sleep(0.3)  # its long second sentence is decoding (past its text side)
    order = time.time() if final else None
    transcript = await gateway.transcribe("stt", speech, vad=False, partial=not final, order=order)
    done = await asyncio.wait_for(speaking, 120)
    preempted = await triton_counter(triton, "voice_tts_preempted_total") - before
    print(f"\n{'final' if final else 'partial'} transcript beside a lead decode: {preempted:.0f} stopped")
    assert transcript.text and done.info["status"] == "done"
    assert (preempted >= 1) if final else (preempted == 0)
