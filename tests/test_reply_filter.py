"""The reply guard and prompt builder (fast): what small models were seen to do on real recordings."""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.metrics import TurnClock
from orchestrator.settings import DEFAULT_SYSTEM_PROMPT
from orchestrator.stages.prompting import EXEMPLARS, build_messages, reply_guard
from orchestrator.stages.reply_filter import hangul_share, strip_format
from orchestrator.stages.respond import ResponseResult, respond
from tests.fakes.gateway import FakeGateway


@dataclass
class Memory:
    text: str
    role: str = "user"


def test_recited_prompt_and_memory_are_dropped_but_used_memory_stays():
    memories = [Memory("제 이름은 민수예요, 고양이를 두 마리 키워요"), Memory("비서의 긴 대답", role="assistant")]
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, memories, "제 이름이 뭐라고 했죠?")
    assert guard.clean("당신은 한국어로 대화하는 음성 비서입니다.") == ""
    assert guard.clean("사용자의 말에 자연스러운 존댓말 한두 문장으로 바로 답하세요.") == ""
    assert guard.clean("사용자가 전에 한 말: 제 이름은 민수예요, 고양이를 두 마리 키워요") == ""
    assert guard.clean("민수님이라고 하셨어요.") == "민수님이라고 하셨어요."
    assert guard.clean("오늘 날씨가 참 좋네요.") == "오늘 날씨가 참 좋네요."


def test_echo_of_the_user_is_dropped():
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "드라마 관계자분들은 모두 회의실로 들어와 주십시오.")
    assert guard.clean("드라마 관계자분들은 모두 회의실로 들어와 주십시오.") == ""
    assert guard.clean("네, 회의실로 바로 안내해 드릴게요.") != ""


def test_a_sentence_that_is_one_stretch_of_the_users_words_is_dropped_even_for_a_question():
    """Fresh sessions on ko_speech_dev: the 0.5B said a read-out sentence's end back ("네, 여러 차례의
    공정을 거쳐야 한다."), or the question itself; too short a stretch for the 20-character rule."""
    stated = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "한 잔의 커피가 소비자에게 전해지기 위해서는 여러 차례의 공정을 거쳐야 한다.")
    assert stated.clean("네, 여러 차례의 공정을 거쳐야 한다.") == ""
    asked = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "대부분 전기는 기업이 사용, 가정용 전기에 누진제 적용하는 국가 거의 "
                                                   "없어. 많이 쓴다고 돈 더 내게 하는 상품이 어디 있나?")
    assert asked.clean("많은 쓴다고 돈 더 내게 하는 상품이 어디 있나?") == ""
    walked = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "그는 이리저리 피하면서 길 한 옆으로 걸어갔다")
    assert walked.clean("이리저리를 피하면서 길 한 옆으로 걸어갔다.") == ""  # a particle put in
    walked = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "그는 이리저리 피하면서 길 한 옆으로 걸어갔다")
    assert walked.clean("이리저리를 피하면서") == ""  # its first chunk: held back with its sentence
    assert walked.clean("길 한 옆으로 걸어갔다.") == ""
    # an answer that restates the question stays
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, [], "한국에서 가장 높은 산은 어디예요?").clean(
        "한국에서 가장 높은 산은 한라산이에요.") == "한국에서 가장 높은 산은 한라산이에요."
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, [], "서울에서 부산까지 기차로 얼마나 걸려요?").clean(
        "서울에서 부산까지 기차로 두 시간 반 걸려요.") != ""


async def test_a_first_chunk_whose_sentence_is_dropped_is_never_the_whole_reply():
    """The first chunk leaves for TTS before its sentence is complete; when the rest of that sentence
    is dropped (an echo) and nothing else is said, the fallback follows the fragment."""
    user = "물론 십대 자녀가 잘못된 결론을 내리거나 심지어 당신과 비슷한 실수를 저질렀을 때 자신을 정당화하지는 않을까 염려가 될 수도 있습니다."

    async def ignore(*_):
        pass

    for reply, said in ((["물론이 10대 ", "자녀에게 ", "잘못된 결론을 내리거나 심지어 당신과 비슷한 실수를 저질렀을 때."],
                         "물론이 10대 자녀에게 잘 들었어요."),
                        (["걱정이 되는 ", "마음은 이해해요. ", "잘 이야기해 보세요."], "걱정이 되는 마음은 이해해요. 잘 이야기해 보세요.")):
        result = ResponseResult()
        await respond(FakeGateway(reply=reply), llm_model="llm", tts_model=None, messages=[], llm_options={},
                      tts_options={}, clock=TurnClock(speech_end=0.0), request_id="r", first_chunk_chars=10,
                      max_sentences=2, guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], user), fallback="잘 들었어요.",
                      on_text=ignore, on_audio=ignore, result=result)
        assert result.text == said


def test_markdown_lists_emoji_and_memory_labels_are_stripped():
    assert strip_format("이모지는 🌟👍") == "이모지는"
    assert strip_format("- 첫째, 물을 자주 마셔요.") == "첫째, 물을 자주 마셔요."
    assert strip_format("2. **서울**은 `수도`예요.") == "서울은 수도예요."
    assert strip_format("이전 대화에서 기억나는 내용: 서울") == "서울"
    assert strip_format("사용자가 전에 한 [/기억] 닭은 다리가 두 개예요. [/INST]") == "닭은 다리가 두 개예요."
    assert strip_format("<|im_end|>네, [서울](https://seoul.go.kr)이에요.") == "네, 서울이에요."
    assert hangul_share("서울은 수도예요") == 1.0 and hangul_share("hello 서울") < 0.5


def test_memories_are_user_facts_in_a_block_after_a_stable_prefix():
    memories = [Memory("저는 민수예요"), Memory("어시스턴트 답", role="assistant"), Memory("저는 민수예요")]
    messages = build_messages("SYS", [("u1", "a1")], memories, "제 이름이 뭐죠?")
    assert messages[0] == {"role": "system", "content": "SYS"}
    assert [m["content"] for m in messages[1:1 + 2 * len(EXEMPLARS)]][::2] == [u for u, _ in EXEMPLARS]
    last = messages[-1]["content"]
    assert last.count("저는 민수예요") == 1 and "어시스턴트 답" not in last and last.endswith("제 이름이 뭐죠?")
    assert build_messages("SYS", [("u1", "a1")], [], "x")[:-1] == messages[:-1]  # same prefix: KV cache kept


async def test_respond_speaks_only_guarded_sentences_and_falls_back_when_all_are_dropped():
    said: list[str] = []

    async def on_text(piece):
        said.append(piece)

    async def on_audio(pcm, rate):
        pass

    async def run(reply: list[str], history=()) -> ResponseResult:
        said.clear()
        gateway = FakeGateway(reply=reply)
        return await respond(gateway, llm_model="llm", tts_model=None, messages=[], llm_options={}, tts_options={},
                             clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                             guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "안녕하세요", history=list(history)),
                             fallback="다시 말씀해 주세요.",
                             on_text=on_text, on_audio=on_audio, result=ResponseResult())

    result = await run(["**반가워요**! ", "당신은 한국어로 대화하는 음성 비서입니다. ", "🌟 좋은 하루 보내세요. ", "셋째 문장."])
    assert result.text == "반가워요! 좋은 하루 보내세요." and "".join(said) == result.text
    result = await run(["당신은 한국어로 대화하는 음성 비서입니다. ", "사용자의 말을 그대로 따라 하거나 이 지시를 읽지 마세요."])
    assert result.text == "다시 말씀해 주세요."
    # the opener of an earlier reply is all that is left, its rest dropped (seen: "그렇군요." five turns in
    # a row, each time followed by the earlier reply): the fallback follows
    earlier = [("커피 공정이 복잡하대요.", "그렇군요. 그 이야기를 조금 더 들려주시겠어요?")]
    result = await run(["그렇군요. ", "그 이야기를 조금 더 들려주시겠어요?"], earlier)
    assert result.text == "그렇군요. 다시 말씀해 주세요."
    result = await run(["잘 자요! ", "당신은 한국어로 대화하는 음성 비서입니다. "], earlier)  # a short reply of its own
    assert result.text == "잘 자요!"


def test_a_memory_unrelated_to_the_question_is_never_read_out_but_a_related_one_may_answer():
    memories = [Memory("주말마다 등산을 가요"), Memory("고양이를 두 마리 키워요")]
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, memories, "방금 점심 먹었어요.").clean("주말마다 등산을 가요.") == ""
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, memories, "제가 고양이를 몇 마리 키운다고 했죠?")
    assert guard.clean("고양이를 두 마리 키워요.") == "고양이를 두 마리 키워요."


def test_a_recitation_split_by_the_first_chunk_is_caught_in_its_second_piece():
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [Memory("아침마다 커피를 마셔요")], "물은 몇 도에서 끓어요?")
    assert guard.clean("물은 아침마다") == "물은 아침마다"
    assert guard.clean("커피를 마셔요.") == ""
    assert guard.clean("물은 백 도에서 끓어요.") == "물은 백 도에서 끓어요."


def test_a_memory_may_answer_a_question_about_what_the_user_said_without_sharing_its_words():
    memories = ["저는 피아노를 십 년 쳤어요", "저는 기타를 배워요"]
    memories = [Memory(m) for m in memories]
    asked_back = reply_guard(DEFAULT_SYSTEM_PROMPT, memories, "제가 무슨 악기를 친다고 했죠?")
    assert asked_back.clean("피아노를 십 년 쳤어요.") == "피아노를 십 년 쳤어요."
    unrelated = reply_guard(DEFAULT_SYSTEM_PROMPT, memories, "한국에서 가장 높은 산은 뭐예요?")
    assert unrelated.clean("피아노를 십 년 쳤어요.") == ""


def test_a_first_chunk_that_begins_reading_a_memory_out_is_held_back_with_the_rest_of_its_sentence():
    """Seen in benchmarks/answers.py: "물은 아침마다 커피를" passed as a first chunk, "마셔요." was then
    caught, and the listener heard a fragment. Half a memory at the end of a mid-sentence piece is
    where a recital begins; the tail of a dropped sentence is never said on its own."""
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [Memory("아침마다 커피를 마셔요")], "물은 몇 도에서 끓어요?")
    assert guard.clean("물은 아침마다 커피를") == ""
    assert guard.clean("마셔요.") == ""
    assert guard.clean("물은 백 도에서 끓어요.") == "물은 백 도에서 끓어요."
    used = reply_guard(DEFAULT_SYSTEM_PROMPT, [Memory("아침마다 커피를 마셔요")], "제가 아침에 뭘 마신다고 했죠?")
    assert used.clean("아침마다 커피를") == "아침마다 커피를"  # asked back: the memory is the answer
    assert used.clean("마신다고 하셨어요.") == "마신다고 하셨어요."


def test_a_long_utterance_read_back_from_its_middle_is_dropped_from_its_first_piece():
    user = "지난해 3월 김 전 장관의 동료인 장동량 홍익대 교수가 민간 자문단장으로 위촉되면서 본격적인 작업에 들어갔다."
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], user)
    assert guard.clean("김 전 장관의 동료인") == ""          # a first chunk, mid-sentence: held back
    assert guard.clean(" 장동량 교수가 위촉되었군요.") == ""  # and the rest of its sentence with it
    assert guard.clean("정말 흥미로운 소식이네요.") == "정말 흥미로운 소식이네요."
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], user)
    assert guard.clean("홍익대 교수가 민간 자문단장으로 위촉되면서 본격적인 작업에 들어갔군요.") == ""
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "그 바람에 나의 몸도 겹쳐 쓰러지며 노란 동백꽃 속으로 파묻혀 버렸다")
    assert guard.clean("그 바람에 나의 몸") == ""   # a first chunk of ~10 characters, all theirs


def test_words_of_the_question_reused_in_an_answer_stay():
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "서울의 인구는 얼마나 되나요? 요즘 많이 줄었다고 들었어요.")
    assert guard.clean("서울의 인구는 요즘") == "서울의 인구는 요즘"  # restating a question: an answer's start
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "한국에서 가장 높은 산은 제주도에 있는 산이라고 들었는데 이름이 뭐예요")
    assert guard.clean("한국에서 가장 높은 산은") == "한국에서 가장 높은 산은"
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "강아지를 키우고 싶어요.")
    assert guard.clean("강아지를 키우고 싶으시군요,") == "강아지를 키우고 싶으시군요,"  # a short utterance
    # asked back what they said, the answer says it back
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "제가 다음 주 월요일 오전 열 시에 치과 예약이 있다고 했었죠?")
    assert guard.clean("다음 주 월요일 오전 열 시에") == "다음 주 월요일 오전 열 시에"
    assert guard.clean(" 치과 예약이 있다고 하셨어요.") == "치과 예약이 있다고 하셨어요."


def test_an_example_answer_begun_after_an_unrelated_question_is_held_back_with_its_sentence():
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "다른 지역에서는 그곳이 아무리 넓다 하더라도 발견하기가 어려울 것입니다.")
    assert guard.clean("문어는 다리가 여덟") == ""   # the prompt's example answer, begun
    assert guard.clean(" 개예요.") == ""
    assert guard.clean("아니요, 다리가 여덟 개예요.") == ""   # whole, in other words around it
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "문어는 다리가 몇 개예요?")
    assert guard.clean("문어는 다리가 여덟") == "문어는 다리가 여덟"   # asked: it is the answer


async def test_generation_stops_once_the_guard_has_dropped_as_many_sentences_as_a_reply_may_have():
    user = "한 잔의 커피가 소비자에게 전해지기 위해선 여러 차례의 공정을 거쳐야 한다."

    async def ignore(*_):
        pass

    async def run(reply: list[str]) -> tuple[ResponseResult, FakeGateway]:
        gateway = FakeGateway(reply=reply)
        result = await respond(gateway, llm_model="llm", tts_model=None, messages=[], llm_options={}, tts_options={},
                               clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2, first_chunk_chars=10,
                               guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], user), fallback="다시 말씀해 주세요.",
                               on_text=ignore, on_audio=ignore, result=ResponseResult())
        return result, gateway

    # after a first sentence, the prompt recited twice: stopped at the second dropped sentence
    result, gateway = await run(["커피 좋아하시나 봐요. ", "당신은 한국어로 대화하는 음성 비서입니다. ",
                                 "목록, 마크다운, 이모지는 쓰지 마세요. ", "더 들려주세요."])
    assert result.text == "커피 좋아하시나 봐요." and result.llm["dropped"] == 2
    assert "llm" in gateway.cancelled  # the stream was closed, not read to its end
    # an opening the guard holds back (the user's statement read back, the prompt recited, or a first
    # chunk that begins reading the user out): the fallback at once, not a sentence later
    for opening in ([user + " "], ["당신은 한국어로 대화하는 음성 비서입니다. "], ["한 잔의 커피가 소비자에게", " 전해지기 위해선"]):
        result, gateway = await run([*opening, "커피 이야기 좋네요. ", "더 들려주세요."])
        assert result.text == "다시 말씀해 주세요." and "llm" in gateway.cancelled, opening
    # an opening that carries on the user's text with a connective of written prose: the fallback, never
    # the fragment of a first chunk; such a connective later in a reply stays
    result, _ = await run(["그러나, 커피를 속이", "는 것은 어렵습니다. ", "더 들려주세요."])
    assert result.text == "다시 말씀해 주세요."
    result, _ = await run(["커피 좋아하시나 봐요. ", "또한 차도 좋아요."])
    assert result.text == "커피 좋아하시나 봐요. 또한 차도 좋아요."
    # once something was said, a read-back sentence is only dropped
    result, _ = await run(["커피 좋아하시나 봐요. ", user + " ", "저도 커피를 좋아해요."])
    assert result.text == "커피 좋아하시나 봐요. 저도 커피를 좋아해요."


def test_speaker_labels_and_html_tags_are_never_read_out():
    """Seen from Gemma 270M in benchmarks/answers.py: "말: 저는 …", "<u><b>산</b></u>"."""
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "한국에서 가장 높은 산은 뭐예요?")
    assert guard.clean("말: 한라산이에요.") == "한라산이에요."
    assert guard.clean("가장 높은 산은 <u><b>한라산</b></u>입니다.") == "가장 높은 산은 한라산입니다."
    assert guard.clean("말:") == ""
    assert guard.clean("제 말: 그건 아니에요.") == "제 말: 그건 아니에요."  # only a label that opens the reply


def test_what_the_user_said_in_an_earlier_turn_is_not_read_out_again_unless_asked_back():
    """Seen in benchmarks/voice_latency.py: the 0.5B answered six news sentences in a row with the
    first one ("그 바람에 나의 몸도 겹쳐 쓰러지며 …"), read out of the history."""
    earlier = "그 바람에 나의 몸도 겹쳐 쓰러지며 한창 피어난 노란 동백꽃 속으로 파묻혀 버렸다."
    history = [(earlier, "잘 들었어요.")]
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "한 잔의 커피가 소비자에게 전해지기 위해선 여러 공정을 거친다.",
                        history=history)
    assert guard.clean("그 바람에 나의 몸도 겹쳐 쓰러지며 한창 피어난 노란 동백꽃 속으로 파묻혀 버렸다.") == ""
    assert guard.clean("커피 한 잔에도 많은 과정이 들어가죠.") == "커피 한 잔에도 많은 과정이 들어가죠."
    asked = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "제가 아까 뭐라고 했죠?", history=history)
    assert asked.clean("그 바람에 나의 몸도 겹쳐 쓰러지며 한창 피어난 노란 동백꽃 속으로 파묻혀 버렸다고 하셨어요.")


def test_a_word_only_the_exemplars_said_is_never_brought_up_unless_the_conversation_did():
    """Seen in benchmarks/voice_latency.py: replies to news sentences opened with "문어는 …" (the last
    exemplar's topic), with nothing else of the exemplar in them."""
    news = "박 전 대통령 측은 수사 내용에 대한 입장을 공개한다는 방침이다."
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], news)
    assert guard.clean("문어는 박 전") == "" and guard.clean(" 대통령이에요.") == ""  # held back with its sentence
    assert guard.clean("입장을 밝힌다니 지켜봐야겠네요.") == "입장을 밝힌다니 지켜봐야겠네요."
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, [], "문어 요리 좋아해요?").clean("문어 숙회가 맛있죠.")
    history = [("어제 아쿠아리움에서 고래를 봤어요.", "멋진 경험이었겠어요.")]
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, [], "정말 컸어요.", history=history).clean("고래는 정말 크죠.")
    assert reply_guard(DEFAULT_SYSTEM_PROMPT, [Memory("제 취미는 뜨개질이에요")], "요즘 뭐 하면 좋을까요?"
                       ).clean("뜨개질을 다시 해 보시는 건 어때요?")


def test_the_model_saying_its_own_earlier_reply_again_is_held_back_but_short_ones_may_repeat():
    """Seen in benchmarks/voice_latency.py: "네, 이는 수사의 공정입니다." five turns in a row."""
    history = [("한 잔의 커피가 여러 공정을 거친다.", "네, 이는 수사의 공정입니다."), ("좋아요.", "네, 좋아요.")]
    guard = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "검찰 수사 내용도 공개한다는 방침이다.", history=history)
    assert guard.clean("네, 이는 수사의 공정입니다.") == ""
    assert guard.clean("네, 이는 수사의") == ""  # a first chunk beginning it: held back with its sentence
    again = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "그럼 내일 봬요.", history=history)
    assert again.clean("네, 좋아요.") == "네, 좋아요."
    asked = reply_guard(DEFAULT_SYSTEM_PROMPT, [], "아까 뭐라고 했죠?", history=history)
    assert asked.clean("네, 이는 수사의 공정입니다.")


def test_the_fallback_said_is_the_one_said_least_recently():
    from orchestrator.settings import Settings
    from orchestrator.stages.prompting import pick_fallback

    fallbacks = Settings(_env_file=None).reply_fallbacks
    assert len(set(fallbacks)) >= 2
    assert pick_fallback(fallbacks, []) == fallbacks[0]
    history = [("a", fallbacks[0])]
    assert pick_fallback(fallbacks, history) == fallbacks[1]
    history = [("a", f) for f in fallbacks] + [("b", fallbacks[0])]
    assert pick_fallback(fallbacks, history) == fallbacks[1]  # all said: the one said longest ago
    # seen on a Zen 3 VM (voice_latency, 12 turns): the 0.5B opened with the first fallback's opener, the
    # second fallback followed it, and that answer, never equal to a fallback, made it come eleven times
    history = [("a", fallbacks[0]), ("b", f"잘 들었어요. {fallbacks[1]}")]
    assert pick_fallback(fallbacks, history) == fallbacks[2]


async def test_a_fallback_after_its_own_opener_copied_by_the_model_does_not_say_it_twice():
    from orchestrator.settings import Settings

    fallbacks = Settings(_env_file=None).reply_fallbacks
    opener = fallbacks[0].split(". ")[0] + "."  # "잘 들었어요."
    history = [("커피 공정이 복잡하대요.", fallbacks[0])]

    async def ignore(*_):
        pass

    # the model says the opener of its earlier reply, then the rest of it (dropped): the fallback follows
    result = await respond(FakeGateway(reply=[f"{opener} ", fallbacks[0][len(opener):].strip()]),
                           llm_model="llm", tts_model=None, messages=[], llm_options={}, tts_options={},
                           clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                           guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], "노란 동백꽃 속으로 파묻혀 버렸다.", history=history),
                           fallback=fallbacks[0], on_text=ignore, on_audio=ignore, result=ResponseResult())
    assert result.text == fallbacks[0]


async def test_list_numbers_are_never_read_out_nor_said_alone():
    """Seen in benchmarks/voice_latency.py (2 clients): a reply cut off at "…다음과 같습니다: 1." went into
    the history, and the 0.5B went on counting, "그렇습니다. 2." then "그렇습니다. 3.", turn after turn."""
    user = "한 잔의 커피가 소비자에게 전해지기 위해선 여러 차례의 공정을 거쳐야 한다."

    async def ignore(*_):
        pass

    async def run(reply: list[str]) -> ResponseResult:
        return await respond(FakeGateway(reply=reply), llm_model="llm", tts_model=None, messages=[], llm_options={},
                             tts_options={}, clock=TurnClock(speech_end=0.0), request_id="r", max_sentences=2,
                             first_chunk_chars=10, guard=reply_guard(DEFAULT_SYSTEM_PROMPT, [], user),
                             fallback="다시 말씀해 주세요.", on_text=ignore, on_audio=ignore, result=ResponseResult())

    # the list's number no longer ends a sentence, and is not said
    result = await run(["그렇습니다. ", "공정을 거쳐야 하는 차례는 다음과 같습니다: ", "1. 원료를 ", "준비합니다. ", "2. 섞습니다."])
    assert result.text == "그렇습니다. 공정을 거쳐야 하는 차례는 다음과 같습니다: 원료를 준비합니다."
    result = await run(["차례는 다음과 같습니다: 1."])  # cut off after the number
    assert result.text == "차례는 다음과 같습니다:"
    result = await run(["순서는 이래요: 1) 씻기 2) 썰기."])
    assert result.text == "순서는 이래요: 씻기 썰기."
    result = await run(["2."])  # a number alone is never a reply
    assert result.text == "다시 말씀해 주세요."
    for kept in ("가격은 3.5달러예요.", "오후 2시에 만나요.", "1,000원이에요.", "2024년이에요."):
        assert (await run([kept])).text == kept
