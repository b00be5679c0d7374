"""The bot's answer: LLM stream → sentence splitter → TTS stream → client, as two concurrent stages.

The LLM stage pushes each finished sentence into a queue while it keeps generating; the TTS stage
speaks sentences in order as they come. Cancelling the task that runs `respond()` cancels both
stages and, through the gateway, both Triton requests.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Collection

from RealTime_zeroshot_TTS_ko.text.splitter import SentenceSplitter
from orchestrator.metrics import TurnClock
from orchestrator.stages.reply_filter import SENTENCE_ENDS, ReplyGuard

log = logging.getLogger("orchestrator.respond")


class Playout:
    """The listener's playback, if it plays each chunk in real time once it has it: how much audio it
    was given, and when the last of it will have played (a chunk that comes late starts late)."""

    def __init__(self):
        self.given_s, self.end = 0.0, 0.0

    def give(self, seconds: float) -> None:
        self.given_s += seconds
        self.end = max(self.end, asyncio.get_running_loop().time()) + seconds

    def unplayed_s(self) -> float:
        """How much of the audio given the listener has still to play."""
        return max(0.0, self.end - asyncio.get_running_loop().time())

    def played_s(self) -> float:
        return self.given_s - self.unplayed_s()


@dataclass
class ResponseResult:
    text: str = ""
    sentences: list[str] = field(default_factory=list)  # taken by the TTS
    spoken: list[str] = field(default_factory=list)     # whose audio (or, text-only, text) reached the client
    spoken_at: list[float] = field(default_factory=list)  # where each spoken sentence starts in the audio (s)
    audio_samples: int = 0
    sample_rate: int = 24000
    llm: dict = field(default_factory=dict)        # the LLM's final summary (tokens, ttft, tok/s)
    versions: dict = field(default_factory=dict)   # model -> version that served this answer


def fallback_sentences(fallback: str) -> list[str]:
    """A fallback as it is spoken, a sentence at a time (and as its audio is cached)."""
    splitter = SentenceSplitter()
    return [*splitter.push(fallback), *splitter.flush()]


@functools.lru_cache(maxsize=8)
def fallback_phrases(fallbacks: tuple[str, ...]) -> frozenset[str]:
    """Every sentence of the fallbacks: what the phrase cache keeps ready."""
    return frozenset(s for fallback in fallbacks for s in fallback_sentences(fallback))


async def prepare_fallbacks(gateway, tts_model: str, voice: str, fallbacks: list[str], request_id: str = "") -> int:
    """Have the `tts` model make the fallbacks' audio for `voice` into its phrase cache (background
    work there, nothing streamed back); the number of sentences made."""
    sentences = [s for fallback in fallbacks for s in fallback_sentences(fallback)]
    for sentence in sentences:
        stream = gateway.tts_stream(tts_model, sentence, {"voice": voice, "prepare": True}, request_id=request_id)
        async with aclosing(stream):
            async for _ in stream:
                pass
    return len(sentences)


async def respond(gateway, *, llm_model: str, tts_model: str | None, messages: list[dict], llm_options: dict,
                  tts_options: dict, clock: TurnClock, request_id: str, first_chunk_chars: int = 0,
                  max_sentences: int = 0, guard: ReplyGuard | None = None, fallback: str = "",
                  cached_phrases: Collection[str] = (),
                  on_text: Callable[[str], Awaitable[None]], on_audio: Callable[[bytes, int], Awaitable[None]],
                  result: ResponseResult, playout: Playout | None = None) -> ResponseResult:
    """Run one answer; `result` is filled as it goes, so an interrupted answer keeps what was said.
    Text reaches the client and the TTS a sentence at a time, after the `guard` (reply_filter.py);
    if the guard drops everything, `fallback` is said instead of nothing. A sentence in `cached_phrases`
    (the fallbacks', whoever says it: the LLM repeats a fallback's opener from its history) has its
    audio from the `tts` model's phrase cache: the same few phrases recur. `playout` is the listener's
    clock, kept by whoever delivers `on_audio`'s chunks; without one, each chunk counts as given when made."""
    own_playout = playout is None
    playout = playout or Playout()
    sentences: asyncio.Queue[str | None] = asyncio.Queue()

    async def speak(piece: str, guarded: bool = True) -> bool:
        """One finished piece of the reply: cleaned, shown and queued for TTS; False if dropped."""
        piece = guard.clean(piece) if guard and guarded else piece.strip()
        if not piece:
            return False
        clock.mark("first_sentence")
        piece = f" {piece}" if result.text else piece
        result.text += piece
        await on_text(piece)
        await sentences.put(piece.strip())
        return True

    async def llm_stage() -> None:
        splitter = SentenceSplitter(first_chunk_max=first_chunk_chars)
        # complete sentences spoken, and dropped by the guard: generation stops (cancelled in Triton) at
        # max_sentences of either, or as soon as the guard holds back the reply's opening (a sentence or a
        # first chunk reading out the user, the prompt or a memory) before anything was said: a small
        # model that opens so reads on, and the user would wait in silence for what follows; the
        # fallback is said at once
        finished = dropped = 0
        started: dict = {}
        options = {**llm_options, "first_clause_chars": first_chunk_chars}
        try:
            llm = gateway.llm_stream(llm_model, messages, options, request_id=f"{request_id}-llm")
            async with aclosing(llm):  # leaving early closes the stream, which cancels it in Triton
                async for item in llm:
                    result.versions["llm"] = item.model_version
                    if item.final:
                        result.llm = item.info
                        break
                    delta = item.data.reshape(-1)[0].decode("utf-8")
                    if item.info.get("index") == 0:  # how the generation started (prompt cached, waits)
                        started = {k: v for k, v in item.info.items() if k not in ("index", "deltas")}
                    clock.mark("llm_first_token")
                    for sentence in splitter.push(delta):
                        complete = sentence.rstrip()[-1] in SENTENCE_ENDS
                        if await speak(sentence):
                            finished += complete
                        else:
                            dropped += complete
                    bad_opening = guard is not None and guard.dropped and not result.text
                    if max_sentences and (max(finished, dropped) >= max_sentences or bad_opening):
                        splitter.buffer = ""
                        result.llm = {"status": "stopped", "sentences": finished, "dropped": dropped, **started}
                        break
            for sentence in splitter.flush():
                await speak(sentence)
            # all dropped, nothing to say, or a bare opener left of what was dropped ("그렇군요." and then
            # an earlier reply read out): the fallback, ours, is never held back with what it replaces
            if guard is not None and fallback and (not result.text or guard.bare_copied_opener(result.text)
                                                   or guard.cut_off(result.text)):
                # a sentence at a time, as a reply is: a barge-in keeps only the sentences heard; one the
                # model already said (a fallback's opener copied from the history) is not said twice
                for sentence in fallback_sentences(fallback):
                    if sentence not in result.text:
                        await speak(sentence, guarded=False)
            clock.mark("llm_done")
        finally:
            await sentences.put(None)

    async def tts_stage() -> None:
        while (sentence := await sentences.get()) is not None:
            result.sentences.append(sentence)
            if tts_model is None:
                result.spoken.append(sentence)
                result.spoken_at.append(0.0)
                continue
            # critical path (priority.py): the first sentence, and any while the listener's audio runs low
            options = {**tts_options, "first": len(result.sentences) == 1}
            if sentence in cached_phrases:
                options["cache"] = True
            if result.audio_samples:  # the audio made that the listener has yet to play (held audio included)
                options["lead_s"] = round(max(0.0, result.audio_samples / result.sample_rate - playout.played_s()), 3)
            heard = False
            async for item in gateway.tts_stream(tts_model, sentence, options, request_id=f"{request_id}-tts"):
                result.versions["tts"] = item.model_version
                if item.final:
                    break
                result.sample_rate = int(item.info.get("sample_rate", result.sample_rate))
                clock.mark("first_audio")
                if not heard:
                    heard = True
                    result.spoken.append(sentence)
                    result.spoken_at.append(result.audio_samples / result.sample_rate)
                result.audio_samples += len(item.data)
                if own_playout:
                    playout.give(len(item.data) / result.sample_rate)
                await on_audio(item.data.tobytes(), result.sample_rate)
        clock.mark("tts_done")

    llm_task = asyncio.create_task(llm_stage())
    tts_task = asyncio.create_task(tts_stage())
    try:
        await asyncio.gather(llm_task, tts_task)
    finally:
        for task in (llm_task, tts_task):
            task.cancel()
        await asyncio.gather(llm_task, tts_task, return_exceptions=True)
    return result
