"""Fast unit layer: how a committed turn ends when it is cancelled while its output is still on its
way (a held answer being sent at the commit) or when it does not stop at all. The same session harness
as test_session_unit.py; the real clients' cancel is tested in test_realtime_clients.py."""
from __future__ import annotations

import asyncio

import numpy as np

from orchestrator.triton_client import StreamItem
from tests.fakes.gateway import FakeGateway
from tests.test_session_unit import LOUD, QUIET, Harness


def slow_socket(h: Harness) -> asyncio.Event:
    """Audio frames take 50 ms each to send (a held answer's flush takes a while); the event is set at
    the first one."""
    sent = asyncio.Event()

    async def slow_bytes(data: bytes) -> None:
        h.audio.append(data)
        h.record({"type": "<audio>"})
        sent.set()
        await asyncio.sleep(0.05)

    h.session._send_bytes = slow_bytes
    return sent


async def ignore_cancellation(release: asyncio.Event) -> None:
    """A stuck stage: swallows every cancel until `release` is set."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_cancel_while_a_speculative_answer_is_flushed_still_ends_it_with_response_done():
    """The endpoint commits a speculative turn whose answer is already made: its held audio goes out
    (a client hears it at once) and a response.cancel or barge-in may come before the last of it has.
    That turn was decided: it ends with response.done interrupted, and its unsent audio is dropped.
    (Closing it as if still speculative lost the response.done: an OpenAI SDK client waited forever.)"""
    h = Harness(FakeGateway(llm_delay_s=0.02, reply=["좋아요. "] * 40), speculative_pause_ms=250,
                vad_end_silence_ms=600, max_reply_sentences=0)
    sent = slow_socket(h)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)          # a pause: the speculative turn answers, held
    outbox = h.session.speculative.turn.outbox
    await h.wait_until(lambda: sum(isinstance(item, bytes) for item in outbox._held) >= 4)
    await h.frames(QUIET, 10)         # the endpoint: the held answer starts to flow, the rest follows
    await asyncio.wait_for(sent.wait(), 5)
    assert h.session.responding and outbox._held
    await h.session.interrupt("client")
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted"
    assert "llm" in h.gw.cancelled
    await h.session.close()
    assert [r.status for r in h.db.stored] == ["interrupted"]


async def test_stuck_turn_cannot_freeze_the_listener():
    h = Harness(FakeGateway(stt_delay_s=0), turn_cancel_timeout_s=0.2, speculative_pause_ms=0)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    handle = h.session.current

    release = asyncio.Event()
    await handle.task
    stuck = asyncio.create_task(ignore_cancellation(release))
    handle.task = stuck
    await asyncio.sleep(0)            # it is running (and will swallow the cancel)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ok = await handle.cancel(0.2)
    assert not ok and loop.time() - t0 < 1.0
    await h.frames(LOUD, 20)          # the listener still hears the user
    await h.wait_for("speech.started", turn_id=2)
    release.set()
    await h.session.close()


async def test_an_answer_made_in_full_before_the_endpoint_can_still_be_cancelled_while_it_is_sent():
    """On a fast machine a speculative turn makes its whole answer before the endpoint; at the commit it
    is all sent at once, and a cancel may come before the last of it has gone: the turn is still the
    client's response in progress. Its unsent audio is dropped and it ends (and is stored) interrupted."""
    h = Harness(FakeGateway(reply=["좋아요. "] * 6), speculative_pause_ms=250, vad_end_silence_ms=600,
                max_reply_sentences=0)
    sent = slow_socket(h)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)
    handle = h.session.speculative
    await asyncio.wait({handle.task}, timeout=5)  # the whole answer is made, held
    held = sum(isinstance(item, bytes) for item in handle.turn.outbox._held)
    await h.frames(QUIET, 10)         # the endpoint: it is sent
    await asyncio.wait_for(sent.wait(), 5)
    assert h.session.responding
    await h.session.interrupt("client")
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted"
    assert 0 < len(h.audio) < held
    assert not h.session.responding
    await h.session.close()
    assert [r.status for r in h.db.stored] == ["interrupted"]


async def test_a_turn_that_does_not_stop_still_ends_for_its_client():
    """A stage that swallows cancellation (a stuck model call) is abandoned after the bounded wait;
    the client still gets the answer's end (response.done interrupted), once, and the turn is stored."""
    release = asyncio.Event()

    class StuckTts(FakeGateway):
        def tts_stream(self, model, text, options, request_id=""):
            async def stream():
                yield StreamItem(np.full(2400, 100, np.int16), {"sample_rate": 24000}, "1", False)
                await ignore_cancellation(release)
            return stream()

    h = Harness(StuckTts(), turn_cancel_timeout_s=0.2, speculative_pause_ms=0)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_for("<audio>")
    await h.session.interrupt("client")
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted"
    release.set()
    await h.session.close()
    assert len(h.of("response.done")) == 1
    assert [r.status for r in h.db.stored] == ["interrupted"]
