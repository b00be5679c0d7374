"""Fast unit layer: a reply lasts until its audio has played on the client (TURN_LASTS_UNTIL_PLAYED):
speech until then is a barge-in, and an interrupted reply keeps only the sentences that began to play.
The same is measured on human speech through Triton by benchmarks/barge_in.py."""
from __future__ import annotations

import asyncio

from tests.fakes.gateway import FakeGateway
from tests.test_session_unit import LOUD, QUIET, Harness


async def test_a_reply_lasts_while_it_plays_and_speech_then_cuts_it_to_what_was_heard():
    """All of the answer's audio is sent at once, but the client plays it in real time: the user who
    speaks during its first second interrupts it, and only its first sentence was heard."""
    h = Harness(FakeGateway(reply=["첫 문장입니다. ", "둘째 문장입니다."], tts_audio_s=1.0))
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_until(lambda: len(h.audio) == 2 and h.session.current.turn.result.llm)  # all of it made
    await asyncio.sleep(0.05)
    assert not h.of("response.done")  # 2 s of audio is still playing
    await h.frames(LOUD, 12)
    done = await h.wait_for("response.done", turn_id=1)
    assert done["status"] == "interrupted"
    await h.session.close()
    [record] = h.db.stored
    assert record.status == "interrupted" and record.assistant_text == "첫 문장입니다."
    assert h.session.history[-1][1] == "첫 문장입니다."


async def test_the_fallback_is_said_a_sentence_at_a_time_so_a_barge_in_keeps_only_what_was_heard():
    h = Harness(FakeGateway(reply=[" "], tts_audio_s=1.0))  # nothing to say: the first fallback instead
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 25)
    await h.wait_until(lambda: len(h.audio) == 2)
    await h.frames(LOUD, 12)
    done = await h.wait_for("response.done", turn_id=1)
    first, second = h.session.cfg.reply_fallbacks[0].split(". ")
    assert done["status"] == "interrupted" and done["text"] == f"{first}. {second}"
    await h.session.close()
    assert h.db.stored[0].assistant_text == f"{first}."


async def test_a_reply_ends_when_its_audio_has_played_or_when_sent_if_so_configured():
    # 2 × 0.3 s of audio; sent 0.5 s apart, the second sentence plays from when it arrives (a stall)
    for until_played, tts_delay_s, at_least_s in ((True, 0.0, 0.55), (True, 0.5, 0.75), (False, 0.0, 0.0)):
        h = Harness(FakeGateway(reply=["첫 문장입니다. ", "둘째 문장입니다."], tts_audio_s=0.3,
                                tts_delay_s=tts_delay_s), turn_lasts_until_played=until_played)
        await h.start()
        await h.frames(LOUD, 20)
        await h.frames(QUIET, 25)
        await h.wait_for("<audio>")
        first_audio = asyncio.get_running_loop().time()
        done = await h.wait_for("response.done", turn_id=1)
        waited = asyncio.get_running_loop().time() - first_audio
        assert done["status"] == "completed" and waited >= at_least_s
        assert until_played == ("played" in done["timings"])
        if not until_played:
            assert waited < 0.3
        await h.session.close()
        assert h.db.stored[0].assistant_text == "첫 문장입니다. 둘째 문장입니다."


async def test_the_tts_lead_counts_held_audio_as_unplayed():
    """The TTS is told how much audio its listener has yet to play by the same clock the reply's end
    uses: a speculative turn's audio waits in its outbox, so none of it has played yet."""
    h = Harness(FakeGateway(reply=["첫 문장입니다. ", "둘째 문장입니다."], tts_audio_s=0.5, llm_delay_s=0.2),
                speculative_pause_ms=250, vad_end_silence_ms=600)
    await h.start()
    await h.frames(LOUD, 20)
    await h.frames(QUIET, 9)  # a pause: the speculative turn runs, its output held
    handle = h.session.speculative
    await h.wait_until(lambda: len(h.gw.tts_options) == 2)
    assert not handle.committed and "<audio>" not in h.types()
    first, second = h.gw.tts_options
    assert "lead_s" not in first and second["lead_s"] == 0.5  # 0.2 s after the first audio, all of it ahead
    await h.frames(QUIET, 10)  # the endpoint: everything leaves, and plays from now
    assert (await h.wait_for("response.done"))["status"] == "completed"
    await h.session.close()
