"""Streaming, CJK-aware sentence splitter for LLM text deltas.

Feed text as it arrives; complete sentences come out as soon as their end is certain. Boundaries:
. ? ! 。？！… and newlines (closing quotes/brackets stay with their sentence), never inside a
number (3.5, 1,000), an abbreviation (Mr., e.g., U.S.), a list number ("…다음과 같아요: 1. 먼저") or
an open quote/bracket. The first chunk of a
reply may end at a comma once it is long enough, so the first audio starts early; an unpunctuated
run is cut after a Korean sentence ending (…다/요/까/죠 + space) once it grows long.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

TERMINATORS = ".?!。？！…\n"
CLOSERS = "\"'”’)]}」』》〉"
OPENERS = {"(": ")", "[": "]", "{": "}", "「": "」", "『": "』", "《": "》", "〈": "〉", "“": "”"}
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr", "inc", "co"}
KOREAN_ENDING = re.compile(r"(?:다|요|까|죠|네|니다|세요)(?=\s)")
FIRST_CHUNK_COMMA = ",，、"
# one or two digits standing alone after the start, a space or a colon, before a "." (a list item's number)
LIST_NUMBER = re.compile(r"(?:^|[\s:：])\d{1,2}$")


@dataclass
class SentenceSplitter:
    first_chunk_min: int = 8     # chars before a comma may end the first chunk
    first_chunk_max: int = 0     # streaming replies: an unpunctuated first chunk ends at the first space
                                 # past this many chars (0 = off), so TTS need not wait for a long sentence
    soft_max: int = 60           # unpunctuated text is cut at a Korean ending past this length
    hard_max: int = 160          # ... or at any space past this one
    buffer: str = ""
    emitted: int = field(default=0)

    def push(self, delta: str) -> list[str]:
        self.buffer += delta
        out = []
        while (cut := self._find_cut()) is not None:
            out.append(self._take(cut))
        return [s for s in out if s]

    def flush(self) -> list[str]:
        rest = self._take(len(self.buffer))
        return [rest] if rest else []

    def _take(self, cut: int) -> str:
        sentence, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:]
        if sentence and re.search(r"\w", sentence):
            self.emitted += 1
            return sentence
        return ""

    def _find_cut(self) -> int | None:
        buf = self.buffer
        depth_stack: list[str] = []
        in_ascii_quote = False
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch in OPENERS:
                depth_stack.append(OPENERS[ch])
            elif depth_stack and ch == depth_stack[-1]:
                depth_stack.pop()
            elif ch == '"':
                in_ascii_quote = not in_ascii_quote
            elif ch in TERMINATORS and not depth_stack and not in_ascii_quote:
                end = self._terminator_end(buf, i)
                if end is None:
                    return None  # need more text to decide
                if end > 0:
                    return end
            elif (ch in FIRST_CHUNK_COMMA and self.emitted == 0 and i + 1 >= self.first_chunk_min
                  and i + 1 < len(buf) and not depth_stack and not (buf[i - 1].isdigit() and buf[i + 1].isdigit())):
                return i + 1
            i += 1
        if self.first_chunk_max and self.emitted == 0 and not depth_stack and not in_ascii_quote:
            space = buf.find(" ", self.first_chunk_max)
            if space > 0:
                return space
        if len(buf) > self.soft_max:
            endings = [m.end() for m in KOREAN_ENDING.finditer(buf) if m.end() >= self.soft_max // 2]
            if endings:
                return endings[0]
        if len(buf) > self.hard_max:
            space = buf.rfind(" ", 0, self.hard_max)
            return space if space > 0 else self.hard_max
        return None

    @staticmethod
    def _terminator_end(buf: str, i: int) -> int | None:
        """End index of the sentence whose terminator is at i; 0 = not a boundary; None = undecided."""
        ch = buf[i]
        if ch == ".":
            prev = buf[i - 1] if i else ""
            if i + 1 >= len(buf):
                return None
            nxt = buf[i + 1]
            if prev.isdigit() and nxt.isdigit():
                return 0  # 3.5
            if LIST_NUMBER.search(buf[:i]):
                return 0  # "1." opening a list item (a Korean sentence does not end in a bare number)
            word = re.search(r"([A-Za-z.]+)$", buf[:i])
            if word and (word.group(1).lower().rstrip(".") in ABBREVIATIONS or re.fullmatch(r"(?:[A-Z]\.)*[A-Z]", word.group(1))):
                return 0  # Mr. / U.S.
        j = i + 1
        while j < len(buf) and (buf[j] in TERMINATORS.replace("\n", "") or buf[j] in CLOSERS):
            j += 1  # "?!", "...", closing quotes
        if j >= len(buf) and ch != "\n":
            return None  # the run may continue ("..." still arriving)
        return j


def split_sentences(text: str, **kwargs) -> list[str]:
    """Split a whole text (the streaming splitter fed at once)."""
    splitter = SentenceSplitter(**kwargs)
    return splitter.push(text) + splitter.flush()


def stream_sentences(deltas: Iterable[str], **kwargs) -> Iterator[str]:
    splitter = SentenceSplitter(**kwargs)
    for delta in deltas:
        yield from splitter.push(delta)
    yield from splitter.flush()
