"""Korean text normalisation: everything a TTS must read aloud, written out in Hangul.

Numbers take native or Sino-Korean readings by their counter; dates, times, money, units, decimals,
phone numbers and acronyms are spelled; English words go through g2pkk's CMU-dict transliteration.
"""
from __future__ import annotations

import re
import unicodedata

from RealTime_zeroshot_TTS_ko.text import numbers as num

LETTERS = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
    "에이", "비", "씨", "디", "이", "에프", "지", "에이치", "아이", "제이", "케이", "엘", "엠", "엔", "오",
    "피", "큐", "알", "에스", "티", "유", "브이", "더블유", "엑스", "와이", "지"]))

UNITS = [  # longest first; (pattern, reading)
    ("km/h", "킬로미터 퍼 아워"), ("㎞", "킬로미터"), ("km", "킬로미터"), ("kg", "킬로그램"), ("㎏", "킬로그램"),
    ("cm", "센티미터"), ("mm", "밀리미터"), ("ml", "밀리리터"), ("mL", "밀리리터"), ("GB", "기가바이트"),
    ("MB", "메가바이트"), ("TB", "테라바이트"), ("°C", "도"), ("℃", "도"), ("%", "퍼센트"), ("m", "미터"),
    ("g", "그램"), ("L", "리터"), ("l", "리터"), ("h", "시간"), ("s", "초"),
]
SYMBOLS = {"&": " 앤드 ", "+": " 플러스 ", "=": " 는 ", "@": " 골뱅이 ", "#": " 샵 ", "×": " 곱하기 ",
           "÷": " 나누기 ", "·": " ", "/": " ", "~": " ", "_": " ", "*": " "}

_COUNTERS = "|".join(sorted(map(re.escape, num.NATIVE_COUNTERS), key=len, reverse=True))
_UNIT_RE = "|".join(re.escape(u) for u, _ in UNITS)
UNIT_READING = dict(UNITS)

_english = None


def _english_to_hangul(word: str) -> str:
    """English word → Hangul via g2pkk's CMU-dict transliteration (letters when unknown)."""
    global _english
    if _english is None:
        from RealTime_zeroshot_TTS_ko.text.g2p import english_converter

        _english = english_converter()
    out = _english(word)
    if re.search(r"[A-Za-z]", out):  # not in the dictionary: spell it
        return "".join(LETTERS.get(c.upper(), c) for c in word)
    return out


def _number(s: str) -> int:
    return int(s.replace(",", ""))


def _read_counted(m: re.Match) -> str:
    value, counter = _number(m.group(1)), m.group(2)
    if counter == "시" and 0 < value <= 24 or counter != "시" and value < 100:
        return num.native(value) + " " + counter
    return num.sino(value) + " " + counter


def _date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return f"{num.sino(y)} 년 {num.month(mo)} {num.sino(d)} 일"


def _time(m: re.Match) -> str:
    h, mi = int(m.group(1)), int(m.group(2))
    out = f"{num.native(h)} 시"
    if mi:
        out += f" {num.sino(mi)} 분"
    if m.group(3):
        out += f" {num.sino(int(m.group(3)))} 초"
    return out


def _quantity(value: str) -> str:
    if "." in value:
        integer, fraction = value.replace(",", "").split(".", 1)
        return num.decimal(integer, fraction)
    return num.sino(_number(value))


RULES: list[tuple[re.Pattern, object]] = [
    # phone numbers: 010-1234-5678, 02-123-4567
    (re.compile(r"(?<!\d)(0\d{1,2})-(\d{3,4})-(\d{4})(?!\d)"),
     lambda m: " ".join(num.digits(g) for g in m.groups())),
    # ISO and dotted dates
    (re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)"), _date),
    # clock times 3:30, 14:05:10
    (re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?::(\d{2}))?(?!\d)"), _time),
    # money
    (re.compile(r"[₩￦]\s?(\d[\d,]*(?:\.\d+)?)"), lambda m: _quantity(m.group(1)) + " 원"),
    (re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)"), lambda m: _quantity(m.group(1)) + " 달러"),
    (re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?(?:USD|달러)"), lambda m: _quantity(m.group(1)) + " 달러"),
    # months with irregular readings (6월 → 유월, 10월 → 시월)
    (re.compile(r"(?<![\d.])(\d{1,2})\s?월"), lambda m: num.month(int(m.group(1)))),
    # units after a number
    (re.compile(rf"(\d[\d,]*(?:\.\d+)?)\s?({_UNIT_RE})(?![A-Za-z])"),
     lambda m: _quantity(m.group(1)) + " " + UNIT_READING[m.group(2)]),
    # native counters (세 개, 스무 살, 열두 시)
    (re.compile(rf"(\d[\d,]*)\s?({_COUNTERS})"), _read_counted),
    # Sino-Korean counters, spaced like the native ones (삼십 분, 이천 년)
    (re.compile(r"(\d[\d,]*)\s?(개월|분|초|원|년|일|층|호|회|주|세|도|등|위|점|킬로)"),
     lambda m: num.sino(_number(m.group(1))) + " " + m.group(2)),
    # decimals and plain numbers (1,000 → 천)
    (re.compile(r"(\d[\d,]*\.\d+)"), lambda m: _quantity(m.group(1))),
    (re.compile(r"\d{1,3}(?:,\d{3})+|\d+"), lambda m: num.sino(_number(m.group(0)))),
    # acronyms (AI, KTX, GPU) letter by letter; other English words via the CMU dictionary
    (re.compile(r"\b[A-Z]{2,6}s?\b"),
     lambda m: "".join(LETTERS[c] for c in m.group(0).rstrip("s")) + ("스" if m.group(0).endswith("s") else "")),
    (re.compile(r"[A-Za-z]+(?:'[a-z]+)?"), lambda m: _english_to_hangul(m.group(0))),
]


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[\u200b-\u200f\ufeff]", "", text)
    text = re.sub(r"[\U0001F000-\U0001FAFF\u2600-\u27BF]", " ", text)  # emoji and pictographs
    for pattern, repl in RULES:
        text = pattern.sub(repl, text)
    for sym, reading in SYMBOLS.items():
        text = text.replace(sym, reading)
    return re.sub(r"\s+", " ", text).strip()
