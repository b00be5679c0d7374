"""The cross-process critical-path rule (triton_models/priority.py), with real threads and files."""
from __future__ import annotations

import os
import threading
import time

from triton_models.priority import STALE_S, CriticalPath


def test_background_waits_for_critical_work_and_never_starves(tmp_path):
    critical, background = CriticalPath(tmp_path, enabled=True), CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    assert background.yield_to_critical() < 0.05  # nothing critical: no wait
    release = threading.Event()

    def run():
        with critical.critical("tts"):
            release.wait(5)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.05)
    threading.Timer(0.3, release.set).start()
    waited = background.yield_to_critical()
    worker.join()
    assert 0.2 <= waited < 1.0 and not os.listdir(tmp_path)  # waited for it; the mark is gone
    bounded = CriticalPath(tmp_path, enabled=True, max_wait_s=0.2)
    with critical.critical("stt"):
        assert bounded.yield_to_critical() < 0.5  # a long critical step slows background, never stops it


def test_stale_marks_of_a_crashed_process_are_ignored(tmp_path):
    mark = tmp_path / "llm.999.1.0"
    mark.touch()
    old = time.time() - STALE_S - 1
    os.utime(mark, (old, old))
    assert CriticalPath(tmp_path, enabled=True).yield_to_critical() < 0.05 and not mark.exists()


def test_disabled_rule_never_waits(tmp_path):
    with CriticalPath(tmp_path, enabled=True).critical("tts"):
        assert CriticalPath(tmp_path, enabled=False).yield_to_critical() == 0.0


def test_a_later_turns_first_audio_work_waits_for_an_earlier_turns_and_never_starves(tmp_path):
    rule = CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    release = threading.Event()
    ended = time.time()

    def earlier_turn():
        with rule.critical("llm", order=ended):
            release.wait(5)

    worker = threading.Thread(target=earlier_turn)
    worker.start()
    time.sleep(0.05)
    assert rule.yield_to_earlier(ended) < 0.05                 # its own turn's work: no wait
    assert rule.yield_to_earlier(ended - 1.0) < 0.05           # a turn that ended before it: no wait
    assert rule.yield_to_earlier(None) < 0.05                  # work that carries no order: no wait
    with rule.critical("tts"):                                 # unordered critical work ranks nobody
        assert CriticalPath(tmp_path, enabled=True).yield_to_earlier(ended - 2.0) < 0.05
    threading.Timer(0.3, release.set).start()
    waited = rule.yield_to_earlier(ended + 0.5)                # a turn that ended later waits for it
    worker.join()
    assert 0.2 <= waited < 1.0 and not os.listdir(tmp_path)
    bounded = CriticalPath(tmp_path, enabled=True, max_wait_s=0.2)
    with rule.critical("stt", order=ended):
        assert bounded.yield_to_earlier(ended + 0.5) < 0.5     # slowed, never stopped
    assert not CriticalPath(tmp_path, enabled=False).yield_to_earlier(ended + 0.5)


def test_a_replys_lead_waits_for_any_turns_first_audio_but_not_for_other_critical_work(tmp_path):
    rule = CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    with rule.critical("tts"):  # another reply's lead: critical, but no turn's first audio
        assert rule.yield_to_first_audio() < 0.05
    release = threading.Event()

    def first_audio():
        with rule.critical("stt", order=time.time()):
            release.wait(5)

    worker = threading.Thread(target=first_audio)
    worker.start()
    time.sleep(0.05)
    threading.Timer(0.3, release.set).start()
    waited = rule.yield_to_first_audio()
    worker.join()
    assert 0.2 <= waited < 1.0 and not os.listdir(tmp_path)
