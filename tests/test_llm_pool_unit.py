"""ContextPool (triton_models/llm.py) without a model: which context a prompt takes, and waiting."""
from __future__ import annotations

import threading
import time

import numpy as np

from triton_models.llm_pool import ContextPool
from triton_models.priority import CriticalPath


class CachedContext:
    """What the pool reads of a llama.cpp context: its cached tokens."""

    def __init__(self, tokens: list[int]):
        self._input_ids = np.array(tokens + [0] * 8, dtype=np.intc)
        self.n_tokens = len(tokens)


def test_a_prompt_takes_the_free_context_holding_its_longest_prefix():
    system, mine, other = [1, 2, 3], [1, 2, 3, 10, 11, 12], [1, 2, 3, 20, 21]
    pool = ContextPool([CachedContext(other), CachedContext(mine), CachedContext([])])
    with pool.take(mine + [13, 14]) as ctx:
        assert ctx is pool.contexts[1] and pool.active == 1
        with pool.take(mine + [13]) as second:  # its own context is busy: the next longest prefix
            assert second is pool.contexts[0]
    assert pool.active == 0
    assert ContextPool.shared_prefix(pool.contexts[2], system) == 0
    assert ContextPool.shared_prefix(pool.contexts[1], system) == 3


def test_a_generation_waits_for_a_free_context():
    pool = ContextPool([CachedContext([])])
    got = []

    def second():
        with pool.take([1]):
            got.append(time.monotonic())

    with pool.take([1]):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.2)
        assert not got  # still waiting
        released = time.monotonic()
    waiter.join(2)
    assert got and got[0] >= released


def test_a_prefill_takes_only_a_free_context_and_stops_for_a_generation_that_wants_it():
    prompt = [1, 2, 3, 4, 5, 6]
    pool = ContextPool([CachedContext(prompt[:4]), CachedContext([])])
    steps, taken = [], []
    single = ContextPool([CachedContext([])])
    with single.take([9]):  # every context busy: no prefill
        with single.take_for_prefill([7]) as none_left:
            assert none_left is None
    with pool.take_for_prefill(prompt) as ctx:
        assert ctx is pool.contexts[0] and pool.active == 0  # a prefill takes no share of the cores

        def generation():
            with pool.take(prompt + [7]) as got:
                taken.append(got)

        waiter = threading.Thread(target=generation)
        waiter.start()
        for _ in range(200):  # the prefill's steps: it stops once the generation wants its context
            if pool.yielding(ctx):
                break
            steps.append(1)
            time.sleep(0.01)
        assert pool.yielding(ctx) and not taken  # the generation waits for the longer prefix...
    waiter.join(2)
    assert taken == [pool.contexts[0]]  # ...and gets it, not the free empty context


def test_a_first_clause_shares_the_cores_only_with_other_first_clauses(tmp_path):
    """Later tokens wait for critical work (a first clause is): while one conversation's reply goes
    on, the next turn's first clause gets both cores; two first clauses get one each."""
    from triton_models.llm import LlamaCppEngine

    pool = ContextPool([CachedContext([1]), CachedContext([2])])
    engine = LlamaCppEngine.__new__(LlamaCppEngine)  # the thread rule only: no model loaded
    engine.pool, engine.n_threads, engine.priority = pool, 2, CriticalPath(tmp_path)
    with pool.take([1]):  # a reply past its first clause
        assert engine.threads_now(2) == 2
        with pool.take([2]), pool.first_clause():  # the other conversation's new turn
            assert engine.threads_now(2, first_clause=True) == 2
            assert engine.threads_now(2) == 1  # the later tokens, when they run: their share
            with pool.first_clause():
                assert engine.threads_now(2, first_clause=True) == 1
            engine.priority = CriticalPath(tmp_path, enabled=False)  # later tokens would not wait
            assert engine.threads_now(2, first_clause=True) == 1
