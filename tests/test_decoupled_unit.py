"""The decoupled-stream server (triton_models/decoupled.py) with a scripted pb_utils: cancel, bad
input, in-flight tracking and finalize, in milliseconds. The same code runs inside Triton in
test_llm_triton.py / test_tts_triton.py."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from triton_models.decoupled import Streams, request_cancelled

FINAL = 1


class Sender:
    def __init__(self):
        self.sent, self.cancelled, self.done = [], False, threading.Event()

    def is_cancelled(self) -> bool:
        return self.cancelled

    def send(self, response, flags=0):
        self.sent.append((response, flags))
        if flags == FINAL:
            self.done.set()


class Response:
    def __init__(self, output_tensors=None, error=None):
        self.tensors, self.error = output_tensors, error


pb_utils = SimpleNamespace(InferenceResponse=Response, TritonError=str, TRITONSERVER_RESPONSE_COMPLETE_FINAL=FINAL)


def request() -> tuple[SimpleNamespace, Sender]:
    sender = Sender()
    return SimpleNamespace(get_response_sender=lambda: sender), sender


def endless(summary):
    i = 0
    while True:
        time.sleep(0.005)
        yield [i]
        i += 1


def final_summary(summary):
    return [dict(summary)]


def test_a_stream_is_tracked_while_it_runs_and_ends_with_a_final_summary():
    streams = Streams("toy")
    req, sender = request()
    streams.serve(pb_utils, req, lambda s: (item for item in [[1], [2], [3]]), final_summary)
    assert sender.done.wait(2)
    last, flags = sender.sent[-1]
    assert flags == FINAL and last.tensors[0]["status"] == "done" and last.tensors[0]["items"] == 3
    time.sleep(0.05)
    assert streams.in_flight == 0


def test_cancel_stops_the_producer_within_one_item():
    streams = Streams("toy")
    req, sender = request()
    streams.serve(pb_utils, req, endless, final_summary)
    while len(sender.sent) < 3:
        time.sleep(0.005)
    assert streams.in_flight == 1
    sender.cancelled = True
    assert sender.done.wait(2)
    assert sender.sent[-1][0].tensors[0]["status"] == "cancelled"


def test_a_producer_sees_its_own_request_cancelled_and_may_end_early():
    """A producer busy inside one item (a Kokoro decode) asks request_cancelled() and returns; the
    stream still ends as cancelled. Another stream's thread sees its own request, not this one."""
    streams = Streams("toy")
    (req, sender), (other_req, other_sender) = request(), request()
    seen = {}

    def long_item(summary, key):
        yield [0]
        while not request_cancelled():  # one long item, polling as the engine's run gate does
            time.sleep(0.005)
            if key == "other" and sender.cancelled:
                seen["other"] = request_cancelled()
                return
        seen[key] = True

    streams.serve(pb_utils, req, lambda s: long_item(s, "mine"), final_summary)
    streams.serve(pb_utils, other_req, lambda s: long_item(s, "other"), final_summary)
    while len(sender.sent) < 1 or len(other_sender.sent) < 1:
        time.sleep(0.005)
    sender.cancelled = True
    assert sender.done.wait(2) and other_sender.done.wait(2)
    assert seen == {"mine": True, "other": False}
    assert sender.sent[-1][0].tensors[0]["status"] == "cancelled"
    assert other_sender.sent[-1][0].tensors[0]["status"] == "done"


def test_finalize_stops_every_stream_and_refuses_new_ones():
    streams = Streams("toy")
    senders = []
    for _ in range(3):
        req, sender = request()
        streams.serve(pb_utils, req, endless, final_summary)
        senders.append(sender)
    time.sleep(0.05)
    assert streams.in_flight == 3
    t0 = time.monotonic()
    assert streams.finalize(timeout_s=5) == 0
    assert time.monotonic() - t0 < 1.0
    for sender in senders:
        last, flags = sender.sent[-1]
        assert flags == FINAL and last.tensors[0]["status"] == "shutdown"
    req, late = request()
    streams.serve(pb_utils, req, endless, final_summary)
    assert len(late.sent) == 1 and late.sent[0][1] == FINAL
    assert late.sent[0][0].error == "toy: the model is shutting down"


def test_finalize_is_bounded_when_a_producer_hangs():
    streams = Streams("toy")
    release = threading.Event()

    def stuck(summary):
        release.wait(10)
        yield [0]

    req, sender = request()
    streams.serve(pb_utils, req, stuck, final_summary)
    t0 = time.monotonic()
    assert streams.finalize(timeout_s=0.2) == 1
    assert time.monotonic() - t0 < 1.0
    release.set()
    assert sender.done.wait(2)


def test_bad_input_inside_the_producer_is_a_final_error_and_the_stream_is_released():
    streams = Streams("toy")
    req, sender = request()

    def bad(summary):
        raise ValueError("voice 'x' unknown")
        yield

    streams.serve(pb_utils, req, bad, final_summary)
    assert sender.done.wait(2)
    assert sender.sent[-1][0].error == "toy: voice 'x' unknown"
    time.sleep(0.05)
    assert streams.in_flight == 0


def test_a_busy_stream_sends_heartbeats_while_it_sends_nothing_else():
    streams = Streams("toy")
    req, sender = request()

    def slow(summary):
        time.sleep(0.45)  # waiting for the engine behind other streams
        yield [1]
        time.sleep(0.45)  # yielding to another session's critical work
        yield [2]

    streams.serve(pb_utils, req, slow, final_summary, heartbeat_s=0.1)
    assert sender.done.wait(3)
    kinds = ["heartbeat" if isinstance(r.tensors[0], dict) and r.tensors[0].get("heartbeat") else
             "final" if f == FINAL else "item" for r, f in sender.sent]
    first, second = kinds.index("item"), len(kinds) - 1 - kinds[::-1].index("item")
    assert kinds[0] == "heartbeat" and kinds[first + 1:second].count("heartbeat") >= 2
    assert kinds[-1] == "final" and "heartbeat" not in kinds[second:]
    time.sleep(0.3)
    assert sender.sent[-1][1] == FINAL  # nothing after the final response


def test_the_sender_is_never_asked_about_cancellation_after_the_final_response(monkeypatch):
    """Triton frees a request's response factory after its FINAL response; asking is_cancelled then
    crashed tritonserver 2.51. The heartbeat thread could: its wait for the stream's end returns, the
    FINAL response goes out, then it asks. That interleaving is forced here: the heartbeat's wait
    reports "still open" once after the stream has closed."""

    class LateWake(threading.Event):
        def wait(self, timeout=None):
            closed = super().wait(timeout)
            if closed and threading.current_thread().name.endswith("-heartbeat") and not getattr(self, "woke", 0):
                self.woke = 1
                return False
            return closed

    class StrictSender(Sender):
        def __init__(self):
            super().__init__()
            self.late_calls = 0

        def is_cancelled(self) -> bool:
            self.late_calls += self.done.is_set()
            return False

    monkeypatch.setattr(threading, "Event", LateWake)
    streams = Streams("toy")
    sender = StrictSender()
    streams.serve(pb_utils, SimpleNamespace(get_response_sender=lambda: sender),
                  lambda s: (item for item in [[1]]), final_summary, heartbeat_s=0.01)
    assert sender.done.wait(2)
    time.sleep(0.1)
    assert sender.late_calls == 0
