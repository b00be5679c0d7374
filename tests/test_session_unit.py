"""Fast unit layer: listener, turn, speculation, barge-in and failures against a scripted fake gateway.

Milliseconds per test; the same behaviour is tested for real (Triton, MariaDB, Milvus) in
test_e2e_voice.py. Assertions wait on events, never on sleeps.
"""
from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from orchestrator.session import VoiceSession
from orchestrator.settings import Settings
from orchestrator.turn import words_covered
from tests.fakes.gateway import FakeDb, FakeGateway, FakeMemory, fake_services
from tests.fakes.recorder import EventRecorder

FRAME = 512  # one VAD window (32 ms)
LOUD, QUIET = np.full(FRAME, 8000, np.int16).tobytes(), np.zeros(FRAME, np.int16).tobytes()


class Harness(EventRecorder):
    def __init__(self, gateway: FakeGateway, memory: FakeMemory | None = None, **settings):
        super().__init__()
        # the fallbacks' audio prepared at session start, and the prefill after each reply, would add calls
        # to every count (each tested on its own)
        cfg = Settings(_env_file=None, **{"partial_interval_ms": 100000, "fallback_audio_cached": False,
                                          "llm_prefill_after_reply": False, **settings})
        self.gw, self.db, self.memory = gateway, FakeDb(), memory or FakeMemory()
        self.audio: list[bytes] = []
        self.session = VoiceSession("s1", fake_services(cfg, gateway, self.db, self.memory), self._json, self._bytes)

    async def _json(self, event: dict) -> None:
        self.record(json.loads(json.dumps(event)))

    async def _bytes(self, data: bytes) -> None:
        self.audio.append(data)
        self.record({"type": "<audio>"})

    async def start(self) -> None:
        await self.session.handle_text(json.dumps({"type": "session.start", "user_id": "u1"}))

    async def frames(self, frame: bytes, n: int) -> None:
        for _ in range(n):
            await self.session.handle_audio(frame)
        await self.drain()

    async def drain(self) -> None:
        await self.drain_listener(self.session.listener)


async def test_whisper_runs_its_own_vad_only_on_audio_no_vad_segmented():
    """The listener's VAD found the speech of a detected turn: a second pass in Whisper only cuts
    syllables. A push-to-talk commit without turn detection may be anything: Whisper's VAD checks it."""
    h = Harness(FakeGateway())
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_for("response.done")
    h.session.listener.set_manual(True)
    await h.frames(LOUD, 20)
    assert await h.session.commit_input()
    await asyncio.wait({h.session.current.task}, timeout=5)
    await h.session.close()
    assert h.gw.stt_vads == [False, True]


async def test_speculative_turn_is_held_until_the_endpoint_then_flows():
    h = Harness(FakeGateway(), speculative_pause_ms=250, vad_end_silence_ms=600)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)          # 288 ms: pause → speculative turn runs
    handle = h.session.speculative
    assert handle is not None and not handle.committed
    await asyncio.wait({handle.task}, timeout=5)  # the whole answer is computed...
    assert "transcript.final" not in h.types() and "<audio>" not in h.types()  # ...but nothing is sent
    await h.frames(QUIET, 10)         # endpoint confirmed → commit
    done = await h.wait_for("response.done")
    assert done["status"] == "completed" and done["turn_id"] == 1
    types = h.types()
    assert types.index("speech.stopped") < types.index("transcript.final") < types.index("<audio>")
    stopped = next(e for e in h.events if e["type"] == "speech.stopped")
    assert stopped["speculative"] is True
    assert h.gw.calls.count("stt") == 1  # the speculative STT was the final one
    await h.session.close()
    assert len(h.db.stored) == 1 and len(h.memory.rows) == 2


@pytest.mark.parametrize("in_order", [True, False])
async def test_a_turns_model_calls_carry_its_place_in_line(in_order):
    """STT final, LLM and the reply's TTS carry one `order`: when the user stopped speaking, on the
    wall clock the models share (triton_models/priority.py ranks conversations' turns by it)."""
    h = Harness(FakeGateway(), critical_path_in_turn_order=in_order)
    await h.start()
    await h.frames(LOUD, 20)
    stopped_speaking = time.time()
    await h.frames(QUIET, 30)
    assert (await h.wait_for("response.done"))["status"] == "completed"
    orders = {h.gw.stt_orders[0], h.gw.llm_options[0]["order"], *(o["order"] for o in h.gw.tts_options)}
    if in_order:
        assert len(orders) == 1 and abs(orders.pop() - stopped_speaking) < 1.0
    else:
        assert orders == {None}
    await h.session.close()


async def speak_until_partials_are_used(h: Harness) -> None:
    """Loud windows until every scripted partial transcript has been returned (one in flight at a time)."""
    for _ in range(400):
        if not h.gw.partials and not (h.session.listener.partial_task and not h.session.listener.partial_task.done()):
            return
        await h.frames(LOUD, 1)
        await asyncio.sleep(0)
    raise AssertionError("the partials were not all requested")


async def turn_after_partials(gw: FakeGateway, **settings) -> tuple[Harness, dict]:
    """A spoken turn whose partial transcripts are gw.partials: the harness and its response.done."""
    h = Harness(gw, partial_interval_ms=0, **settings)
    await h.start()
    await speak_until_partials_are_used(h)
    await h.frames(QUIET, 20)
    return h, await h.wait_for("response.done")


async def test_the_final_transcript_starts_from_the_words_two_partials_agreed_on():
    gw = FakeGateway(partials=["오늘 날씨가", "오늘 날씨가 좋아서 산", "오늘 날씨가 좋아서 산책을"])
    h, _ = await turn_after_partials(gw, speculative_pause_ms=250, vad_end_silence_ms=600)
    assert gw.calls.count("stt.partial") == 3
    assert gw.prefixes == ["오늘 날씨가 좋아서"]  # "산" / "산책을" disagree: the words after stay open
    await h.session.close()
    gw2 = FakeGateway(partials=["오늘 날씨가", "오늘 날씨가 좋아서"])
    h2, _ = await turn_after_partials(gw2, stt_prefix_from_partials=False)
    assert gw2.prefixes == [""]
    await h2.session.close()


async def test_partials_prefill_the_turns_prompt_and_a_failing_prefill_changes_nothing():
    gw = FakeGateway(partials=["오늘 날씨가", "오늘 날씨가 좋아서"], fail={"llm.prefill": "model busy"})
    h, done = await turn_after_partials(gw, speculative_pause_ms=250, vad_end_silence_ms=600)
    assert done["status"] == "completed"
    assert gw.calls.count("llm.prefill") >= 1 and "error" not in h.types()
    prefilled, final = gw.prefilled[-1], gw.last_messages
    assert prefilled[-1] == {"role": "user", "content": "오늘 날씨가 좋아서"}  # the words heard so far
    assert prefilled[:-1] == final[:-1]  # the rest of the prompt is the turn's own: its KV cache is reused
    await h.session.close()
    gw2 = FakeGateway(partials=["오늘 날씨가", "오늘 날씨가 좋아서"])
    h2, _ = await turn_after_partials(gw2, llm_prefill_from_partials=False)
    assert "llm.prefill" not in gw2.calls
    await h2.session.close()


async def test_the_prefills_memories_serve_the_turn_when_its_partial_has_most_of_the_words():
    """Recall by the final transcript is one more embedding and search on the critical path; the
    prefill made it from a partial already. Reused when the partial has most of the final's words."""
    said = "오늘 날씨가 좋아서 산책을 했어요"
    gw = FakeGateway(partials=["오늘 날씨가", "오늘 날씨가 좋아서 산책을"], transcript=said)
    h, done = await turn_after_partials(gw, speculative_pause_ms=250, vad_end_silence_ms=600)
    prefills = gw.calls.count("llm.prefill")
    assert done["status"] == "completed" and "recall_reused" in done["timings"]
    assert gw.calls.count("embed.query") == prefills  # no search of its own
    assert gw.prefilled[-1][:-1] == gw.last_messages[:-1]
    await h.session.close()
    # a partial far behind the final transcript: the turn searches with the final words
    gw2 = FakeGateway(partials=["오늘", "오늘 날씨가"], transcript=said)
    h2, done2 = await turn_after_partials(gw2, speculative_pause_ms=250, vad_end_silence_ms=600)
    assert "recall_reused" not in done2["timings"]
    assert gw2.calls.count("embed.query") == gw2.calls.count("llm.prefill") + 1
    await h2.session.close()


async def test_a_made_reply_has_the_next_turns_prompt_prefilled_while_it_plays():
    """The history window moving on re-evaluates the whole history: done while the reply plays, not
    while the next turn waits for its first token."""
    gw = FakeGateway(tts_audio_s=1.0)
    h = Harness(gw, llm_prefill_after_reply=True, turn_lasts_until_played=True)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_for("response.audio.started")
    async with asyncio.timeout(2.0):
        while "llm.prefill" not in gw.calls:
            await asyncio.sleep(0.01)
    assert not any(e["type"] == "response.done" for e in h.events)  # the reply is still playing
    done = await h.wait_for("response.done")
    prefilled, answered = gw.prefilled[-1], gw.last_messages
    # the next turn's prompt: this turn's, then this exchange, then the next user's words (a placeholder)
    assert prefilled[:-1] == [*answered, {"role": "assistant", "content": done["text"]}]
    assert prefilled[-1]["role"] == "user" and "embed.query" not in gw.calls[gw.calls.index("llm.prefill"):]
    await h.session.close()
    off = Harness(FakeGateway(), llm_prefill_after_reply=False, llm_prefill_from_partials=False)
    await off.start()
    await off.frames(LOUD, 20)
    await off.frames(QUIET, 25)
    await off.wait_for("response.done")
    assert "llm.prefill" not in off.gw.calls
    await off.session.close()


def test_words_covered_counts_the_finals_characters_the_partial_has_in_order():
    assert words_covered("오늘 날씨가 좋아서", "오늘 날씨가 좋아서") == 1.0
    assert words_covered("오늘 날씨가", "오늘 날씨가 좋아서") == 5 / 8
    assert words_covered("오늘 날시가 좋아서", "오늘 날씨가 좋아서") == 7 / 8  # a partial's slip costs only itself
    assert words_covered("오늘 날씨가", "오늘, 날씨가?") == 1.0  # punctuation is not a word
    assert words_covered("", "오늘") == 0.0 and words_covered("오늘", "") == 0.0


async def test_user_speaking_on_cancels_the_speculation_without_a_trace():
    from prometheus_client import REGISTRY

    def speculations() -> dict[str, float]:
        return {o: REGISTRY.get_sample_value("voice_speculations_total", {"outcome": o}) or 0.0
                for o in ("committed", "cancelled")}

    counted = speculations()
    h = Harness(FakeGateway(llm_delay_s=0.05), speculative_pause_ms=250, vad_end_silence_ms=600)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)
    first = h.session.speculative
    assert first is not None
    await h.wait_until(lambda: "llm" in h.gw.calls)
    await h.frames(LOUD, 10)          # the user goes on
    assert h.session.speculative is None and first.done
    await h.frames(QUIET, 20)
    done = await h.wait_for("response.done")
    assert done["turn_id"] == 1 and done["status"] == "completed"
    assert not any(e.get("turn_id") == 1 and e["type"] == "response.done" and e is not done for e in h.events)
    assert sum(1 for t in h.types() if t == "response.done") == 1
    assert "llm" in h.gw.cancelled or "stt" in h.gw.cancelled
    await h.session.close()
    assert len(h.db.stored) == 1
    assert speculations() == {"cancelled": counted["cancelled"] + 1,  # an operator sees both outcomes
                              "committed": counted["committed"] + 1}


async def test_no_speculation_when_disabled_and_empty_text_gives_no_answer():
    h = Harness(FakeGateway(transcript=""), speculative_pause_ms=0)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)
    assert h.session.speculative is None
    await h.frames(QUIET, 12)
    done = await h.wait_for("response.done")
    assert done["status"] == "empty" and "llm" not in h.gw.calls
    await h.session.close()
    assert h.db.stored == []


@pytest.mark.parametrize("stage", ["stt", "embed", "llm", "tts"])
async def test_a_failing_stage_ends_as_error_and_failed_done(stage):
    h = Harness(FakeGateway(fail={stage: "boom"}))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    done = await h.wait_for("response.done")
    assert done["status"] == "failed"
    error = await h.wait_for("error", code="stage_failed")
    assert error["turn_id"] == done["turn_id"] and "boom" in error["message"]
    h.gw.fail.clear()                  # the next turn works
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    assert (await h.wait_for("response.done", turn_id=2))["status"] == "completed"
    await h.session.close()


async def test_milvus_failure_in_recall_ends_the_turn_cleanly():
    h = Harness(FakeGateway(), memory=FakeMemory(fail=True))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    assert (await h.wait_for("response.done"))["status"] == "failed"
    assert "milvus down" in (await h.wait_for("error"))["message"]
    await h.session.close()
    [row] = h.db.stored  # accounted for: a failed turn is stored with its reason
    assert row.status == "failed" and "milvus down" in row.error and row.user_text == "안녕하세요"


async def test_failing_vad_falls_back_to_energy_and_reports_once():
    h = Harness(FakeGateway(fail={"vad": "stub died"}))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    assert (await h.wait_for("response.done"))["status"] == "completed"  # not deaf
    assert sum(1 for e in h.events if e["type"] == "error") == 1     # one report, not one per window
    await h.session.close()


async def test_barge_in_cancels_the_answer_and_stores_it_interrupted():
    h = Harness(FakeGateway(llm_delay_s=0.2, reply=["하나, "] * 30))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_for("<audio>")
    await h.frames(LOUD, 12)          # > barge_in_min_speech_ms
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted"
    assert "llm" in h.gw.cancelled
    await h.wait_for("speech.started", turn_id=2)
    await h.session.close()
    assert [r.status for r in h.db.stored] == ["interrupted"]


async def test_an_interrupted_answer_stores_only_what_was_spoken():
    h = Harness(FakeGateway(tts_delay_s=1.0, reply=["첫 문장입니다. ", "둘째 문장입니다. "]))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_for("<audio>")       # the first sentence sounds; the second is shown, still in TTS
    await h.frames(LOUD, 12)
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted" and "둘째" in done["text"]
    await h.session.close()
    [record] = h.db.stored
    assert record.assistant_text == "첫 문장입니다."


async def test_reply_stops_after_two_sentences_and_the_llm_is_cancelled():
    gw = FakeGateway(reply=["첫 문장이에요. ", "둘째 문장이에요. ", "셋째 문장이에요. ", "넷째요."])
    h = Harness(gw)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    done = await h.wait_for("response.done")
    assert done["text"] == "첫 문장이에요. 둘째 문장이에요."
    assert "llm" in gw.cancelled and gw.calls.count("tts") == 2
    await h.session.close()


def test_history_window_keeps_a_stable_prefix():
    from orchestrator.stages.prompting import visible_history

    history = list(range(20))
    windows = [visible_history(history[:n], 6) for n in range(1, 21)]
    assert all(len(w) <= 6 for w in windows) and windows[-1][-1] == 19
    starts = [w[0] for w in windows]
    assert sum(a != b for a, b in zip(starts, starts[1:])) <= 20 // 3 + 1  # the start moves in blocks
    assert visible_history(history, 0) == []


async def test_an_error_flood_is_summarised_and_audio_after_end_is_refused():
    h = Harness(FakeGateway(), max_errors_per_s=5)
    await h.start()
    for _ in range(200):
        await h.session.handle_audio(b"\x00")  # odd length: one error each
    summary = await h.wait_for("error", code="too_many_errors", timeout=3)
    assert "195 more errors" in summary["message"]
    assert len(h.of("error")) == 6
    await h.session.handle_text(json.dumps({"type": "session.end"}))
    await h.session.handle_audio(QUIET)
    assert (await h.wait_for("error", code="session_ended"))["message"]
    await h.session.handle_text("x" * 2_000_000)  # still one clear error, never a dropped socket


async def test_a_stalled_database_at_session_start_is_an_error_and_start_can_be_retried():
    h = Harness(FakeGateway(), storage_timeout_s=0.05)
    stalled = asyncio.Event()

    async def stall(session_id, user_id):
        await stalled.wait()

    working, h.db.start_session = h.db.start_session, stall
    await h.start()
    error = await h.wait_for("error")
    assert error["code"] == "storage_failed" and "database is unavailable" in error["message"]
    assert h.session.user_id is None
    h.db.start_session = working
    await h.start()
    await h.wait_for("session.started")
    await h.session.close()


async def test_a_turn_the_database_refuses_is_answered_then_reported_and_retried():
    memory = FakeMemory(fail_add=True)
    h = Harness(FakeGateway(), memory=memory)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    assert (await h.wait_for("response.done"))["status"] == "completed"  # the user was answered
    error = await h.wait_for("error")
    assert error["code"] == "storage_failed" and "retrying" in error["message"]
    assert h.db.stored == [] and memory.rows == []                     # nothing half-stored
    memory.fail_add = False
    await asyncio.wait_for(h.session.svc.turns._worker, 5.0)
    assert len(h.db.stored) == 1 and len(memory.rows) == 2
    await h.session.close()
