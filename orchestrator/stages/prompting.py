"""What the LLM sees, shaped for small models: the system prompt, a few short spoken-Korean exemplar
exchanges, the recent history, and the new user message with recalled memories as delimited facts.

The system prompt, exemplars and history come first and stay the same from turn to turn, so the
LLM's KV cache keeps them (llama.cpp renders the GGUF's own chat template). Memories are what *the
user* said in earlier sessions, given as facts to use, never as text to read out; `ReplyGuard`
(reply_filter.py) removes a reply sentence that recites any of it anyway.
"""
from __future__ import annotations

from orchestrator.stages.reply_filter import ReplyGuard

# Spoken, short, polite; one greeting, one fact, one feeling, one memory use (in the memory format).
EXEMPLARS: list[tuple[str, str]] = [
    ("안녕하세요!", "안녕하세요! 오늘 하루는 어떠셨어요?"),
    ("일 년은 며칠이에요?", "일 년은 보통 삼백육십오 일이에요."),
    ("요즘 일이 많아서 너무 피곤해요.", "많이 지치셨겠어요. 오늘은 일찍 푹 쉬시면 좋겠어요."),
    ("[기억]\n- 사용자가 전에 한 말: 저는 부산에 살아요\n[/기억]\n제가 어디 산다고 했죠?", "부산에 사신다고 하셨어요."),
]
MEMORY_OPEN, MEMORY_CLOSE = "[기억]", "[/기억]"


def visible_history(history: list, max_turns: int) -> list:
    """The last turns the LLM sees, dropped in blocks of half the window rather than one per turn,
    so the prompt prefix (and its KV cache) stays the same for several turns in a row."""
    if max_turns <= 0:
        return []
    step = max(1, max_turns // 2)
    start = max(0, len(history) - max_turns)
    start = -(-start // step) * step  # round up to a block boundary
    return history[start:]


def memory_facts(memories: list) -> list[str]:
    """What the user said before (assistant turns are not facts about the user)."""
    seen, facts = set(), []
    for m in memories:
        if m.role == "user" and m.text not in seen:
            seen.add(m.text)
            facts.append(m.text)
    return facts


def build_messages(system_prompt: str, history: list[tuple[str, str]], memories: list, user_text: str,
                   exemplars: list[tuple[str, str]] = EXEMPLARS) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}]
    for user, assistant in [*exemplars, *history]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    facts = memory_facts(memories)
    if facts:
        lines = "\n".join(f"- 사용자가 전에 한 말: {fact}" for fact in facts)
        user_text = f"{MEMORY_OPEN}\n{lines}\n{MEMORY_CLOSE}\n{user_text}"
    return messages + [{"role": "user", "content": user_text}]


def reply_guard(system_prompt: str, memories: list, user_text: str,
                exemplars: list[tuple[str, str]] = EXEMPLARS) -> ReplyGuard:
    """Everything the reply must not read out: the instructions, the exemplars' user lines, the memories."""
    return ReplyGuard([system_prompt, *(u for u, _ in exemplars), *memory_facts(memories)], user_text)
