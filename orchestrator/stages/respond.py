"""The bot's answer: LLM stream → sentence splitter → TTS stream → client, as two concurrent stages.

The LLM stage pushes each finished sentence into a queue while it keeps generating; the TTS stage
speaks sentences in order as they come. Cancelling the task that runs `respond()` cancels both
stages and, through the gateway, both Triton requests.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from RealTime_zeroshot_TTS_ko.text.splitter import CLOSERS, TERMINATORS, SentenceSplitter
from orchestrator.metrics import TurnClock

log = logging.getLogger("orchestrator.respond")
ENDS = TERMINATORS + CLOSERS  # a piece ending with one of these completes a sentence


@dataclass
class ResponseResult:
    text: str = ""
    sentences: list[str] = field(default_factory=list)
    audio_samples: int = 0
    sample_rate: int = 24000
    llm: dict = field(default_factory=dict)        # the LLM's final summary (tokens, ttft, tok/s)
    versions: dict = field(default_factory=dict)   # model -> version that served this answer


def visible_history(history: list, max_turns: int) -> list:
    """The last turns the LLM sees, dropped in blocks of half the window rather than one per turn,
    so the prompt prefix (and its KV cache) stays the same for several turns in a row."""
    if max_turns <= 0:
        return []
    step = max(1, max_turns // 2)
    start = max(0, len(history) - max_turns)
    start = -(-start // step) * step  # round up to a block boundary
    return history[start:]


def build_messages(system_prompt: str, history: list[tuple[str, str]], memories: list, user_text: str) -> list[dict]:
    """System prompt and history first, unchanged from turn to turn, so the LLM reuses their KV cache;
    recalled memories go with the new user message, as delimited facts, not as text to read out."""
    messages = [{"role": "system", "content": system_prompt}]
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if memories:
        facts = "\n".join(f"- {'사용자가 한 말' if m.role == 'user' else '비서가 한 말'}: {m.text}" for m in memories)
        user_text = f"<기억>\n{facts}\n</기억>\n(위 기억은 참고만 하고 읽지 마세요.)\n\n{user_text}"
    return messages + [{"role": "user", "content": user_text}]


async def respond(gateway, *, llm_model: str, tts_model: str | None, messages: list[dict], llm_options: dict,
                  tts_options: dict, clock: TurnClock, request_id: str, first_chunk_chars: int = 0,
                  max_sentences: int = 0,
                  on_text: Callable[[str], Awaitable[None]], on_audio: Callable[[bytes, int], Awaitable[None]],
                  result: ResponseResult) -> ResponseResult:
    """Run one answer; `result` is filled as it goes, so an interrupted answer keeps what was said."""
    sentences: asyncio.Queue[str | None] = asyncio.Queue()

    async def llm_stage() -> None:
        splitter = SentenceSplitter(first_chunk_max=first_chunk_chars)
        finished = 0  # complete sentences sent to TTS; generation stops (cancelled in Triton) at max_sentences
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
                    clock.mark("llm_first_token")
                    result.text += delta
                    await on_text(delta)
                    for sentence in splitter.push(delta):
                        clock.mark("first_sentence")
                        await sentences.put(sentence)
                        finished += sentence[-1] in ENDS
                    if max_sentences and finished >= max_sentences:
                        result.text = result.text[:len(result.text) - len(splitter.buffer)].rstrip()
                        splitter.buffer = ""
                        result.llm = {"status": "stopped", "sentences": finished}
                        break
            for sentence in splitter.flush():
                clock.mark("first_sentence")
                await sentences.put(sentence)
            clock.mark("llm_done")
        finally:
            await sentences.put(None)

    async def tts_stage() -> None:
        while (sentence := await sentences.get()) is not None:
            result.sentences.append(sentence)
            if tts_model is None:
                continue
            options = {**tts_options, "first": len(result.sentences) == 1}  # critical path (priority.py)
            async for item in gateway.tts_stream(tts_model, sentence, options, request_id=f"{request_id}-tts"):
                result.versions["tts"] = item.model_version
                if item.final:
                    break
                result.sample_rate = int(item.info.get("sample_rate", result.sample_rate))
                clock.mark("first_audio")
                result.audio_samples += len(item.data)
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
