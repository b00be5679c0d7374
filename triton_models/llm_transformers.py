"""The production LLM engine of the `llm` model: a Hugging Face causal LM (Gemma instruct) through
transformers, streamed with TextIteratorStreamer (see triton_models/llm.py for the interface)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

from triton_models.llm import GEMMA_TEMPLATE, GenOptions, check_fits


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_dir: Path, n_threads: int = 2, n_ctx: int = 2048, gguf_file: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = GEMMA_TEMPLATE
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, **kwargs).to(device).eval()
        self.n_ctx = n_ctx
        self.lock = threading.Lock()

    def prefill(self, messages: list[dict], stats: dict | None = None) -> int:
        """No KV cache is kept between generate() calls here: nothing to prefill."""
        if stats is not None:
            stats["skipped"] = "engine"
        return 0

    def _prompt_ids(self, messages: list[dict]):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def generate(self, messages: list[dict], opts: GenOptions, stats: dict | None = None) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        inputs = self._prompt_ids(messages).to(self.model.device)
        prompt_len = inputs["input_ids"].shape[-1]
        if stats is not None:
            stats["prompt_tokens"] = int(prompt_len)
        check_fits(int(prompt_len), opts, self.n_ctx)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        kwargs = dict(**inputs, max_new_tokens=opts.max_tokens, do_sample=opts.temperature > 0, streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([Stop()]), pad_token_id=self.tokenizer.eos_token_id)
        if opts.temperature > 0:
            kwargs |= {"temperature": opts.temperature, "top_p": opts.top_p}
        produced: list = []
        with self.lock:
            worker = threading.Thread(target=lambda: produced.append(self.model.generate(**kwargs)), daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                stop.set()  # consumer left (cancel) or done: stop generate() within one token
                worker.join()
                if stats is not None:
                    stats["tokens"] = int(produced[0].shape[-1] - prompt_len) if produced else 0
