"""The Korean prompt set of benchmarks/answers.py (written for this benchmark; not tuned on replies).

Each case: kind, user text, optional history [(user, assistant)], optional recalled memories
(user facts, relevant or not), accepted keywords (any one counts; spaces ignored).
"""
from __future__ import annotations

FACTUAL = [
    ("한국의 수도는 어디예요?", ["서울"]),
    ("일본의 수도는 어디인가요?", ["도쿄", "동경"]),
    ("하늘은 보통 무슨 색이에요?", ["파란", "푸른", "파랗", "하늘색"]),
    ("김치의 주재료는 뭐예요?", ["배추", "무"]),
    ("일주일은 며칠이에요?", ["7", "칠"]),
    ("물은 몇 도에서 끓어요?", ["100", "백"]),
    ("한글을 만든 왕은 누구예요?", ["세종"]),
    ("지구에서 가장 큰 바다는 어디예요?", ["태평양"]),
    ("바나나는 보통 무슨 색이에요?", ["노란", "노랗"]),
    ("한국 전통 명절 중 음력 팔월 십오일은 뭐예요?", ["추석", "한가위"]),
    ("얼음은 물이 어떻게 된 거예요?", ["얼", "고체", "차갑"]),
    ("태양은 어느 쪽에서 떠요?", ["동쪽", "동"]),
    ("한국에서 가장 높은 산은 뭐예요?", ["한라산"]),
    ("사과는 과일이에요 채소예요?", ["과일"]),
]

CHITCHAT = [
    "하이! 오랜만이에요.",
    "오늘 너무 피곤하네요.",
    "주말에 뭐 하면 좋을까요?",
    "방금 점심 먹었어요.",
    "요즘 날씨가 많이 추워졌어요.",
    "저 내일 시험 봐요.",
    "심심한데 얘기 좀 해요.",
    "고마워요, 덕분에 기분이 좋아졌어요.",
    "잘 자요!",
    "오늘 회사에서 칭찬받았어요.",
]

MULTI_TURN = [  # (history, follow-up, keywords; [] = no fact to check)
    ([("저는 커피를 정말 좋아해요.", "커피를 좋아하시는군요! 어떤 커피를 즐겨 드세요?")],
     "제가 뭘 좋아한다고 했죠?", ["커피"]),
    ([("다음 주에 제주도로 여행 가요.", "좋겠네요! 제주도에서 뭘 하실 계획이에요?")],
     "제가 어디로 여행 간다고 했죠?", ["제주"]),
    ([("강아지를 한 마리 키우고 있어요.", "귀엽겠어요. 강아지 이름이 뭐예요?"), ("이름은 초코예요.", "초코, 예쁜 이름이네요.")],
     "우리 강아지 이름 기억해요?", ["초코"]),
    ([("오늘 비가 와서 우산을 샀어요.", "잘하셨어요. 비 맞지 않게 조심하세요.")], "그래서 기분이 좀 그래요.", []),
    ([("요즘 운동을 시작했어요.", "멋지네요! 어떤 운동을 하세요?")], "수영이요.", []),
    ([("배가 고파요.", "뭐 드시고 싶은 거 있어요?")], "매운 게 먹고 싶어요.", []),
    ([("저는 서른 살이에요.", "그렇군요. 반가워요.")], "제 나이가 몇 살이라고 했죠?", ["서른", "30"]),
    ([("한국의 수도는 어디예요?", "한국의 수도는 서울이에요.")], "그럼 부산은요?", ["부산", "도시", "항구"]),
]

IRRELEVANT_MEMORY = [  # memories recalled but unrelated: they must not be recited; the question is answered
    (["저는 부산에 살아요", "고양이를 두 마리 키워요"], "하늘은 보통 무슨 색이에요?", ["파란", "푸른", "파랗", "하늘색"]),
    (["제 이름은 민수예요"], "일주일은 며칠이에요?", ["7", "칠"]),
    (["저는 매운 음식을 싫어해요", "동생이 대학생이에요"], "오늘 너무 피곤하네요.", []),
    (["지난주에 이사했어요"], "한글을 만든 왕은 누구예요?", ["세종"]),
    (["저는 간호사로 일해요", "주말마다 등산을 가요"], "방금 점심 먹었어요.", []),
    (["아침마다 커피를 마셔요"], "물은 몇 도에서 끓어요?", ["100", "백"]),
    (["딸이 초등학생이에요"], "주말에 뭐 하면 좋을까요?", []),
    (["저는 기타를 배워요", "여름을 좋아해요"], "한국에서 가장 높은 산은 뭐예요?", ["한라산"]),
]

MEMORY_USE = [  # a fact from an earlier session, recalled and needed for the answer
    (["제 이름은 민수예요"], "제 이름이 뭐라고 했죠?", ["민수"]),
    (["고양이를 두 마리 키워요"], "제가 고양이를 몇 마리 키운다고 했죠?", ["두", "2"]),
    (["저는 대전에 살아요"], "제가 어디 산다고 했었죠?", ["대전"]),
    (["제 생일은 오월 오일이에요"], "제 생일이 언제라고 했죠?", ["오월", "5월"]),
    (["저는 피아노를 십 년 쳤어요"], "제가 무슨 악기를 친다고 했죠?", ["피아노"]),
    (["남편 이름은 준호예요"], "제 남편 이름 기억나요?", ["준호"]),
]

# (query, stored user memory, relevant?) for calibrating the e5 recall threshold
RELEVANCE_PAIRS = [
    ("제 이름이 뭐라고 했죠?", "제 이름은 민수예요", True),
    ("우리 고양이 몇 마리라고 했지?", "고양이를 두 마리 키워요", True),
    ("제가 어디 산다고 했었죠?", "저는 대전에 살아요", True),
    ("제 생일 기억해요?", "제 생일은 오월 오일이에요", True),
    ("제가 무슨 악기 친다고 했죠?", "저는 피아노를 십 년 쳤어요", True),
    ("남편 이름 기억나요?", "남편 이름은 준호예요", True),
    ("내가 좋아하는 음료가 뭐였지?", "아침마다 커피를 마셔요", True),
    ("제 직업이 뭐라고 했죠?", "저는 간호사로 일해요", True),
    ("주말에 제가 뭐 한다고 했죠?", "주말마다 등산을 가요", True),
    ("제가 싫어하는 음식 기억해요?", "저는 매운 음식을 싫어해요", True),
    ("우리 딸 몇 학년이라고 했죠?", "딸이 초등학생이에요", True),
    ("제가 배우는 악기가 뭐였죠?", "저는 기타를 배워요", True),
    ("하늘은 보통 무슨 색이에요?", "고양이를 두 마리 키워요", False),
    ("일주일은 며칠이에요?", "제 이름은 민수예요", False),
    ("오늘 너무 피곤하네요.", "동생이 대학생이에요", False),
    ("한글을 만든 왕은 누구예요?", "지난주에 이사했어요", False),
    ("방금 점심 먹었어요.", "저는 간호사로 일해요", False),
    ("물은 몇 도에서 끓어요?", "아침마다 커피를 마셔요", False),
    ("주말에 뭐 하면 좋을까요?", "딸이 초등학생이에요", False),
    ("한국에서 가장 높은 산은 뭐예요?", "여름을 좋아해요", False),
    ("잘 자요!", "저는 부산에 살아요", False),
    ("요즘 날씨가 많이 추워졌어요.", "제 생일은 오월 오일이에요", False),
    ("저 내일 시험 봐요.", "남편 이름은 준호예요", False),
    ("김치의 주재료는 뭐예요?", "저는 피아노를 십 년 쳤어요", False),
]


def cases() -> list[dict]:
    out = [{"kind": "factual", "user": q, "keywords": k} for q, k in FACTUAL]
    out += [{"kind": "chitchat", "user": q, "keywords": []} for q in CHITCHAT]
    out += [{"kind": "multi_turn", "user": q, "history": h, "keywords": k} for h, q, k in MULTI_TURN]
    out += [{"kind": "irrelevant_memory", "user": q, "memories": m, "keywords": k} for m, q, k in IRRELEVANT_MEMORY]
    out += [{"kind": "memory_use", "user": q, "memories": m, "keywords": k} for m, q, k in MEMORY_USE]
    out += [{"kind": "statement", "user": t, "keywords": []} for t in human_statements()]
    return out


def human_statements() -> list[str]:
    """What real people said, not written by us: the transcripts of ../shared/ko_speech_dev (read
    news and book sentences). A reply should answer them, not read them back."""
    from benchmarks.corpus import HUMAN_DEV

    table = HUMAN_DEV / "transcripts.tsv"
    if not table.exists():
        return []
    rows = [line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [row[3].strip() for row in rows if len(row) > 3 and row[3].strip()]
