"""ContextPool (triton_models/llm.py) without a model: which context a prompt takes, and waiting."""
from __future__ import annotations

import threading
import time

import numpy as np

from triton_models.llm import ContextPool


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
