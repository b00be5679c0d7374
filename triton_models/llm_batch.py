"""Continuous batching for the transformers engine (triton_models/llm_transformers.py).

A fixed number of rows (the `llm` model's `contexts` parameter) share one KV cache of absolute
positions; one thread, the batcher, admits each new request into a free row (the row whose cached
tokens share the longest prefix with its prompt: a conversation's system prompt and history are
evaluated once, not every turn), evaluates what the row lacks of the prompt (requests that arrive
together in one forward), then decodes one token for every row per step. On CUDA that step is a CUDA graph captured once for all rows, so a step costs
about the same for one conversation as for sixteen. Requests read their tokens from a queue;
a consumer that leaves (a cancelled turn) frees its row at the next step.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from triton_models.llm import GenOptions
from triton_models.llm_pool import shared_prefix

log = logging.getLogger("llm.batch")
TOKEN_WAIT_S = 60.0  # a consumer waits at most this long for its next token (a stuck batcher is an error)


class RowCache:
    """Keys and values of `rows` conversations, every layer `n_ctx` absolute positions (Gemma's
    sliding-window layers too: their window is applied by the mask), plus one scratch row that idle
    rows write to. Attention reads only the first `length` positions (a bucket that covers every
    active row). Duck-types transformers' Cache.update for the attention layers."""

    def __init__(self, config, rows: int, n_ctx: int, dtype, device):
        import torch

        text = config.get_text_config()
        shape = (rows + 1, text.num_key_value_heads, n_ctx, getattr(text, "head_dim", None)
                 or text.hidden_size // text.num_attention_heads)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(text.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(text.num_hidden_layers)]
        self.rows, self.length = rows, n_ctx
        self.spans: list[tuple[int, int, int]] | None = None  # a prefill: (row, first position, tokens) each
        self.span_rows = None  # a prefill: those rows, as a tensor
        self.write_rows = self.positions = None  # a decode step: [rows, 1] each, where each token goes

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self.spans is not None:  # a prefill: each row's new tokens are the last `n` of its line (left-padded)
            width = key_states.shape[2]
            for i, (row, start, n) in enumerate(self.spans):
                keys[row, :, start: start + n] = key_states[i, :, width - n:]
                values[row, :, start: start + n] = value_states[i, :, width - n:]
            return keys[self.span_rows, :, : self.length], values[self.span_rows, :, : self.length]
        keys[self.write_rows, :, self.positions] = key_states.transpose(1, 2)
        values[self.write_rows, :, self.positions] = value_states.transpose(1, 2)
        return keys[: self.rows, :, : self.length], values[: self.rows, :, : self.length]


def buckets(n_ctx: int, smallest: int = 256) -> list[int]:
    """Attention lengths a step may use: 256, 512, ... up to n_ctx (one CUDA graph each)."""
    out, length = [], smallest
    while length < n_ctx:
        out.append(length)
        length *= 2
    return out + [n_ctx]


def attention_masks(positions, length: int, sliding_window: int | None) -> dict:
    """Boolean masks (True: attend) of the queries at `positions` [rows, tokens] over the first `length` positions."""
    import torch

    kv = torch.arange(length, device=positions.device)
    causal = (kv[None, None, :] <= positions[:, :, None])[:, None]
    if not sliding_window:
        return {"full_attention": causal, "sliding_attention": causal}
    sliding = causal & (kv[None, None, :] > positions[:, :, None] - sliding_window)[:, None]
    return {"full_attention": causal, "sliding_attention": sliding}


@dataclass
class Request:
    prompt: list[int]
    opts: GenOptions
    tokens: queue.Queue = field(default_factory=queue.Queue)  # token ids, then None (end) or an exception
    cancelled: bool = False
    row: int = -1
    position: int = 0  # where its next token goes
    produced: int = 0
    cached: int = 0  # prompt tokens found in the row
    generator: object = None
    prefill_only: bool = False  # evaluate the prompt into a row and keep it there; no token (None at once)
    skipped: bool = False       # ... not done: every row was busy

    def next_token(self) -> int | None:
        """The next token id, or None at the end; raises the batcher's error, or TimeoutError when
        nothing came for TOKEN_WAIT_S (a stuck batcher)."""
        try:
            item = self.tokens.get(timeout=TOKEN_WAIT_S)
        except queue.Empty:
            raise TimeoutError(f"llm: nothing from the batcher for {TOKEN_WAIT_S:.0f} s") from None
        if isinstance(item, BaseException):
            raise item
        return item


class Batcher:
    def __init__(self, model, forward, rows: int, n_ctx: int, stop_ids: set[int], cuda_graph: bool):
        import torch

        self.forward, self.rows, self.n_ctx, self.stop_ids = forward, rows, n_ctx, stop_ids
        self.device = model.device
        self.cache = RowCache(model.config, rows, n_ctx, model.dtype, self.device)
        self.window = getattr(model.config.get_text_config(), "sliding_window", None)
        self.row_tokens: list[list[int]] = [[] for _ in range(rows)]  # what each row's cache holds
        self.active: dict[int, Request] = {}
        self.pending: list[Request] = []
        self.wake = threading.Condition()
        # a step's inputs, copied in at once: token, position and cache row of each row (idle: scratch row)
        self.step_inputs = torch.tensor([[0] * rows, [0] * rows, [rows] * rows], device=self.device)[:, :, None]
        self.step_ids, self.step_pos, self.step_rows = self.step_inputs
        self.lengths = buckets(n_ctx)
        self.graphs: dict[int, tuple] = {}  # attention length -> (CUDA graph, its logits)
        self.last_token = [0] * rows
        if cuda_graph and self.device.type == "cuda":
            try:
                for length in self.lengths:
                    self.graphs[length] = self._capture(length)
            except Exception:  # a model whose step cannot be captured still runs, eagerly
                log.exception("llm: the decode step could not be captured as a CUDA graph; decoding eagerly")
                self.graphs = {}
        threading.Thread(target=self._run, name="llm-batcher", daemon=True).start()

    # ------------------------------------------------------------------ model steps
    def _decode(self, length: int):
        self.cache.spans, self.cache.length = None, length
        self.cache.write_rows, self.cache.positions = self.step_rows, self.step_pos
        return self.forward(self.step_ids, self.step_pos, self.cache,
                            attention_masks(self.step_pos, length, self.window))

    def _capture(self, length: int) -> tuple:
        """The decode step of all rows over `length` positions as a CUDA graph (idle rows: scratch row)."""
        import torch

        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._decode(length)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                logits = self._decode(length)
        return graph, logits

    def length_for(self, positions: int) -> int:
        return next(length for length in self.lengths if length >= positions)

    def _prefill(self, reqs: list[Request]):
        """Evaluate, in one forward, what each request's row lacks of its prompt (left-padded to one
        width: every line's last token is its prompt's last); the logits after each prompt."""
        import torch

        spans, ids, positions = [], [], []
        for req in reqs:
            have = self.row_tokens[req.row]
            start = min(shared_prefix(have, req.prompt), len(req.prompt) - 1)  # its last token gives the logits
            req.cached = start
            spans.append((req.row, start, len(req.prompt) - start))
        width = max(n for _, _, n in spans)
        for req, (_, start, n) in zip(reqs, spans):  # padding: token 0 at the first new position, never written
            ids.append([0] * (width - n) + req.prompt[start:])
            positions.append([start] * (width - n) + list(range(start, len(req.prompt))))
        ids = torch.tensor(ids, device=self.device)
        positions = torch.tensor(positions, device=self.device)
        length = self.length_for(max(len(req.prompt) for req in reqs))
        self.cache.spans, self.cache.length = spans, length
        self.cache.span_rows = torch.tensor([row for row, _, _ in spans], device=self.device)
        try:
            logits = self.forward(ids, positions, self.cache, attention_masks(positions, length, self.window))
        finally:
            self.cache.spans = None
        for req in reqs:
            self.row_tokens[req.row] = list(req.prompt)
            req.position = len(req.prompt)
        return logits

    def _sample(self, logits, reqs: dict[int, Request]) -> dict[int, int]:
        """The next token of each row in `reqs` from logits [rows, vocab]: greedy rows by one argmax,
        sampled rows each with its own generator, read back in one transfer (one sync per step, not
        one per row: each sync lets the consumers' threads take the GIL)."""
        import torch

        tokens = logits.argmax(-1)
        for row, req in reqs.items():
            opts = req.opts
            if opts.temperature > 0:
                probs = torch.softmax(logits[row].float() / opts.temperature, -1)
                if opts.top_p < 1.0:
                    sorted_probs, order = probs.sort(descending=True)
                    outside = sorted_probs.cumsum(-1) - sorted_probs > opts.top_p  # the smallest set over top_p
                    probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
                tokens[row] = torch.multinomial(probs, 1, generator=req.generator)[0]
        values = tokens.tolist()
        return {row: values[row] for row in reqs}

    # ------------------------------------------------------------------ the batcher thread
    def submit(self, req: Request) -> None:
        import torch

        if req.opts.temperature > 0:
            req.generator = torch.Generator(device=self.device)
            seed = req.opts.seed if req.opts.seed is not None else int(torch.randint(1 << 62, ()).item())
            req.generator.manual_seed(seed)
        with self.wake:
            self.pending.append(req)
            self.wake.notify()

    def _emit(self, req: Request, token: int) -> None:
        """Hand a token to its consumer; end the request at a stop token or its last token."""
        self.last_token[req.row] = token  # the row's input at the next step
        if token in self.stop_ids:
            self._finish(req)
            return
        req.tokens.put(token)
        req.produced += 1
        if req.produced >= req.opts.max_tokens:
            self._finish(req)

    def _finish(self, req: Request) -> None:
        self.active.pop(req.row, None)
        req.tokens.put(None)

    def _admit(self) -> None:
        with self.wake:
            while not self.pending and not self.active:
                self.wake.wait()
            free = [r for r in range(self.rows) if r not in self.active]
            admitted, waiting = [], []
            # generations first; a prefill is background work: it takes a row left free or none (never waits)
            for req in sorted(self.pending, key=lambda r: r.prefill_only):
                if req.cancelled or (req.prefill_only and not free):
                    req.skipped = not req.cancelled
                    req.tokens.put(None)  # the end (a consumer that left never reads it)
                elif not free:
                    waiting.append(req)
                else:
                    req.row = max(free, key=lambda r: shared_prefix(self.row_tokens[r], req.prompt))
                    free.remove(req.row)
                    admitted.append(req)
            self.pending = waiting
        import torch

        if not admitted:
            return
        for req in admitted:
            self.active[req.row] = req
        with torch.inference_mode():
            logits = self._prefill(admitted)
            generating = {i: req for i, req in enumerate(admitted) if not req.prefill_only}
            tokens = self._sample(logits, generating) if generating else {}
        for i, req in enumerate(admitted):
            if req.prefill_only:  # its prompt stays in the row for the generation that follows
                self._finish(req)
            else:
                self._emit(req, tokens[i])

    def _step(self) -> None:
        import torch

        for row, req in list(self.active.items()):
            if req.cancelled:
                self._finish(req)
        if not self.active:
            return
        with torch.inference_mode():
            ids, pos, rows = [0] * self.rows, [0] * self.rows, [self.rows] * self.rows  # idle: scratch row
            for row, req in self.active.items():
                ids[row], pos[row], rows[row] = self.last_token[row], req.position, row
            self.step_inputs.copy_(torch.tensor([ids, pos, rows])[:, :, None])
            length = self.length_for(max(pos) + 1)
            if length in self.graphs:
                graph, logits = self.graphs[length]
                graph.replay()
            else:
                logits = self._decode(length)
            tokens = self._sample(logits, self.active)
            for row, req in list(self.active.items()):
                self.row_tokens[row].append(self.last_token[row])
                req.position += 1
                self._emit(req, tokens[row])

    def _run(self) -> None:
        while True:
            try:
                self._admit()
                self._step()
            except Exception as exc:  # every request in flight ends with the error; the rows start clean
                log.exception("llm: batch step failed")
                with self.wake:
                    failed = list(self.active.values())
                    self.active.clear()
                    self.row_tokens = [[] for _ in range(self.rows)]
                for req in failed:
                    req.tokens.put(exc)

