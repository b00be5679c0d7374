"""The windowed first chunk of Kokoro (graph split at the decoder): earlier audio, same words, no click.

Runs the real Kokoro weights from the model repository and our Whisper in-process.
"""
from __future__ import annotations

import kocer
import numpy as np
import pytest

from tests.conftest import ROOT

SENTENCES = ["안녕하세요, 오늘 날씨가 정말 좋네요.", "네, 김치의 주재료는 배추와 고춧가루예요.",
             "서울은 대한민국의 수도입니다.", "오늘 회의는 세 시에 시작합니다."]


@pytest.fixture(scope="module")
def engine():
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine

    return KokoroEngine.from_dir(next((ROOT / "model_repository" / "tts").glob("*/kokoro")))


def test_split_graph_reproduces_the_one_call_audio(engine):
    tokens = engine.tokens("an.njʌŋ ha.se.jo")
    profile = engine.voices.get("default")
    style = profile.style[len(tokens) - 1].reshape(1, 256).astype(np.float32)
    feeds = {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style,
             "speed": np.array([profile.speed], np.float32)}
    feats = engine.split.features(feeds)
    whole = engine.split.decode(feats, style, 0, feats[0].shape[-1])
    assert np.allclose(whole, engine.decode(tokens), atol=1e-4)


def test_windowed_first_phrase_comes_in_two_parts_without_a_click(engine):
    for text in SENTENCES:
        chunks = list(engine.stream(text, windowed_first=True))
        first, second = chunks[0].audio, chunks[1].audio
        assert 0.3 * 24000 < len(first) < 0.8 * 24000  # lead-in trimmed + 20 frames of speech
        audio, seam = np.concatenate([first, second]), len(first)
        plain = np.concatenate([c.audio for c in engine.stream(text)])
        # no jump at the seam beyond what the one-call audio has at the same place (±20 ms)
        jump = np.abs(np.diff(audio))[seam - 240: seam + 240].max()
        assert jump <= 1.25 * np.abs(np.diff(plain))[seam - 480: seam + 480].max() + 0.01, text
        # a click is a broadband spike: 5 ms second-difference energy at the seam vs the 200 ms around it
        curve = np.abs(np.diff(audio, 2))
        energy = np.array([np.mean(curve[i:i + 120] ** 2) for i in range(0, len(curve) - 120, 120)])
        k = seam // 120
        assert energy[k - 1:k + 2].max() <= 4 * np.median(energy[max(0, k - 20):k + 20]), f"click in {text!r}"


def test_windowed_audio_is_as_intelligible(engine):
    from RealTime_zeroshot_TTS_ko.engines.base import resample
    from triton_models.stt import SttOptions, WhisperTranscriber

    stt = WhisperTranscriber(next((ROOT / "model_repository" / "stt").glob("*/whisper")))
    hyps = {False: [], True: []}
    for text in SENTENCES:
        for windowed in hyps:
            audio = np.concatenate([c.audio for c in engine.stream(text, windowed_first=windowed)])
            hyps[windowed].append(stt.transcribe(resample(audio, 24000, 16000), SttOptions(beam_size=5))["text"])
    plain, windowed = kocer.cer(SENTENCES, hyps[False]), kocer.cer(SENTENCES, hyps[True])
    print(f"\nCER plain {plain:.3f} windowed {windowed:.3f}: {hyps[True]}")
    assert windowed <= max(0.12, plain + 0.03)
