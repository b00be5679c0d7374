"""Korean number reading: Sino-Korean (일, 이, 삼 …) and native (하나/한, 둘/두 …) numerals."""
from __future__ import annotations

SINO_DIGITS = "영일이삼사오육칠팔구"
SMALL_UNITS = ["", "십", "백", "천"]
BIG_UNITS = ["", "만", "억", "조", "경"]

NATIVE_ONES = ["", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉"]
NATIVE_ONES_ATTR = ["", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉"]  # before a counter
NATIVE_TENS = ["", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔"]

# Counters read with native numerals (1–99); anything else takes Sino-Korean.
NATIVE_COUNTERS = (
    "개", "명", "시", "살", "마리", "잔", "권", "장", "병", "대", "그루", "채", "벌", "켤레", "가지",
    "군데", "사람", "번째", "번", "시간", "달", "척", "통", "송이", "봉지", "곳", "분들",
)


def _four_digits(n: int) -> str:
    """0 < n < 10000, Sino-Korean; the 1 before 십/백/천 is silent (십, 백, 천 not 일십)."""
    out = []
    for power in range(3, -1, -1):
        d = (n // 10 ** power) % 10
        if d == 0:
            continue
        out.append(("" if d == 1 and power > 0 else SINO_DIGITS[d]) + SMALL_UNITS[power])
    return "".join(out)


def sino(n: int) -> str:
    if n == 0:
        return "영"
    if n < 0:
        return "마이너스 " + sino(-n)
    groups, out = [], []
    while n:
        groups.append(n % 10000)
        n //= 10000
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        word = _four_digits(g)
        if i == 1 and g == 1:  # 만 not 일만
            word = ""
        out.append(word + BIG_UNITS[i])
    return "".join(out)


def native(n: int, attributive: bool = True) -> str:
    """Native reading for 1–99 (스무 살, 한 개); larger numbers: Sino hundreds + native rest."""
    if n <= 0:
        return sino(n)
    if n >= 100:
        rest = n % 100
        return sino(n - rest) + (native(rest, attributive) if rest else "")
    tens, ones = divmod(n, 10)
    ten_word = NATIVE_TENS[tens]
    if attributive and tens == 2 and ones == 0:
        ten_word = "스무"
    one_word = (NATIVE_ONES_ATTR if attributive else NATIVE_ONES)[ones]
    return ten_word + one_word


def digits(s: str, zero: str = "공") -> str:
    """Digit by digit, as phone numbers are read (0 → 공)."""
    return "".join(zero if c == "0" else SINO_DIGITS[int(c)] for c in s if c.isdigit())


def decimal(integer: str, fraction: str) -> str:
    return sino(int(integer or "0")) + " 점 " + "".join(SINO_DIGITS[int(c)] for c in fraction)


def month(n: int) -> str:
    return {6: "유", 10: "시"}.get(n, sino(n)) + "월"
