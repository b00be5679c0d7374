"""Melo-KR's text side: our front end's pronunciation as Melo symbols, with MeloTTS's word2ph and the
per-phone BERT features (kykim/bert-kor-base, hidden_states[-3], 768-d) its KR checkpoints were trained on.

This follows MeloTTS `text/korean.py` g2p + `utils.get_text_for_tts_infer` step for step: BERT word
pieces are grouped into words, each word's jamo are spread over its pieces (`distribute_phone`),
"_" is added at both ends, and blanks are interleaved (word2ph doubled, +1 on the first). Without a
BERT folder the words come from a plain split and the features are zeros, as with `disable_bert`.
"""
from __future__ import annotations

import re
from pathlib import Path

from RealTime_zeroshot_TTS_ko.text.g2p import pronounce
from RealTime_zeroshot_TTS_ko.text.normalize import normalize

PUNCTUATION = {",": ",", ".": ".", "?": "?", "!": "!", "…": "…", "~": "~", ":": ":"}
BERT_DIM = 768  # Melo's ja_bert_proj input: the KR path's BERT width
WORD = re.compile(r"[^\W_]+|[^\w\s]")


def distribute_phone(n_phone: int, n_piece: int) -> list[int]:
    """MeloTTS's distribute_phone: a word's phones shared out over its word pieces, first ones first."""
    base, extra = divmod(n_phone, n_piece)
    return [base + (i < extra) for i in range(n_piece)]


class KoreanBert:
    """A BERT folder in Hugging Face format (config.json, weights, tokenizer files), loaded offline."""

    def __init__(self, bert_dir: Path, device: str = "cpu"):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
        self.model = AutoModelForMaskedLM.from_pretrained(str(bert_dir), local_files_only=True).to(device).eval()
        if self.model.config.hidden_size != BERT_DIM:
            raise ValueError(f"Melo-KR expects a {BERT_DIM}-d BERT, {bert_dir} has {self.model.config.hidden_size}")
        self.device = device

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def features(self, text: str, word2ph: list[int]):
        """[768, sum(word2ph)]: each token's third-from-last hidden state, repeated for its phones."""
        import torch

        inputs = self.tokenizer(text, return_tensors="pt").to(self.device)
        if inputs["input_ids"].shape[-1] != len(word2ph):
            raise ValueError(f"BERT gave {inputs['input_ids'].shape[-1]} tokens for {len(word2ph)} word2ph entries")
        with torch.no_grad():
            hidden = self.model(**inputs, output_hidden_states=True)["hidden_states"][-3][0]
        counts = torch.tensor(word2ph, device=hidden.device)
        return torch.repeat_interleave(hidden, counts, dim=0).T


def melo_sequence(text: str, symbol_to_id: dict[str, int], bert: KoreanBert | None, add_blank: bool = True):
    """Text → (normalised text, phone ids, word2ph), Melo's KR layout; symbols outside the table are dropped."""
    from jamo import hangul_to_jamo

    norm = normalize(text)
    groups: list[list[str]] = []
    for piece in (bert.tokenize(norm) if bert else WORD.findall(norm)):
        if piece.startswith("##") and groups:
            groups[-1].append(piece[2:])
        else:
            groups.append([piece])
    phones, word2ph = ["_"], [1]
    for group in groups:
        word = "".join(group)
        if word in PUNCTUATION or word == "[UNK]":
            syms = [PUNCTUATION.get(word, "_")]
            counts = [1] + [0] * (len(group) - 1)
        else:
            syms = [c for c in hangul_to_jamo(pronounce(word)) if c in symbol_to_id]
            counts = distribute_phone(len(syms), len(group))
        phones += syms
        word2ph += counts
    phones.append("_")
    word2ph.append(1)
    ids = [symbol_to_id[p] for p in phones if p in symbol_to_id]
    if len(ids) != len(phones):
        raise ValueError("the Melo symbol table lacks '_' or punctuation")
    if add_blank:  # commons.intersperse(x, 0), word2ph doubled, +1 on the first
        ids = [v for x in ids for v in (0, x)] + [0]
        word2ph = [2 * w for w in word2ph]
        word2ph[0] += 1
    return norm, ids, word2ph

