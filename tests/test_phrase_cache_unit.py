"""PhraseCache (triton_models/tts.py) without an engine: LRU, the voice profile it was made with."""
from __future__ import annotations

from triton_models.tts import PhraseCache


class Profile:
    """Stands in for a voice profile: the cache compares identity only."""


def test_an_entry_serves_only_the_profile_it_was_made_with_and_the_oldest_goes_first():
    cache, voice, refitted = PhraseCache(size=2, max_chars=10), Profile(), Profile()
    cache.put(("네.", "default", None, True), voice, ["a"])
    assert cache.get(("네.", "default", None, True), voice) == ["a"]
    assert cache.get(("네.", "default", None, True), refitted) is None  # re-enrolled: synthesise again
    assert cache.get(("네.", "default", None, False), voice) is None     # not the windowed first chunk
    cache.put(("안녕.", "default", None, True), voice, ["b"])
    cache.get(("네.", "default", None, True), voice)                     # used: the newest now
    cache.put(("좋아요.", "default", None, True), voice, ["c"])
    assert cache.get(("안녕.", "default", None, True), voice) is None     # the least recently used left
    assert cache.get(("네.", "default", None, True), voice) == ["a"]
    cache.put(("이 문장은 열 글자보다 길어요.", "default", None, True), voice, ["d"])
    assert cache.get(("이 문장은 열 글자보다 길어요.", "default", None, True), voice) is None
    cache.put(("빈 것", "default", None, True), voice, [])               # a cancelled sentence: nothing kept
    assert cache.get(("빈 것", "default", None, True), voice) is None
