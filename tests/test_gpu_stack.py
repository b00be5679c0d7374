"""The GPU benchmark's Whisper (benchmarks/gpu_stack.py) is our CTranslate2 model read into
transformers: checked here on the CPU, on human speech, so a GPU run measures the real model."""
import kocer
import numpy as np

from benchmarks.gpu_stack import GpuWhisper, prepare
from tests.audio_fixtures import korean_clip


def test_converted_whisper_transcribes_like_ours(tmp_path):
    prepare(tmp_path, kokoro_model=False)
    whisper = GpuWhisper(tmp_path, device="cpu")  # every weight mapped, or the constructor fails
    audio, text = korean_clip()
    hyp = whisper.transcribe([audio.astype(np.float32)])[0]
    assert kocer.cer([text], [hyp]) < 0.25, hyp
    # a batch decodes each clip as alone (padding and finished rows do not leak into the others)
    assert whisper.transcribe([audio[: len(audio) // 2], audio])[1] == hyp
