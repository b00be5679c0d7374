"""The llama.cpp contexts of the `llm` model (triton_models/llm.py) and how they share two cores."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np


def shared_prefix(a, b) -> int:
    """How many tokens two token sequences share from their start."""
    n = min(len(a), len(b))
    differs = np.nonzero(np.asarray(a[:n]) != np.asarray(b[:n]))[0]
    return int(differs[0]) if len(differs) else n


class ContextPool:
    """llama.cpp contexts over one memory-mapped GGUF (the weights are shared, each context has its own
    KV cache), so that conversations generate side by side instead of queueing for one context. A
    generation takes the free context whose cached tokens share the longest prefix with its prompt:
    a conversation comes back to its own KV cache, a new one to the shared system prompt's.

    A prefill (the prompt of a turn still being spoken) only takes a context nobody waits for, and
    gives it up at its next step when a generation wants that context (`yielding`)."""

    def __init__(self, contexts: list):
        self.contexts, self.free = list(contexts), list(contexts)
        self.prefilling: set = set()   # contexts held by a prefill
        self.wanted: set = set()       # ... that a generation waits for: the prefill stops
        self.first_clauses = 0         # generations before their first clause (critical-path work)
        self.cond = threading.Condition()

    @property
    def active(self) -> int:
        """Generations running: they share the cores (a prefill is background work and takes no share)."""
        return len(self.contexts) - len(self.free) - len(self.prefilling)

    @contextmanager
    def first_clause(self):
        """A generation's first clause: critical work, which the others' later tokens wait for, so
        the cores are split among first clauses only (at two conversations, the new turn gets both)."""
        with self.cond:
            self.first_clauses += 1
        try:
            yield
        finally:
            with self.cond:
                self.first_clauses -= 1

    @staticmethod
    def shared_prefix(llm, tokens: list[int]) -> int:
        return shared_prefix(llm._input_ids[: llm.n_tokens], tokens)

    @contextmanager
    def take(self, tokens: list[int]):
        with self.cond:
            # a context being prefilled for this prompt is worth waiting for: it stops within one step
            best = max(self.contexts, key=lambda c: self.shared_prefix(c, tokens))
            if best in self.prefilling and self.shared_prefix(best, tokens) > max(
                    (self.shared_prefix(c, tokens) for c in self.free), default=-1):
                self.wanted.add(best)
                self.cond.wait_for(lambda: best in self.free)
                self.wanted.discard(best)
            self.cond.wait_for(lambda: self.free)
            llm = max(self.free, key=lambda c: self.shared_prefix(c, tokens))
            self.free.remove(llm)
        try:
            yield llm
        finally:
            self.give_back(llm)

    @contextmanager
    def take_for_prefill(self, tokens: list[int]):
        """The free context sharing most of `tokens`, or None when every context is busy."""
        with self.cond:
            llm = max(self.free, key=lambda c: self.shared_prefix(c, tokens)) if self.free else None
            if llm is not None:
                self.free.remove(llm)
                self.prefilling.add(llm)
        try:
            yield llm
        finally:
            if llm is not None:
                self.give_back(llm)

    def yielding(self, llm) -> bool:
        with self.cond:
            return llm in self.wanted

    def give_back(self, llm) -> None:
        with self.cond:
            self.prefilling.discard(llm)
            self.free.append(llm)
            self.cond.notify_all()
