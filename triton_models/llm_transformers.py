"""The production LLM engine of the `llm` model: a Hugging Face causal LM (Gemma instruct) through
transformers, decoded token by token by our own loop (see triton_models/llm.py for the interface).

Why not `model.generate()` + TextIteratorStreamer: on an H100 that path streamed a 1B Gemma at
~10 tok/s; each token paid generate()'s Python, the streamer thread and a dynamic KV cache. Here:
- a static KV cache (`kv_cache="static"`, the default on CUDA): every layer keeps all `n_ctx`
  positions (Gemma's sliding-window layers too; the attention mask applies the window), so the
  cache holds absolute positions and the unchanged prompt prefix (system prompt, history) is kept
  from the last turn: only the new tokens are evaluated;
- on CUDA the one-token step is captured once as a CUDA graph and replayed: no per-kernel launches;
- text leaves per token (incremental detokenisation), in the consumer's thread: closing the
  generator (a cancelled turn) stops decoding at once.
On the CPU (tests, no GPU) the default is a dynamic cache evaluated afresh each turn.
"""
from __future__ import annotations

import inspect
import logging
import threading
from pathlib import Path
from typing import Iterator

from triton_models.llm import GEMMA_TEMPLATE, GenOptions, check_fits

log = logging.getLogger("llm.transformers")


class StaticKV:
    """A static cache of absolute positions (no sliding layers), rewindable to a shared prefix."""

    def __init__(self, model, n_ctx: int):
        from transformers.cache_utils import Cache, StaticLayer

        layers = model.config.get_text_config().num_hidden_layers
        self.cache = Cache(layers=[StaticLayer(max_cache_len=n_ctx) for _ in range(layers)])
        self.tokens: list[int] = []  # what the cache holds, position by position

    def rewind(self, length: int) -> None:
        """Keep the first `length` positions; later writes start there (StaticLayer.cumulative_length)."""
        import torch

        with torch.inference_mode():  # the cache's tensors were made in inference mode (on CUDA)
            for layer in self.cache.layers:
                layer.cumulative_length.fill_(length)
        del self.tokens[length:]


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_dir: Path, n_threads: int = 2, n_ctx: int = 2048, gguf_file: str | None = None,
                 kv_cache: str | None = None, cuda_graph: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = GEMMA_TEMPLATE
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, **kwargs).to(self.device).eval()
        self.n_ctx = n_ctx
        self.kv_cache = kv_cache or ("static" if self.device == "cuda" else "dynamic")
        if self.kv_cache not in ("static", "dynamic"):
            raise ValueError(f"kv_cache must be static or dynamic, not {self.kv_cache!r}")
        self.stop_ids = self._stop_ids()
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name warns each call)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.lock = threading.Lock()
        self.kv = StaticKV(self.model, n_ctx) if self.kv_cache == "static" else None
        self.graph = None  # the captured one-token step (CUDA, static cache)
        if self.kv is not None and self.device == "cuda" and cuda_graph:
            try:
                self._capture_step()
            except Exception:  # a model whose step cannot be captured still runs, eagerly
                log.exception("llm: the one-token step could not be captured as a CUDA graph; decoding eagerly")
                self.graph = None
                self.kv.rewind(0)

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids |= set(configured if isinstance(configured, list) else [configured])
        end_of_turn = self.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end_of_turn, int) and end_of_turn != self.tokenizer.unk_token_id:
            ids.add(end_of_turn)
        return {i for i in ids if i is not None}

    # ------------------------------------------------------------------ one forward
    def _forward(self, ids, positions, cache):
        return self.model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1,
                          **{self.cache_kwarg: cache}).logits[:, -1]

    def _capture_step(self) -> None:
        """Capture the one-token step (static input buffers, the cache's own tensors) as a CUDA graph."""
        import torch

        self.step_ids = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        self.step_pos = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            self._forward(self.step_ids, self.step_pos, self.kv.cache)  # allocates the cache
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.kv.rewind(0)
                    self._forward(self.step_ids, self.step_pos, self.kv.cache)
            torch.cuda.current_stream().wait_stream(side)
            self.kv.rewind(0)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step_logits = self._forward(self.step_ids, self.step_pos, self.kv.cache)
        self.kv.rewind(0)
        self.graph = graph

    def _step(self, token, position: int, cache):
        """Logits after `token` (a [1, 1] tensor on the device) at `position`."""
        import torch

        if self.graph is not None:
            self.step_ids.copy_(token)
            self.step_pos.fill_(position)
            self.graph.replay()
            return self.step_logits
        return self._forward(token, torch.tensor([[position]], device=self.device), cache)

    # ------------------------------------------------------------------ the interface of llm.py
    def prefill(self, messages: list[dict], stats: dict | None = None) -> int:
        """The unchanged prefix of the last prompt is reused at generation; no early prefill here."""
        if stats is not None:
            stats["skipped"] = "engine"
        return 0

    def _prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
        return list(ids[0] if ids and isinstance(ids[0], list) else ids)

    def _prefill(self, prompt: list[int], stats: dict):
        """Evaluate what the cache lacks of the prompt; the logits after its last token."""
        import torch

        if self.kv is None:
            from transformers import DynamicCache

            cache, start = DynamicCache(config=self.model.config), 0
        else:
            cache = self.kv.cache
            shared = next((i for i, (a, b) in enumerate(zip(self.kv.tokens, prompt)) if a != b),
                          min(len(self.kv.tokens), len(prompt)))
            start = min(shared, len(prompt) - 1)  # at least one token is evaluated: its logits are needed
            self.kv.rewind(start)
            self.kv.tokens.extend(prompt[start:])
        stats["prompt_cached"] = start
        ids = torch.tensor([prompt[start:]], device=self.device)
        positions = torch.arange(start, len(prompt), device=self.device)[None]
        return self._forward(ids, positions, cache), cache

    def _next_token(self, logits, opts: GenOptions, generator):
        import torch

        if opts.temperature <= 0:
            return logits.argmax(-1, keepdim=True)
        probs = torch.softmax(logits.float() / opts.temperature, -1)
        if opts.top_p < 1.0:
            sorted_probs, order = probs.sort(-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > opts.top_p  # keep the smallest set over top_p
            probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
        return torch.multinomial(probs, 1, generator=generator)

    def generate(self, messages: list[dict], opts: GenOptions, stats: dict | None = None) -> Iterator[str]:
        import torch

        stats = stats if stats is not None else {}
        prompt = self._prompt_ids(messages)
        stats["prompt_tokens"] = len(prompt)
        check_fits(len(prompt), opts, self.n_ctx)
        generator = None
        if opts.temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(opts.seed if opts.seed is not None else int(torch.randint(1 << 62, ()).item()))
        with self.lock, torch.inference_mode():
            produced: list[int] = []
            text = ""
            try:
                logits, cache = self._prefill(prompt, stats)
                for position in range(len(prompt), len(prompt) + opts.max_tokens):
                    token = self._next_token(logits, opts, generator)
                    token_id = int(token)
                    if token_id in self.stop_ids:
                        break
                    produced.append(token_id)
                    decoded = self.tokenizer.decode(produced, skip_special_tokens=True)
                    if len(decoded) > len(text) and not decoded.endswith("\ufffd"):  # whole characters only
                        delta, text = decoded[len(text):], decoded
                        yield delta
                    if position + 1 >= len(prompt) + opts.max_tokens:
                        break
                    if self.kv is not None:
                        self.kv.tokens.append(token_id)
                    logits = self._step(token.view(1, 1), position, cache)
            except Exception:
                if self.kv is not None:  # a failed step may have left a position half written
                    self.kv.rewind(0)
                raise
            finally:
                stats["tokens"] = len(produced)
