"""What the LLM sees, shaped for small models: the system prompt, a few short spoken-Korean exemplar
exchanges, the recent history, and the new user message with recalled memories as delimited facts.

The system prompt, exemplars and history come first and stay the same from turn to turn, so the
LLM's KV cache keeps them (llama.cpp renders the GGUF's own chat template). Memories are what *the
user* said in earlier sessions, given as facts to use, never as text to read out; `ReplyGuard`
(reply_filter.py) removes a reply sentence that recites any of it anyway.
"""
from __future__ import annotations

from orchestrator.stages.reply_filter import RECALL_QUESTION, ReplyGuard, compact, strip_format

# Spoken, short, polite: a greeting, a fact, a feeling, a memory used (in the memory format) and
# memories left alone. Their topics are far from everyday questions, so an answer has nothing to copy.
EXEMPLARS: list[tuple[str, str]] = [
    ("안녕하세요!", "안녕하세요! 오늘 하루는 어떠셨어요?"),
    ("고래는 물고기예요?", "아니요, 고래는 물고기가 아니라 포유류예요."),
    ("요즘 일이 많아서 너무 피곤해요.", "많이 지치셨겠어요. 오늘은 일찍 푹 쉬시면 좋겠어요."),
    ("[기억]\n- 사용자가 전에 한 말: 제 취미는 뜨개질이에요\n[/기억]\n제 취미가 뭐라고 했죠?", "뜨개질이 취미라고 하셨어요."),
    ("[기억]\n- 사용자가 전에 한 말: 저는 아침에 산책해요\n[/기억]\n문어는 다리가 몇 개예요?", "문어는 다리가 여덟 개예요."),
]
MEMORY_OPEN, MEMORY_CLOSE = "[기억]", "[/기억]"
# Words only the exemplars bring up: a reply that says one the conversation never did took it from
# them (the 0.5B opened replies to news sentences with "문어는 …" in voice_latency runs).
EXEMPLAR_TOPICS = ("고래", "포유류", "뜨개질", "문어")


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


def pick_fallback(fallbacks: list[str], history: list[tuple[str, str]]) -> str:
    """The fallback said least recently in the history (one never said first): not the same words
    turn after turn. An answer *holds* a fallback said after an opener the model kept ("잘 들었어요. 그
    이야기를 …"): compared whole, that fallback looked never said and came again every turn."""
    said = [answer for _, answer in history]
    return min(fallbacks, key=lambda f: max((i for i, a in enumerate(said) if f in a), default=-1))


def reply_guard(system_prompt: str, memories: list, user_text: str,
                exemplars: list[tuple[str, str]] = EXEMPLARS, history: list[tuple[str, str]] = ()) -> ReplyGuard:
    """Everything the reply must not read out: the instructions, the exemplars (the first, a greeting,
    fits any greeting) line by line and their topics unless the conversation has them, the memories,
    and what was said in earlier turns of the history (the 0.5B reads a previous statement out again,
    turn after turn, and repeats its own replies) unless the user asks back. Short ones ("네,
    좋아요.") may come again."""
    lines = [strip_format(line) for user, answer in exemplars[1:] for line in [*user.splitlines(), answer]]
    asked_back, facts = bool(RECALL_QUESTION.search(user_text)), memory_facts(memories)
    # the 0.5B also says its own earlier reply again ("네, 이는 수사의 공정입니다." five turns in a row)
    earlier = [] if asked_back else [
        text for turn in history for text in turn if text != user_text and len(compact(text)) >= 10]
    said = " ".join([user_text, *facts, *(t for turn in history for t in turn)])
    return ReplyGuard([system_prompt, *(u for u, _ in exemplars), *earlier], user_text, facts,
                      examples=[line for line in lines if line],
                      foreign_words=[w for w in EXEMPLAR_TOPICS if w not in said],
                      earlier_replies=[] if asked_back else [answer for _, answer in history])
