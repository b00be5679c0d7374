"""The production LLM engine of the `llm` model: a Hugging Face causal LM (Gemma instruct) through
transformers, decoded by our own loop (see triton_models/llm.py for the interface).

Why not `model.generate()` + TextIteratorStreamer: on an H100 that path streamed a 1B Gemma at
~13 tok/s; each token paid generate()'s Python, the streamer thread and a dynamic KV cache, and
conversations queued behind one another. Here (triton_models/llm_batch.py) `contexts` conversations
decode together over one KV cache of absolute positions that keeps each conversation's unchanged
prompt prefix from turn to turn; on CUDA the decode step is a CUDA graph. While a turn is still being
spoken, its settled words are prefilled into a free row (`prefill`). Text leaves per token
(incremental detokenisation) in the consumer's thread; closing the generator (a cancelled turn)
frees its row at the next step.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Iterator

from triton_models.llm import GEMMA_TEMPLATE, GenOptions, check_fits, settled_prompt
from triton_models.llm_batch import Batcher, Request


class IncrementalText:
    """Text of a token stream, delta by delta, in constant work per token: each new token is decoded
    with the few tokens before it (whose text was already given out), and only what they add leaves,
    once it is whole characters (a Hangul syllable may arrive as byte tokens: U+FFFD until complete).
    Decoding from a token before the new ones keeps SentencePiece's word-initial space."""

    def __init__(self, tokenizer, context: int = 4):
        self.tokenizer, self.context = tokenizer, context
        self.ids: list[int] = []
        self.prefix = self.read = 0  # ids[prefix:read] were given out; decoding starts at prefix

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix:self.read])
        now = self._decode(self.ids[self.prefix:])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""
        self.prefix, self.read = max(0, len(self.ids) - self.context), len(self.ids)
        return now[len(before):]


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_dir: Path, n_threads: int = 2, n_ctx: int = 2048, gguf_file: str | None = None,
                 contexts: int = 1, cuda_graph: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = GEMMA_TEMPLATE
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, attn_implementation="sdpa",
                                                          **kwargs).to(device).eval()
        self.n_ctx = n_ctx
        self.stop_ids = self._stop_ids()
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name warns each call)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.batcher = Batcher(self.model, self._forward, max(1, contexts), n_ctx, self.stop_ids, cuda_graph)

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids |= set(configured if isinstance(configured, list) else [configured])
        end_of_turn = self.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end_of_turn, int) and end_of_turn != self.tokenizer.unk_token_id:
            ids.add(end_of_turn)
        return {i for i in ids if i is not None}

    def _forward(self, ids, positions, cache, masks):
        """Logits after the last token of each row of `ids`."""
        return self.model(input_ids=ids, position_ids=positions, attention_mask=masks, use_cache=True,
                          logits_to_keep=1, **{self.cache_kwarg: cache}).logits[:, -1]

    def prefill(self, messages: list[dict], stats: dict | None = None, stop=None) -> int:
        """Evaluate the settled part of a turn still being spoken (see llm.settled_prompt) into a free
        row, so that the generation with the final words finds it there and evaluates only the rest.
        Background work: skipped when every row is busy. Tokens evaluated (one forward pass: `stop`, a
        cancelled request, is not asked)."""
        stats = stats if stats is not None else {}
        tokens = settled_prompt(self.prompt_ids, messages)
        check_fits(len(tokens), GenOptions(max_tokens=1), self.n_ctx)
        if not tokens:
            return 0
        request = Request(tokens, GenOptions(max_tokens=1, temperature=0.0), prefill_only=True)
        self.batcher.submit(request)
        try:
            request.next_token()  # None: the prefill is done (or skipped)
        finally:
            request.cancelled = True
        if request.skipped:
            stats["skipped"] = "busy"
            return 0
        evaluated = len(tokens) - request.cached
        stats.update(cached=request.cached, prefilled=evaluated, prompt_tokens=len(tokens))
        return evaluated

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
        return list(ids[0] if ids and isinstance(ids[0], list) else ids)

    def generate(self, messages: list[dict], opts: GenOptions, stats: dict | None = None) -> Iterator[str]:
        stats = stats if stats is not None else {}
        prompt = self.prompt_ids(messages)
        stats["prompt_tokens"] = len(prompt)
        check_fits(len(prompt), opts, self.n_ctx)
        request = Request(prompt, opts)
        self.batcher.submit(request)
        text = IncrementalText(self.tokenizer)
        try:
            while (token := request.next_token()) is not None:
                delta = text.add(token)
                if delta:
                    yield delta
        finally:
            request.cancelled = True  # a consumer that left frees its row at the next step
            stats.update(tokens=len(text.ids), prompt_cached=request.cached)
