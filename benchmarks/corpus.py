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

# 30 everyday sentences rich in tense consonants (ㄲㄸㅃㅆㅉ), for front-end checks (text/ipa.py)
TENSE_SENTENCES = [
    "아까 시장에서 싼 사과를 샀는데 꽤 맛있었어요.", "씨앗을 심은 지 일주일 만에 싹이 났습니다.",
    "위층에 사는 이웃이 떡을 가져다주셨어요.", "외할머니 댁은 시골 바닷가 근처에 있어요.",
    "오빠는 축구를 좋아하고 저는 야구를 좋아해요.", "버스 정류장까지 걸어서 십 분쯤 걸립니다.",
    "찌개가 너무 짜서 물을 조금 더 넣었어요.", "토요일 오후 세 시에 도서관 앞에서 만나요.",
    "새로 산 운동화가 발에 꼭 맞아서 기분이 좋아요.", "감자랑 양파를 썰어서 볶음밥을 만들었어요.",
    "올해 겨울은 작년보다 훨씬 추울 거래요.", "휴대폰 충전기를 깜빡하고 집에 두고 왔어요.",
    "회사 근처에 새로 생긴 식당에 가 봤어요.", "뒤에 오는 차가 너무 가까이 붙어서 무서웠어요.",
    "쓰레기는 월요일과 목요일에만 버릴 수 있어요.", "아이들이 운동장에서 공놀이를 하고 있습니다.",
    "엄마가 끓여 주신 된장찌개가 제일 맛있어요.", "비밀번호를 세 번 틀려서 계정이 잠겼어요.",
    "의사 선생님이 푹 쉬라고 하셨어요.", "택시를 타면 공항까지 사십 분이면 충분해요.",
    "가방 안에 지갑이랑 열쇠가 들어 있어요.", "봄이 되면 벚꽃 구경하러 가고 싶어요.",
    "편의점에서 우유 두 개랑 빵 하나를 샀어요.", "시험이 끝나서 마음이 한결 가벼워졌어요.",
    "할아버지께서 옛날이야기를 들려주셨어요.", "주차장이 꽉 차서 한참 동안 빙빙 돌았어요.",
    "책상 위에 있는 서류 좀 가져다줄래요?", "내년에는 꼭 외국어를 하나 더 배우고 싶어요.",
    "빨래를 널어 두었는데 갑자기 비가 쏟아졌어요.", "점원이 친절하게 길을 알려 주었습니다.",
]

# 24 everyday sentences written after the front end's tense-consonant change, to confirm it
EVERYDAY_SENTENCES = [
    "이번 주말에는 집에서 푹 쉬려고 해요.", "다음 달에 이사를 가게 되어서 짐을 싸고 있어요.",
    "고양이가 창가에 앉아서 햇볕을 쬐고 있어요.", "약속 시간에 늦어서 정말 죄송합니다.",
    "이 길로 쭉 가다가 오른쪽으로 도세요.", "냉장고에 남은 반찬으로 저녁을 차렸어요.",
    "요즘 밤마다 잠이 잘 안 와서 힘들어요.", "아침에 일찍 일어나서 산에 다녀왔어요.",
    "조카 생일 선물로 인형을 하나 샀어요.", "우체국은 몇 시에 문을 닫나요?",
    "그 식당은 항상 사람이 많아서 줄을 서야 해요.", "따뜻한 차 한 잔 드릴까요?",
    "어릴 때 살던 동네에 오랜만에 가 봤어요.", "숙제를 다 끝내고 나서 게임을 했어요.",
    "날씨가 흐려서 빨래가 잘 안 말라요.", "친구가 추천해 준 책을 읽고 있어요.",
    "손을 깨끗이 씻고 밥을 먹자.", "작은 실수 때문에 일이 꼬여 버렸어요.",
    "오랜만에 가족끼리 외식을 했습니다.", "그 노래를 들으면 옛날 생각이 나요.",
    "버스를 놓쳐서 다음 차를 기다렸어요.", "꽃집에서 장미 다섯 송이를 샀어요.",
    "이 옷은 세탁기에 넣으면 안 돼요.", "눈이 많이 와서 길이 꽁꽁 얼었어요.",
]

# the TTS benchmarks' sentence sets by name (benchmarks.tts --set, benchmarks.tts_phrasing --sets)
TTS_SETS = {"tts": TTS_SENTENCES, "tense": TENSE_SENTENCES, "everyday": EVERYDAY_SENTENCES}

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
