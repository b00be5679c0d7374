"""The last gate before a reply sentence is spoken: small LLMs recite their instructions and recalled
memories, echo the user's words, and write markdown, lists and emoji for a listener.

`ReplyGuard.clean(sentence)` returns what may be spoken: formatting stripped, and "" for a sentence
that recites guarded text (the system prompt, the exemplars, the memory block), repeats the user,
brings up a word only the prompt's exemplars said, or opens the reply carrying on the user's text.
A recitation is a run of ≥ `min_run` characters (spaces ignored) shared with guarded text that is
most of the sentence; words of a memory *used* in an answer ("민수님이라고 하셨어요") stay.
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher

from RealTime_zeroshot_TTS_ko.text.splitter import CLOSERS, TERMINATORS

SENTENCE_ENDS = TERMINATORS + CLOSERS  # a piece ending with one of these completes a sentence

MEMORY_LABELS = re.compile(r"</?기억>|</?참고>|(사용자|비서)가 (전에 )?(한 )?말(함)?\s*[:：]|(사용자|비서)가 전에 한( 말)?|"
                           r"이전 대화에서 기억나는 내용\s*[:：]?")
# chat-template and prompt tags a small model writes out: [INST], [/기억], <</SYS>>, <|im_end|>, <end_of_turn>
TAGS = re.compile(r"\[/?[^\]\s]{1,12}\]|<</?SYS>>|<\|[^|>]{1,20}\|>|</?(start|end)_of_turn>")
# a speaker label a small model opens its reply with ("말:", "답변:", "assistant:"), and HTML tags (<u><b>)
SPEAKER_LABEL = re.compile(r"^\s*(말|답|답변|대답|어시스턴트|비서|ai|assistant|model)\s*[:：]\s*", re.IGNORECASE)
HTML_TAG = re.compile(r"</?[a-zA-Z]{1,8}\s*/?>")
EMOJI = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]")
# a list marker opening a sentence, or all there is of it ("2."): the latter is then left with no words
LIST_MARKER = re.compile(r"^\s*(?:[-*•·▪►]|\d{1,2}[.)]|[①-⑳])(?:\s+|$)")
# a list item's number inside a sentence ("다음과 같습니다: 1. 원료를"): read out, and then seen in the
# history, it made the model go on counting ("그렇습니다. 3.") turn after turn
INNER_LIST_NUMBER = re.compile(r"(?:(?<=[:：])\s*\d{1,2}[.)]|(?<=\s)\d{1,2}\))(?=\s|$)")
# The user asks back what they told before ("제가 무슨 악기를 친다고 했죠?", "제 생일 기억나요?"): a
# recalled fact is then the answer even when it shares no word with the question (피아노 / 악기).
RECALL_QUESTION = re.compile(r"(했|했었|였|이었|이라|라)(죠|지요|나요|더라)|기억(나|하|해)|말(했|한|씀드)")
MARKUP = re.compile(r"\*\*|__|`+|^#+\s*|^>\s*|\[([^\]]*)\]\([^)]*\)")


# the user's words said back: a run this long (characters, spaces ignored) in a sentence, or a first
# piece this long that is almost all theirs (only when they said at least twice as much), or a
# sentence this long that is almost all stretches of theirs ("네, 여러 차례의 공정을 거쳐야 한다.")
ECHO_RUN, ECHO_PIECE, ECHO_SENTENCE = 20, 6, 12
# the user asked something: an answer that starts by restating the question ("한국에서 가장 높은 산은
# 한라산이에요") is not an echo
QUESTION = re.compile(r"[?？]|(까|나요|니|냐|가요|죠|지요|는지|을지)\s*[.!]?\s*$|뭐|어디|언제|누구|왜|얼마|몇|어떻게|어떤")
# a reply that opens with a connective of written prose ("그러나, 커피를 …", "또한 …") is carrying on
# the text it was given (a read-out news sentence), not answering it
CONTINUES_TEXT = re.compile(r"^(그러나|또한|따라서|게다가|그러므로|한편|아울러|더불어)(?=[\s,])")


def compact(text: str) -> str:
    """Text without spaces and punctuation: what runs of shared characters are counted on."""
    return re.sub(r"[\s.,!?~…'\"“”‘’·:;()\[\]<>-]+", "", text)


def longest_shared_run(a: str, b: str) -> int:
    if not a or not b:
        return 0
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size


def shared_cover(a: str, b: str, min_block: int = 4) -> int:
    """Characters of `a` in runs of at least `min_block` shared with `b` ("이리저리를 피하면서 …": the
    user's words with a particle put in)."""
    if not a or not b:
        return 0
    blocks = SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks if block.size >= min_block)


def strip_format(sentence: str) -> str:
    text = MEMORY_LABELS.sub(" ", SPEAKER_LABEL.sub("", HTML_TAG.sub("", sentence)))
    text = EMOJI.sub("", text)
    text = INNER_LIST_NUMBER.sub("", LIST_MARKER.sub("", text))
    text = TAGS.sub(" ", MARKUP.sub(lambda m: m.group(1) or "", text))  # a link's [text] is kept first
    return re.sub(r"\s+", " ", text).strip()


class ReplyGuard:
    def __init__(self, guarded: list[str], user_text: str = "", memories: list[str] = (), min_run: int = 10,
                 share: float = 0.5, examples: list[str] = (), foreign_words: list[str] = (),
                 earlier_replies: list[str] = ()):
        examples = [e for e in map(compact, examples) if e]
        self.guarded = [compact(g) for g in guarded if g] + examples
        self.user = compact(user_text)
        # a recalled fact that shares no word (2+ characters) with what the user just said is not the
        # answer, unless the user asks back what they said: reading it out is a leak. A short one that
        # does may be said back ("고양이를 두 마리 키워요"); a long one read out whole is the memory block again.
        self.asked_back = asked_back = bool(RECALL_QUESTION.search(user_text))
        self.question = bool(QUESTION.search(user_text))
        self.memories = [m for m in map(compact, memories)
                         if m and ((longest_shared_run(m, self.user) < 2 and not asked_back) or len(m) >= 15)]
        self.guarded += self.memories
        # an example answer of the prompt that shares no word with the question is not this answer
        self.unrelated = self.memories + [e for e in examples if longest_shared_run(e, self.user) < 2]
        self.foreign_words = list(foreign_words)  # words the reply can only have copied from the prompt
        self.earlier_replies = [r for r in map(compact, earlier_replies) if r]
        # a first chunk that begins an earlier reply of 10+ characters is held back with its sentence
        # (else its start is spoken and the rest cut off: "그 이야기를 조금 더")
        self.unrelated += [r for r in self.earlier_replies if len(r) >= 10]
        self.min_run, self.share = min_run, share
        self.dropped: list[str] = []
        self.sentence = ""  # the kept pieces of the sentence in progress (a first chunk ends mid-sentence)
        self.skipping = False  # this sentence began reading out a memory, an example or the user: drop its rest
        self.opened = False  # a piece of the reply was kept

    def recites(self, sentence: str) -> bool:
        """Most of the sentence is a run of guarded text (a short guarded text counts whole)."""
        text = self.sentence + compact(sentence)
        for source in self.guarded:
            run = longest_shared_run(text, source)
            if run >= min(self.min_run, 0.8 * len(source)) and run >= self.share * len(text):
                return True
        return False

    def reads_unrelated(self, piece: str) -> bool:
        """The sentence so far is mostly half of a memory or an example answer unrelated to the
        question: it is reading that out. Checked on a first chunk too, which stops mid-sentence:
        once it is spoken, its rest could only be cut off."""
        text = self.sentence + compact(piece)
        return any(run >= min(6, 0.5 * len(m)) and run >= self.share * len(text)
                   for m in self.unrelated for run in [longest_shared_run(text, m)])

    def echoes(self, sentence: str) -> bool:
        """The sentence is mostly the user's words said back: most of what they said, or a long stretch
        of it (a small model reading a long utterance back from its middle). A short answer that reuses
        the question's words ("사과는 과일이에요") stays."""
        text = compact(sentence)
        run = longest_shared_run(text, self.user)
        long_stretch = run >= ECHO_RUN and not self.asked_back  # "…라고 하셨어요" answers an asking back
        # a sentence (with its first chunk, if one was said) that is, all but a particle or a word,
        # stretches of theirs is not an answer even to a question ("한국에서 가장 높은 산은 한라산이에요"
        # restates 10 of its 17)
        whole = self.sentence + text
        read_back = (len(whole) >= ECHO_SENTENCE and not self.asked_back
                     and shared_cover(whole, self.user) >= 0.8 * len(whole))
        return read_back or (len(text) >= 8 and run >= 0.7 * len(text)
                             and (run >= 0.75 * len(self.user) or long_stretch))

    def begins_echo(self, piece: str) -> bool:
        """A piece that stops mid-sentence (a first chunk) and is, almost whole, stretches of what the
        user stated (not asked): the sentence is reading it back."""
        text = self.sentence + compact(piece)
        return (not self.question and len(self.user) >= 2 * ECHO_PIECE and len(text) >= ECHO_PIECE
                and shared_cover(text, self.user) >= 0.85 * len(text))

    def bare_copied_opener(self, said: str) -> bool:
        """All that was said is a few characters that open an earlier reply, and the guard dropped
        the rest: the model was reading that reply out again ("그렇군요." and then its old words)."""
        text = compact(said)
        return bool(self.dropped) and 0 < len(text) < 6 and any(r.startswith(text) for r in self.earlier_replies)

    def cut_off(self, said: str) -> bool:
        """All that was said is a first chunk whose sentence the guard then dropped: a fragment
        ("그곳은 다리가 여덟") that must not be the whole reply."""
        return bool(self.dropped) and bool(said.strip()) and said.rstrip()[-1] not in SENTENCE_ENDS

    def clean(self, sentence: str) -> str:
        text = strip_format(sentence)
        if not re.search(r"[가-힣A-Za-z0-9]", text):
            return ""
        complete = text[-1] in SENTENCE_ENDS
        dropped = self.skipping or self.recites(text) or self.echoes(text)
        begins = not dropped and (self.reads_unrelated(text) or any(w in text for w in self.foreign_words)
                                  or (not complete and self.begins_echo(text))
                                  or (not self.opened and bool(CONTINUES_TEXT.match(text))))
        if dropped or begins:
            self.dropped.append(text)
            # the rest of a sentence that began reading a memory or the user's words out is never said alone
            self.skipping = not complete and (self.skipping or begins)
            self.sentence = "" if complete else self.sentence
            return ""
        self.sentence = "" if complete else self.sentence + compact(text)
        self.opened = True
        return text


def hangul_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("가" <= c <= "힣" for c in letters) / len(letters) if letters else 0.0
