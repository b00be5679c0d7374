"""Korean test/benchmark material: sentences and real speech made from them (cached WAVs).

Speech comes from ../shared/data when it holds WAV+TXT pairs, else our Kokoro TTS speaks the text
(a real neural voice; Whisper reads it at CER ~0.05), resampled to 16 kHz.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "test_audio"
SHARED_DATA = ROOT.parent / "shared" / "data"

# 32 sentences: numbers, dates, times, money, English words/acronyms, questions, long sentences.
TTS_SENTENCES = [
    "안녕하세요, 만나서 정말 반갑습니다.",
    "오늘 날씨가 맑고 따뜻해서 산책하기 좋아요.",
    "내일 아침 9시 30분에 회의가 있습니다.",
    "이 커피는 한 잔에 4,500원이에요.",
    "2024년 3월 1일은 금요일이었습니다.",
    "사과 3개와 배 2개를 샀어요.",
    "우리 반 학생은 모두 25명입니다.",
    "서울에서 부산까지 KTX로 두 시간 반 정도 걸려요.",
    "AI 기술이 우리 생활을 빠르게 바꾸고 있습니다.",
    "회의 자료는 이메일로 보내 드릴게요.",
    "지금 몇 시예요?",
    "점심 메뉴로 뭘 먹으면 좋을까요?",
    "주말에 영화 보러 갈래요?",
    "이 문제를 어떻게 해결하면 좋을지 같이 생각해 봅시다.",
    "전화번호는 010-1234-5678입니다.",
    "기온이 영하 5도까지 떨어진대요.",
    "할인율은 15%이고 행사는 이번 주까지예요.",
    "비행기는 오후 2시 15분에 출발합니다.",
    "저는 매일 아침 5km씩 달리기를 해요.",
    "도서관은 평일 오전 9시부터 오후 6시까지 엽니다.",
    "어제 본 드라마가 정말 재미있었어요.",
    "혹시 이 근처에 약국이 있나요?",
    "다음 주 월요일까지 보고서를 제출해 주세요.",
    "우리는 작년 여름에 제주도로 가족 여행을 다녀왔습니다.",
    "이번 프로젝트의 예산은 3천만 원으로 정해졌습니다.",
    "스마트폰 배터리가 금방 닳아서 걱정이에요.",
    "주문하신 상품은 내일 오후에 도착할 예정입니다.",
    "한국어를 배우는 외국인이 점점 늘어나고 있어요.",
    "건강을 위해서 물을 하루에 2리터 정도 마시는 게 좋대요.",
    "지하철 2호선을 타고 강남역에서 내리세요.",
    "이 식당은 김치찌개와 된장찌개가 특히 맛있기로 유명해요.",
    "혹시 시간이 괜찮으시면 잠깐 이야기 좀 나눌 수 있을까요?",
]

QUESTIONS = [
    "오늘 저녁 메뉴로 뭘 먹으면 좋을까요?",
    "주말에 가볼 만한 곳을 추천해 주세요.",
    "내일 날씨가 어떨까요?",
    "잠이 안 올 때는 어떻게 하면 좋아요?",
]

_engine = None


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    from RealTime_zeroshot_TTS_ko.engines.base import resample

    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return resample(audio.astype(np.float32), sr, 16000)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def shared_clips() -> list[tuple[np.ndarray, str]]:
    """(16 kHz float audio, reference text) for every WAV with a .txt transcript in shared/data."""
    out = []
    for wav in sorted(SHARED_DATA.glob("**/*.wav")) if SHARED_DATA.exists() else []:
        txt = wav.with_suffix(".txt")
        if txt.exists():
            audio, sr = sf.read(wav, dtype="float32")
            out.append((to_16k(audio, sr), txt.read_text(encoding="utf-8").strip()))
    return out


def synth_clip(text: str, voice: str = "default", pad_s: float = 0.4) -> np.ndarray:
    """16 kHz float32 speech of `text`, with a little silence either side (cached on disk)."""
    global _engine
    key = hashlib.sha1(json.dumps([text, voice, pad_s]).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.wav"
    if path.exists():
        return sf.read(path, dtype="float32")[0]
    if _engine is None:
        from RealTime_zeroshot_TTS_ko import load_engine

        _engine = load_engine("kokoro")
    audio = to_16k(_engine.synthesize(text, voice), _engine.sample_rate)
    pad = np.zeros(int(pad_s * 16000), np.float32)
    audio = np.concatenate([pad, audio, pad])
    CACHE.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, 16000)
    return audio


def stt_clips(n: int) -> list[tuple[np.ndarray, str]]:
    """Shared clips first, then made ones, n in all."""
    clips = shared_clips()[:n]
    for text in TTS_SENTENCES[: n - len(clips)]:
        clips.append((synth_clip(text), text))
    return clips


HUMAN_DEV = ROOT.parent / "shared" / "ko_speech_dev"


def human_clips(with_transcript: bool = True) -> list[tuple[np.ndarray, str, str]]:
    """(16 kHz float audio, transcript, file name) of real people reading Korean (ko_speech_dev, CC BY 4.0)."""
    table = HUMAN_DEV / "transcripts.tsv"
    if not table.exists():
        raise FileNotFoundError(f"{table} is missing: the human speech dev set lives in ../shared/ko_speech_dev")
    out = []
    for line in table.read_text(encoding="utf-8").splitlines()[1:]:
        name, _speaker, _sex, text = line.split("\t")
        audio, sr = sf.read(HUMAN_DEV / name, dtype="float32")
        out.append((to_16k(audio, sr), text, name))
    return out


def voiced_frames(audio: np.ndarray, frame: int) -> np.ndarray:
    """Indices of the frames of `frame` samples whose RMS is above 1/30 of the loudest frame's."""
    n = len(audio) // frame
    rms = np.sqrt(np.mean(np.asarray(audio[: n * frame], np.float32).reshape(n, frame) ** 2, axis=1))
    return np.nonzero(rms > rms.max() / 30)[0]


def trim_to_speech(audio: np.ndarray, keep_ms: int = 60) -> np.ndarray:
    """Cut the recording's trailing silence (last 20 ms frame above 1/30 of the loudest, + keep_ms),
    so a benchmark's clock can start at the true last speech sample."""
    frame = 320
    voiced = voiced_frames(audio, frame)
    end = (voiced[-1] + 1) * frame + keep_ms * 16 if len(voiced) else len(audio)
    return audio[: min(end, len(audio))]
