"""One user turn as a unit: STT → recall → respond (LLM → TTS) → store, behind a cancellable handle.

A turn may start *speculatively* (the user has paused but the endpoint is not confirmed): it runs
the models at once, but everything it would send waits in its `Outbox` until `commit()`. If the user
speaks on, the listener cancels it and nothing of it ever reaches the client or the database.

Every way a turn can end is reported: `response.done {status: completed|interrupted|empty|failed}`,
with an `error` event first on failure. `TurnHandle.cancel()` waits a bounded time, so a stuck stage
cannot freeze the listener (the task is abandoned, its outbox closed, and it dies on its own).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Awaitable, Callable

import numpy as np

from orchestrator import protocol as P
from orchestrator.metrics import ERRORS, TURNS, TurnClock, now
from orchestrator.stages.prompting import build_messages, pick_fallback, reply_guard, visible_history
from orchestrator.stages.reply_filter import compact
from orchestrator.stages.respond import Playout, ResponseResult, fallback_phrases, respond
from orchestrator.storage.db import utcnow
from orchestrator.storage.turns import TurnRecord, describe
from orchestrator.triton_client import TritonCallError

log = logging.getLogger("orchestrator.turn")

Emit = Callable[[dict | bytes], Awaitable[None]]


class MemoryUnavailable(RuntimeError):
    """The vector memory could not be searched."""


async def recall_memories(svc, user_id: str, session_id: str, text: str) -> list:
    """What the user said in earlier sessions that bears on `text` (Milvus), bounded in time."""
    cfg = svc.settings
    vector = (await svc.gateway.embed(cfg.embedder_model, [text], kind="query"))[0]
    try:
        return await asyncio.wait_for(svc.memory.recall(user_id, vector, cfg.memory_top_k, cfg.memory_min_score,
                                                        exclude_session=session_id), cfg.storage_timeout_s)
    except Exception as exc:  # noqa: BLE001 - Milvus down or stalled: this turn fails, the next may not
        raise MemoryUnavailable(f"memory recall failed ({describe(exc)})") from exc


def words_covered(partial: str, final: str) -> float:
    """The share of the final transcript's characters (spaces and punctuation aside) the partial has,
    in order: a partial lacks the final's full stop, which is not a word."""
    a, b = compact(partial), compact(final)
    if not b:
        return 0.0
    return sum(block.size for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()) / len(b)


NEXT_WORDS = "안녕하세요"  # a prefill's user words before any are heard: the prompt up to them is what it keeps


def turn_messages(cfg, instructions: str, history: list, hits: list, user_text: str) -> list[dict]:
    """The LLM's prompt for a turn (also what a prefill evaluates ahead, from a partial transcript)."""
    return build_messages(instructions, visible_history(history, cfg.history_turns), hits, user_text)


class Outbox:
    """Holds a turn's output until the turn is committed; after `close()` everything is dropped.

    `committed` is the decision, taken when `commit()` starts: what was held may still be on its way
    (a slow socket), and a cancel then ends the turn as a committed one (its response.done goes out)."""

    def __init__(self, send: Emit):
        self._send, self._held, self.committed, self.closed = send, [], False, False
        self.flushing = False  # committed, and what was held is still being sent
        self.flushed = asyncio.Event()  # committed, and everything held until then sent
        self.playout = Playout()  # the client's playback of the audio sent (held audio is not)

    async def _out(self, item: dict | bytes) -> None:
        if isinstance(item, bytes):
            rate = P.AUDIO_HEADER.unpack_from(item)[3]
            self.playout.give((len(item) - P.AUDIO_HEADER.size) / 2 / rate)
        await self._send(item)

    async def put(self, item: dict | bytes) -> None:
        if self.closed:
            return
        if self.committed and not self.flushing:
            await self._out(item)
        else:
            self._held.append(item)  # items put while the held ones are flushed join the queue: order kept

    async def commit(self) -> None:
        self.committed = self.flushing = True
        try:
            while self._held and not self.closed:
                await self._out(self._held.pop(0))
        finally:
            self.flushing = False
            self.flushed.set()

    async def send_now(self, item: dict | bytes) -> None:
        """Past the hold and the close: a turn's last word for a turn that cannot say it itself."""
        await self._send(item)

    def drop_audio(self) -> None:
        """A committed turn is cancelled: the audio not yet sent is not sent; its events still are."""
        self._held = [item for item in self._held if not isinstance(item, bytes)]

    def held_done(self) -> dict | None:
        """The turn's response.done, if it is still waiting to be sent."""
        return next((item for item in self._held if isinstance(item, dict) and item["type"] == "response.done"), None)

    def close(self) -> None:
        self.closed, self._held = True, []


@dataclass
class TurnContext:
    """What a turn needs from its session (a snapshot; the session may move on while it runs)."""
    session_id: str
    user_id: str
    voice: str
    output_rate: int
    history: list[tuple[str, str]]
    instructions: str                                        # the system prompt of this session
    speak: bool                                              # False: text replies only (no TTS)
    store: Callable[[TurnRecord], None]                      # stores a finished turn in the background
    remember: Callable[[str, str], None]                     # appends (user, assistant) to the history
    next_turn_index: Callable[[], int]
    heard: Callable[[str], None] = lambda text: None        # a transcript left for a later answer
    # the memories the prefill recalled for this utterance, as (partial transcript, hits), if any
    recalled: Callable[[], tuple[str, list] | None] = lambda: None
    # (user, assistant): the answer is made, all its audio too, and has yet to play
    answered: Callable[[str, str], None] = lambda user, reply: None


@dataclass
class Turn:
    turn_id: int
    audio: np.ndarray
    clock: TurnClock
    ctx: TurnContext
    svc: object                      # the session's Services: settings, gateway, db, memory
    outbox: Outbox
    result: ResponseResult = field(default_factory=ResponseResult)
    status: str = "failed"
    user_text: str = ""
    hits: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    stt_info: dict = field(default_factory=dict)  # the final transcript: model time, wait, prefix words
    audio_seq: int = 0
    on_commit: list = field(default_factory=list)  # effects of a finished speculative turn, run at commit
    text_input: str | None = None  # the user's words as text: no STT
    answer: bool = True            # False: transcribe only; the answer waits for an explicit request
    stt_prefix: str = ""           # words the partials agreed on: the final transcript starts with them
    stt_vad: bool = False          # no VAD segmented this audio (turn detection off): Whisper runs its own
    failure: str | None = None     # why the turn failed (stored with it)
    reported: bool = False         # its response.done was put out
    abandoned: bool = False        # cancelled, did not stop in time: ended for its client as interrupted
    played_s: float | None = None  # how much of its audio the client had played when it was cancelled

    def after_commit(self, action: Callable[[], None]) -> None:
        """History and storage only for committed turns: now, or when (if ever) the turn is committed."""
        if self.outbox.committed:
            action()
        elif not self.outbox.closed:
            self.on_commit.append(action)

    # ------------------------------------------------------------ output (always through the outbox)
    async def send(self, type_: str, **fields) -> None:
        self.reported = self.reported or type_ == "response.done"
        await self.outbox.put(P.server_event(type_, turn_id=self.turn_id, **fields))

    def cut_short(self) -> None:
        """Cancelled after its answer was made, while that answer is still being sent (a speculative
        turn's held output, flushed at the commit): the rest of its audio is not sent, and it ends, and
        is remembered and stored, as interrupted."""
        done = self.outbox.held_done() if self.outbox.committed and not self.outbox.closed else None
        if done is None or done.get("status") != "completed":
            return
        self.outbox.drop_audio()
        self.played_s = self.outbox.playout.played_s()
        self.status = done["status"] = "interrupted"

    async def report_abandoned(self, timeout_s: float) -> None:
        """A cancelled turn that did not stop is left to die on its own, silenced; its client still
        gets the end of the answer it was given (bounded: the socket may be what is stuck)."""
        self.outbox.close()
        if self.outbox.committed and self.answer and not self.reported:
            self.status, self.reported, self.abandoned = "interrupted", True, True
            done = P.server_event("response.done", turn_id=self.turn_id, status="interrupted",
                                  text=self.result.text, timings=self.clock.ms())
            await asyncio.wait({asyncio.ensure_future(self.outbox.send_now(done))}, timeout=timeout_s)

    async def error(self, code: str, message: str) -> None:
        ERRORS.labels(code).inc()
        log.warning("[session %s] turn %d: %s: %s", self.ctx.session_id, self.turn_id, code, message)
        await self.outbox.put(P.error_event(code, message, self.turn_id))

    async def _audio_out(self, pcm: bytes, rate: int) -> None:
        if self.audio_seq == 0:
            await self.send("response.audio.started", sample_rate=rate)
        await self.outbox.put(P.pack_audio(self.turn_id, self.audio_seq, rate, pcm))
        self.audio_seq += 1

    # ------------------------------------------------------------ the turn
    async def run(self) -> None:
        cfg = self.svc.settings
        self.result.sample_rate = self.ctx.output_rate
        started = utcnow()
        try:
            await self._run(cfg)
        except asyncio.CancelledError:
            self.status = "interrupted"
            if not self.answer:
                raise
            self.played_s = self.outbox.playout.played_s()
            if self.user_text:  # what was said before the barge-in, not the whole generated answer
                self.after_commit(lambda: self.ctx.remember(self.user_text, self.said))
            await self.send("response.done", status="interrupted", text=self.result.text, timings=self.clock.ms())
            raise
        except (TritonCallError, MemoryUnavailable) as exc:
            await self._fail(P.ErrorCode.STAGE_FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - any stage failure ends as events, never a dead task
            log.exception("[session %s] turn %d failed", self.ctx.session_id, self.turn_id)
            await self._fail(P.ErrorCode.STAGE_FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            if self.abandoned:  # its client was told it was interrupted: it is stored so
                self.status = "interrupted"
            TURNS.labels("speculation_dropped" if self.outbox.closed and not self.outbox.committed
                         else self.status).inc()
            # every answered turn is accounted for (silence is not a turn); a failed one with its reason
            accounted = self.status == "failed" or self.user_text and self.status in ("completed", "interrupted")
            if self.answer and accounted:
                self.after_commit(lambda: self._store(started))

    @property
    def said(self) -> str:
        """The answer as the user heard it: all of it when completed; when interrupted, the sentences
        whose audio the client had begun to play (text-only: whose text it was sent)."""
        if self.status == "completed":
            return self.result.text
        if not self.result.audio_samples:
            return " ".join(self.result.spoken)
        played = self.outbox.playout.played_s() if self.played_s is None else self.played_s
        return " ".join(s for s, at in zip(self.result.spoken, self.result.spoken_at) if at < played)

    async def _until_played(self) -> None:
        """The answer lasts while its client plays it (each chunk in real time once sent): speech until
        then is a barge-in that cuts it short, and only what was played is remembered and stored."""
        await self.outbox.flushed.wait()  # a speculative turn's audio leaves at its commit
        await asyncio.sleep(self.outbox.playout.unplayed_s())
        self.clock.mark("played")

    def _store(self, started) -> None:
        cfg = self.svc.settings
        record = TurnRecord(
            self.ctx.session_id, self.ctx.user_id, self.ctx.next_turn_index(), self.status, self.user_text,
            self.said, started, utcnow(), len(self.audio) * 1000 // 16000,
            self.result.audio_samples * 1000 // max(self.result.sample_rate, 1),
            {**self.clock.ms(), "endpoint_silence_ms": cfg.vad_end_silence_ms, "llm": self.result.llm},
            {**self.versions, **self.result.versions}, len(self.hits), self.failure)
        self.ctx.store(record)

    async def _fail(self, code: str, message: str) -> None:
        self.status, self.failure = "failed", f"{code}: {message}"[:500]
        await self.error(code, message)
        if self.answer:
            await self.send("response.done", status="failed", text=self.result.text, timings=self.clock.ms())

    def order(self, cfg) -> float | None:
        """The turn's place in line on the models' critical path (when its user stopped speaking)."""
        return self.clock.order if cfg.critical_path_in_turn_order else None

    async def _run(self, cfg) -> None:
        gateway = self.svc.gateway
        if self.text_input is not None:
            self.user_text = self.text_input
        else:
            if not cfg.stt_enabled:
                self.status = "empty"
                return await self.send("response.done", status="empty", timings=self.clock.ms())
            asked = now()
            transcript = await gateway.transcribe(cfg.stt_model, self.audio, window_s=cfg.stt_window_s,
                                                  prefix=self.stt_prefix, vad=self.stt_vad, order=self.order(cfg))
            self.clock.mark("stt_done")
            # how the final was made: its model time, and what it waited (a partial in flight, transport)
            infer_ms = float(transcript.info.get("infer_ms", 0.0))
            self.stt_info = {"infer_ms": infer_ms, "waited_ms": round((now() - asked) * 1000 - infer_ms, 1),
                             "prefix_words": len(self.stt_prefix.split())}
            self.versions["stt"] = transcript.model_version
            self.user_text = transcript.text
            await self.send("transcript.final", text=self.user_text, stt_ms=self.clock.ms()["stt_done"])
        if not self.answer:
            self.status = "transcribed"
            if self.user_text:
                self.after_commit(lambda: self.ctx.heard(self.user_text))
            return
        if not self.user_text:  # silence / noise: no text, no answer, nothing stored
            self.status = "empty"
            return await self.send("response.done", status="empty", timings=self.clock.ms())
        if not cfg.llm_enabled:
            self.status = "completed"
            return await self.send("response.done", status="completed", text="", timings=self.clock.ms())
        self.hits = await self._recall(cfg)
        self.clock.mark("recall_done")
        await self.send("response.started", memory_hits=len(self.hits))

        async def text_out(delta: str) -> None:
            await self.send("response.text.delta", delta=delta)

        await respond(
            gateway, llm_model=cfg.llm_model, tts_model=cfg.tts_model if cfg.tts_enabled and self.ctx.speak else None,
            messages=turn_messages(cfg, self.ctx.instructions, self.ctx.history, self.hits, self.user_text),
            llm_options={"max_tokens": cfg.llm_max_tokens, "temperature": cfg.llm_temperature,
                         "threads": cfg.llm_threads or None, "first_threads": cfg.llm_first_sentence_threads or None,
                         "order": self.order(cfg)},
            tts_options={"voice": self.ctx.voice, "sample_rate": self.ctx.output_rate,
                         "lead_min_s": cfg.tts_lead_min_s, "order": self.order(cfg)}, clock=self.clock,
            request_id=f"{self.ctx.session_id}-{self.turn_id}", first_chunk_chars=cfg.first_chunk_chars,
            max_sentences=cfg.max_reply_sentences, fallback=pick_fallback(cfg.reply_fallbacks, self.ctx.history),
            cached_phrases=fallback_phrases(tuple(cfg.reply_fallbacks)) if cfg.fallback_audio_cached else (),
            guard=reply_guard(self.ctx.instructions, self.hits, self.user_text,
                              history=visible_history(self.ctx.history, cfg.history_turns)),
            on_text=text_out, on_audio=self._audio_out, result=self.result, playout=self.outbox.playout)
        if self.result.text:
            self.after_commit(lambda: self.ctx.answered(self.user_text, self.result.text))
        if cfg.turn_lasts_until_played and self.result.audio_samples:
            await self._until_played()
        self.status = "completed"
        self.after_commit(lambda: self.ctx.remember(self.user_text, self.said))  # said: a cut_short turn's part
        await self.send("response.done", status="completed", text=self.result.text, timings=self.clock.ms(),
                        llm=self.result.llm, stt=self.stt_info,
                        model_versions={**self.versions, **self.result.versions})

    async def _recall(self, cfg) -> list:
        """Memories for the user's words. The prefill's recall from a partial transcript that has most
        of them is reused: no second search on the critical path, and the prompt is the one prefilled."""
        early = self.ctx.recalled() if self.text_input is None else None
        if early is not None and words_covered(early[0], self.user_text) >= cfg.recall_partial_min_share:
            self.clock.mark("recall_reused")
            return early[1]
        return await recall_memories(self.svc, self.ctx.user_id, self.ctx.session_id, self.user_text)


class TurnHandle:
    """The running turn: commit it (its output flows), or cancel it with a bounded wait."""

    def __init__(self, turn: Turn, speculative: bool):
        self.turn, self.speculative, self.cancelling = turn, speculative, False
        self.task = asyncio.create_task(turn.run(), name=f"turn-{turn.ctx.session_id}-{turn.turn_id}")

    @property
    def turn_id(self) -> int:
        return self.turn.turn_id

    @property
    def committed(self) -> bool:
        return self.turn.outbox.committed

    @property
    def done(self) -> bool:
        return self.task.done()

    @property
    def ended(self) -> bool:
        """Over for its client too: the task is done and none of its output is still on its way."""
        return self.task.done() and not self.turn.outbox.flushing

    async def commit(self) -> None:
        self.speculative = False
        await self.turn.outbox.commit()
        actions, self.turn.on_commit = self.turn.on_commit, []
        for action in actions:
            action()

    async def cancel(self, timeout_s: float) -> bool:
        """Cancel and wait at most `timeout_s`; an uncommitted turn leaves no trace. True if it ended."""
        if not self.committed:
            self.turn.outbox.close()  # a speculative turn never speaks, not even its response.done
        if self.task.done():
            self.turn.cut_short()
            return True
        self.turn.outbox.drop_audio()
        if not self.cancelling:  # once: a second cancel would cut the turn's own response.done short
            self.cancelling = True
            self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=timeout_s)
        if not done:
            log.error("[session %s] turn %d did not stop within %.1f s; abandoned", self.turn.ctx.session_id,
                      self.turn_id, timeout_s)
            await self.turn.report_abandoned(timeout_s)
        return bool(done)

    async def wait(self, timeout_s: float) -> None:
        await asyncio.wait({self.task}, timeout=timeout_s)
