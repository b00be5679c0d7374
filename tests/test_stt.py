"""Whisper through the real Triton: Korean transcription accuracy, silence and noise give nothing."""
from __future__ import annotations

import kocer
import numpy as np
import pytest

from orchestrator.triton_client import TritonCallError
from tests.audio_fixtures import korean_clip, noise, to_pcm16

CER_CEILING = 0.15  # Whisper base on this clip; a regression in front end or decoding breaks it


async def test_korean_clip_transcribed_with_low_cer(gateway):
    audio, reference = korean_clip()
    result = await gateway.transcribe("stt", to_pcm16(audio), language="ko", beam_size=5)
    cer = kocer.cer(reference, result.text)
    print(f"\nSTT reference: {reference}\nSTT hypothesis: {result.text}\nSTT CER: {cer:.3f}")
    assert result.model_version == "1"
    assert cer <= CER_CEILING


@pytest.mark.parametrize("audio", [np.zeros(16000 * 3, np.float32), noise(3.0, 0.002), noise(3.0, 0.05, seed=1)],
                         ids=["digital-silence", "room-hiss", "loud-white-noise"])
@pytest.mark.parametrize("vad", [True, False], ids=["whisper-vad", "listener-segmented"])
async def test_silence_and_noise_give_empty_transcript(gateway, audio, vad):
    result = await gateway.transcribe("stt", to_pcm16(audio), vad=vad)
    assert result.text == "", result.info


async def test_partial_mode_is_fast_path(gateway):
    audio, _ = korean_clip()
    result = await gateway.transcribe("stt", to_pcm16(audio[: 16000 * 2]), partial=True)
    assert result.info["audio_s"] == pytest.approx(2.0, abs=0.01)
    assert result.text  # two seconds of speech say something


async def test_bad_options_are_a_clear_error(gateway):
    with pytest.raises(TritonCallError, match="beam_size"):
        await gateway.transcribe("stt", to_pcm16(np.zeros(16000, np.float32)), beam_size=99)


async def test_short_encoder_window_through_triton_keeps_the_text(gateway):
    """Finals use a 10 or 15 s encoder window for utterances that fit (the pinned ctranslate2 accepts
    fewer than 3000 frames); the result matches the 30 s window within the CER ceiling."""
    audio, reference = korean_clip()
    short = await gateway.transcribe("stt", to_pcm16(audio))
    full = await gateway.transcribe("stt", to_pcm16(audio), window_s=30)
    assert short.info["window_s"] == 15 and full.info["window_s"] == 30
    assert kocer.cer(reference, short.text) <= CER_CEILING
    assert kocer.cer(full.text, short.text) <= 0.1


async def test_a_final_without_whispers_vad_keeps_the_words(gateway):
    """The listener's finals skip Whisper's own VAD pass (Silero already segmented the speech)."""
    audio, reference = korean_clip()
    result = await gateway.transcribe("stt", to_pcm16(audio), vad=False)
    assert kocer.cer(reference, result.text) <= CER_CEILING


def test_ctranslate2_encoder_accepts_a_short_window():
    import ctranslate2
    from faster_whisper.transcribe import get_ctranslate2_storage

    from tests.conftest import ROOT
    from triton_models.stt import WhisperTranscriber, encoder_window_s, max_new_tokens

    assert ctranslate2.__version__ == "4.8.5"  # the version whose short-window encode is tested here
    engine = WhisperTranscriber(next((ROOT / "model_repository" / "stt").glob("*/whisper")))
    for frames in (1000, 1500):
        features = np.zeros((1, 80, frames), np.float32)
        out = engine.model.model.encode(get_ctranslate2_storage(features))
        assert list(out.shape) == [1, frames // 2, 512]
    assert [encoder_window_s(s) for s in (3.0, 8.0, 9.0, 13.0, 14.0)] == [10, 10, 15, 15, 30]
    assert encoder_window_s(9.0, requested=10) == 30 and encoder_window_s(3.0, requested=30) == 30
    assert max_new_tokens(3.0) < max_new_tokens(10.0) <= 440


async def test_a_prefix_from_the_partials_starts_the_final_and_the_rest_is_decoded(gateway):
    """The words two partials agreed on are forced as the transcript's start; Whisper decodes the rest
    of the utterance after them (the same words as without the prefix, within the CER ceiling)."""
    audio, reference = korean_clip()
    plain = await gateway.transcribe("stt", to_pcm16(audio))
    words = plain.text.split()
    prefix = " ".join(words[: len(words) // 2])
    given = await gateway.transcribe("stt", to_pcm16(audio), prefix=prefix)
    assert given.text.startswith(prefix) and len(given.text) > len(prefix) + 2, given.text
    assert kocer.cer(reference, given.text) <= CER_CEILING
    with pytest.raises(TritonCallError, match="prefix longer"):
        await gateway.transcribe("stt", to_pcm16(audio), prefix="가" * 400)
