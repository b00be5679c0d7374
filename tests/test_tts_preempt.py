"""A reply's first audio stops another conversation's background decode (engines/run_gate.py).

The real Kokoro weights in-process (the `tts` model through Triton: tests/test_tts_triton.py), and
beside them a fast unit layer that checks the gate's rules with plain functions standing in for runs.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from RealTime_zeroshot_TTS_ko.engines.run_gate import BACKGROUND, LEAD, RunAbandoned, RunGate
from tests.conftest import ROOT

LONG = "오늘 회의에서는 다음 분기의 예산과 일정, 그리고 새로운 프로젝트의 방향에 대해 아주 자세히 논의했습니다."
REPLY = "네, 알겠습니다. 바로 확인해 볼게요."


def timed_run(seconds: float, started: threading.Event | None = None):
    """Stands in for an onnxruntime run: works in 5 ms steps and ends as ORT does when terminated."""
    def fn(options):
        if started is not None:
            started.set()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if options.terminate:
                raise RuntimeError("Exiting due to terminate flag being set to true.")
            time.sleep(0.005)
        return seconds
    return fn


def in_thread(fn, done: list, name: str) -> threading.Thread:
    def body():
        fn()
        done.append(name)
    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_urgent_run_stops_a_background_run_which_then_starts_over():
    gate, done, started, result = RunGate(), [], threading.Event(), {}
    background = in_thread(lambda: result.setdefault("bg", gate.run(timed_run(0.6, started))), done, "background")
    assert started.wait(5)
    t0 = time.monotonic()
    with gate.urgent():
        gate.run(timed_run(0.05))
    urgent_s = time.monotonic() - t0
    done.append("urgent")
    background.join(5)
    assert done == ["urgent", "background"] and result["bg"] == 0.6
    assert urgent_s < 0.3 and gate.preempted == 1


def test_a_stopped_run_of_a_cancelled_request_is_not_started_over():
    """Barge-in cancels a reply mid-decode: its run, stopped for another turn's first audio, must not
    start over (a whole sentence of wasted decoding beside that turn); a live request's run does."""
    gate, started, cancelled, outcome = RunGate(), threading.Event(), threading.Event(), {}

    def cancelled_reply():
        with gate.abandon_when(cancelled.is_set):
            try:
                outcome["run"] = gate.run(timed_run(0.6, started))
            except RunAbandoned:
                outcome["run"] = "abandoned"

    thread = threading.Thread(target=cancelled_reply)
    thread.start()
    assert started.wait(5)
    cancelled.set()
    with gate.urgent():
        gate.run(timed_run(0.05))
    thread.join(5)
    assert outcome["run"] == "abandoned" and gate.preempted == 1
    with gate.abandon_when(lambda: False):  # the block ended: this thread's runs are its own again
        assert gate.run(timed_run(0.01)) == 0.01


def test_without_preemption_an_urgent_run_waits_but_goes_before_queued_background_runs():
    gate, done, started = RunGate(preempt=False), [], threading.Event()
    first = in_thread(lambda: gate.run(timed_run(0.3, started)), done, "running")
    assert started.wait(5)
    queued = in_thread(lambda: gate.run(timed_run(0.01)), done, "queued background")
    time.sleep(0.05)
    with gate.urgent():
        gate.run(timed_run(0.01))
    done.append("urgent")
    first.join(5), queued.join(5)
    assert done == ["running", "urgent", "queued background"] and gate.preempted == 0


def test_urgent_runs_never_stop_each_other_and_real_errors_reach_the_caller():
    gate, done, started = RunGate(), [], threading.Event()

    def urgent_run():
        with gate.urgent():
            gate.run(timed_run(0.3, started))
    first = in_thread(urgent_run, done, "first urgent")
    assert started.wait(5)
    with gate.urgent():
        gate.run(timed_run(0.01))
    done.append("second urgent")
    first.join(5)
    assert done == ["first urgent", "second urgent"] and gate.preempted == 0

    def broken(options):
        raise RuntimeError("bad input")
    with pytest.raises(RuntimeError, match="bad input"):
        gate.run(broken)
    assert gate.run(lambda options: "free again") == "free again"


def run_at(gate: RunGate, level: str, seconds: float, started: threading.Event | None = None) -> float:
    """A run of `level` ("background", "lead" or "first audio") through the gate."""
    if level == "background":
        return gate.run(timed_run(seconds, started))
    with gate.urgent(lead=level == "lead"):
        return gate.run(timed_run(seconds, started))


def race(gate: RunGate, running: str, asked: str, running_s: float = 0.6) -> list[str]:
    """A run of level `running` in progress, and one of level `asked` asked for meanwhile: which ended first."""
    done, started = [], threading.Event()
    thread = in_thread(lambda: run_at(gate, running, running_s, started), done, running)
    assert started.wait(5)
    run_at(gate, asked, 0.05)
    done.append(asked)
    thread.join(5)
    return done


def test_a_first_audio_run_stops_a_lead_run_and_a_lead_run_stops_only_background_runs():
    gate = RunGate()
    assert race(gate, "lead", "first audio") == ["first audio", "lead"] and gate.preempted == 1
    assert race(gate, "background", "lead") == ["lead", "background"] and gate.preempted == 2
    assert race(gate, "first audio", "lead", 0.3) == ["first audio", "lead"] and gate.preempted == 2


def test_without_lead_preemption_a_first_audio_run_waits_for_a_lead_run():
    gate = RunGate(preempt_leads=False)
    gate.watch(LEAD, lambda: True, lambda: None)  # ignored too
    assert race(gate, "lead", "first audio", 0.3) == ["lead", "first audio"] and gate.preempted == 0


def test_a_lead_run_stops_once_for_first_audio_work_elsewhere_and_waits_before_starting_over():
    """`elsewhere` stands for another process's first-audio mark (priority.first_audio)."""
    gate, elsewhere, waits = RunGate(poll_s=0.005), threading.Event(), []
    gate.watch(LEAD, elsewhere.is_set, lambda: waits.append(time.monotonic()))
    started, result = threading.Event(), {}
    lead = threading.Thread(target=lambda: result.setdefault("lead", run_at(gate, "lead", 0.4, started)))
    lead.start()
    assert started.wait(5)
    t0 = time.monotonic()
    elsewhere.set()  # and it stays set: the run started over is not stopped again
    lead.join(5)
    assert result["lead"] == 0.4 and gate.preempted == 1 and len(waits) == 1
    assert waits[0] - t0 < 0.1  # stopped within a few polls

    run_at(gate, "lead", 0.05)  # work already there as a run starts: its caller yielded to it first
    assert gate.preempted == 1

    elsewhere.clear()
    gate.watch(BACKGROUND, elsewhere.is_set, lambda: waits.append(time.monotonic()))
    started, result = threading.Event(), {}
    background = threading.Thread(target=lambda: result.setdefault("bg", run_at(gate, "background", 0.4, started)))
    background.start()
    assert started.wait(5)
    elsewhere.set()
    background.join(5)
    assert result["bg"] == 0.4 and gate.preempted == 2 and len(waits) == 2


# ---------------------------------------------------------------- the real engine
@pytest.fixture(scope="module")
def engine():
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine

    return KokoroEngine.from_dir(next((ROOT / "model_repository" / "tts").glob("*/kokoro")))


def first_audio_beside_a_long_decode(engine) -> tuple[list[str], float, np.ndarray]:
    """A background decode of a long phrase, and a reply's first chunk asked for while it runs:
    (which finished first, the first chunk's seconds, the background's audio)."""
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    tokens = engine.tokens(to_phonemes(LONG))
    done, out = [], {}
    background = in_thread(lambda: out.setdefault("audio", engine.decode(tokens)), done, "background")
    time.sleep(0.3)  # the long decode (~1.5 s here) is under way
    t0 = time.monotonic()
    with engine.urgent():
        next(iter(engine.stream(REPLY, windowed_first=True)))
    first_s = time.monotonic() - t0
    done.append("reply")
    background.join(30)
    return done, first_s, out["audio"]


def test_a_reply_first_chunk_stops_a_long_background_decode_which_is_then_made_whole(engine):
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    alone = engine.decode(engine.tokens(to_phonemes(LONG)))
    before = engine.gate.preempted
    done, first_s, audio = first_audio_beside_a_long_decode(engine)
    print(f"\nreply first chunk beside a long decode: {first_s * 1000:.0f} ms")
    assert done == ["reply", "background"] and engine.gate.preempted == before + 1
    assert np.allclose(audio, alone, atol=1e-4)  # started over: the same audio as undisturbed

    engine.gate.preempt = False  # the same without pre-emption: the reply waits for the long decode
    try:
        done, waited_s, _ = first_audio_beside_a_long_decode(engine)
    finally:
        engine.gate.preempt = True
    print(f"without pre-emption: {waited_s * 1000:.0f} ms")
    assert done == ["background", "reply"] and waited_s > first_s
