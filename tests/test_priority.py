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
