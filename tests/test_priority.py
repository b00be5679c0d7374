"""The cross-process critical-path rule (triton_models/priority.py), with real threads and files."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from triton_models.priority import STALE_S, CriticalPath


@contextmanager
def held_for(seconds: float, rule: CriticalPath, what: str, order: float | None = None):
    """A mark held by another thread for `seconds` from now; the block waits on it."""
    release = threading.Event()

    def hold():
        with rule.critical(what, order):
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    time.sleep(0.05)
    threading.Timer(seconds, release.set).start()
    yield
    worker.join()


def test_background_waits_for_critical_work_and_never_starves(tmp_path):
    critical, background = CriticalPath(tmp_path, enabled=True), CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    assert background.yield_to_critical() < 0.05  # nothing critical: no wait
    with held_for(0.3, critical, "tts"):
        waited = background.yield_to_critical()
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


def test_marks_of_a_killed_process_go_at_once(tmp_path):
    """A model stub killed inside critical work (tests/test_faults.py) leaves its mark: no wait for it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    mark = tmp_path / f"llm.{child.pid}.1.0"
    mark.touch()
    assert CriticalPath(tmp_path, enabled=True, max_wait_s=0.3).yield_to_critical() >= 0.25  # alive: it waits
    child.kill()  # not reaped yet: a zombie
    time.sleep(0.1)
    assert CriticalPath(tmp_path, enabled=True).yield_to_critical() < 0.05 and not mark.exists()
    child.wait()


def test_disabled_rule_never_waits(tmp_path):
    with CriticalPath(tmp_path, enabled=True).critical("tts"):
        assert CriticalPath(tmp_path, enabled=False).yield_to_critical() == 0.0


def test_a_later_turns_first_audio_work_waits_for_an_earlier_turns_and_never_starves(tmp_path):
    rule = CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    ended = time.time()
    with held_for(0.5, rule, "llm", order=ended):
        assert rule.yield_to_earlier(ended) < 0.05                 # its own turn's work: no wait
        assert rule.yield_to_earlier(ended - 1.0) < 0.05           # a turn that ended before it: no wait
        assert rule.yield_to_earlier(None) < 0.05                  # work that carries no order: no wait
        with rule.critical("tts"):                                 # unordered critical work ranks nobody
            assert CriticalPath(tmp_path, enabled=True).yield_to_earlier(ended - 2.0) < 0.05
        waited = rule.yield_to_earlier(ended + 0.5)                # a turn that ended later waits for it
    assert 0.2 <= waited < 1.0 and not os.listdir(tmp_path)
    bounded = CriticalPath(tmp_path, enabled=True, max_wait_s=0.2)
    with rule.critical("stt", order=ended):
        assert bounded.yield_to_earlier(ended + 0.5) < 0.5     # slowed, never stopped
    assert not CriticalPath(tmp_path, enabled=False).yield_to_earlier(ended + 0.5)


def test_a_replys_lead_waits_for_any_turns_first_audio_but_not_for_other_critical_work(tmp_path):
    rule = CriticalPath(tmp_path, enabled=True, max_wait_s=2.0)
    with rule.critical("tts"):  # another reply's lead: critical, but no turn's first audio
        assert rule.yield_to_first_audio() < 0.05
    with held_for(0.3, rule, "stt", order=time.time()):
        waited = rule.yield_to_first_audio()
    assert 0.2 <= waited < 1.0 and not os.listdir(tmp_path)
