"""Barge-in on human Korean speech (../shared/ko_speech_dev): the user cuts in while the reply plays.

Per trial, a session hears a recorded question (real time), and once the reply's first audio has
arrived and played for `delay` seconds (0.5–3.5 s, in turn) the first 1.5 s of another person's
recording is streamed as the interruption. A listener plays the reply in real time from its first
chunk (a chunk that arrives late starts late), so the interruption falls *during playback* when it
starts before that playback ends, by at least the 250 ms of speech a barge-in takes. Per
configuration, in one run on the same Triton:

  until played  the default: a reply lasts until its audio has played (TURN_LASTS_UNTIL_PLAYED)
  until sent    a reply ends when its last audio has been sent (the behaviour before 2026-11-28)

Reported: of the interruptions during playback, how many stopped the reply (`response.done
{interrupted}`) and how many were missed (the reply had already ended as completed); the stop time
from the interruption's first sample to `speech.started` and to the reply's `response.done`; and what
was stored for the interrupted turn: the sentences the listener had begun to hear, or more.

    .venv/bin/python -m benchmarks.barge_in [--trials 12] [--name barge_in]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import RESULTS, figure, percentiles, triton, write
from benchmarks.corpus import human_clips, to_pcm16, trim_to_speech, voiced_frames
from benchmarks.stack import AppServer, make_settings
from benchmarks.voice_latency import MODELS, playback
from orchestrator.settings import Settings

CONFIGS = {"until played": {}, "until sent": {"turn_lasts_until_played": False}}
DELAYS_S = (0.5, 1.5, 2.5, 3.5)
INTERRUPTION_S = 1.5
BARGE_IN_MIN_SPEECH_S = Settings(_env_file=None).barge_in_min_speech_ms / 1000


def speech_start(audio: np.ndarray) -> np.ndarray:
    """The recording from its first voiced 20 ms frame (its leading silence cut)."""
    voiced = voiced_frames(audio, 320)
    return audio[(voiced[0] * 320 if len(voiced) else 0):]


async def trial(app, question: np.ndarray, interruption: np.ndarray, delay_s: float) -> dict:
    from orchestrator.client import VoiceClient

    session_id = f"barge-{uuid.uuid4().hex[:8]}"
    async with VoiceClient(app.ws, session_id) as client:
        await client.start(f"barge-user-{uuid.uuid4().hex[:8]}")
        await client.stream(to_pcm16(question))
        final = await client.wait_for("transcript.final", timeout=120)
        turn = final["turn_id"]
        started = await client.wait_for("response.audio.started", timeout=300, turn_id=turn)
        first_audio = min(t for t, _seq, _pcm in client.rx.audio.get(turn, [])) if client.rx.audio.get(turn) \
            else started["_t"]
        await asyncio.sleep(max(0.0, first_audio + delay_s - asyncio.get_running_loop().time()))
        onset = asyncio.get_running_loop().time()
        send = asyncio.create_task(client.stream(to_pcm16(interruption), trailing_silence_s=0.2))
        done = await client.wait_for("response.done", timeout=300, turn_id=turn)
        await send
        heard_start = client.find("speech.started", turn_id=turn + 1)
    frames = sorted(client.rx.audio.get(turn, []), key=lambda f: f[1])
    _stall, end = playback(frames, started.get("sample_rate", 24000))
    async with httpx.AsyncClient() as http:
        rows = []
        for _ in range(50):  # stored just after the turn ends
            rows = (await http.get(f"{app.http}/api/sessions/{session_id}/turns")).json()
            if rows:
                break
            await asyncio.sleep(0.1)
    stored = rows[0] if rows else {}
    return {"delay_s": delay_s, "status": done["status"],
            "played_s_at_onset": round(onset - first_audio, 2), "reply_audio_s": round(end - first_audio, 2) if end else None,
            "to_speech_started_ms": round((heard_start["_t"] - onset) * 1000, 1) if heard_start else None,
            "to_done_ms": round((done["_t"] - onset) * 1000, 1) if done["status"] == "interrupted" else None,
            "reply": done.get("text", ""), "stored_status": stored.get("status"),
            "stored_text": stored.get("assistant_text")}


def during_playback(row: dict) -> bool:
    """The interruption began while the reply played, early enough for the barge-in rule's 250 ms of
    speech to fit before its end (or the reply was still under way, in a stall)."""
    left_s = (row["reply_audio_s"] or 0.0) - row["played_s_at_onset"]
    return row["status"] == "interrupted" or left_s > BARGE_IN_MIN_SPEECH_S


def summarise(rows: list[dict]) -> dict:
    during = [r for r in rows if during_playback(r)]
    cut = [r for r in during if r["status"] == "interrupted"]
    return {"trials": len(rows), "during_playback": len(during), "stopped": len(cut),
            "in_the_last_250_ms_or_after": len(rows) - len(during),
            "missed": sum(r["status"] == "completed" for r in during),
            "to_speech_started_ms": percentiles(r["to_speech_started_ms"] for r in during),
            "to_done_ms": percentiles(r["to_done_ms"] for r in cut),
            "stored_interrupted": sum(r["stored_status"] == "interrupted" for r in during),
            # the stored reply is shorter than the one generated: the unheard sentences were left out
            "stored_shorter_than_reply": sum(bool(r["reply"]) and len(r["stored_text"] or "") < len(r["reply"])
                                             for r in during)}


def plot(path: Path, summary: dict) -> Path:
    with figure(path, (7, 4)) as ax:
        labels = list(summary)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, [summary[k]["stopped"] for k in labels], 0.4, label="stopped (interrupted)")
        ax.bar(x + 0.2, [summary[k]["missed"] for k in labels], 0.4, label="missed (reply ended as completed)")
        ax.set_xticks(x, [f"{k}\nstop p50 {summary[k]['to_done_ms']['p50']} ms" for k in labels])
        ax.set_ylabel("interruptions during playback")
        ax.set_title("Barge-in on human Korean speech (ko_speech_dev), 2-core CPU")
        ax.legend(fontsize=8)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--name", default="barge_in")
    args = parser.parse_args()
    clips = [trim_to_speech(a) for a, _t, _n in human_clips()]
    interruptions = [speech_start(c)[: int(INTERRUPTION_S * 16000)] for c in clips]
    summary, rows_by = {}, {}
    with triton(MODELS, port=18700) as server, tempfile.TemporaryDirectory() as tmp:
        for label, overrides in CONFIGS.items():
            settings = make_settings(server, Path(tmp) / label.replace(" ", "_"), **overrides,
                                     database_url="mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_bench")
            with AppServer(settings) as app:
                asyncio.run(trial(app, clips[-1], interruptions[0], 0.3))  # warm-up (not counted)
                rows = [asyncio.run(trial(app, clips[i % len(clips)], interruptions[(i + 5) % len(clips)],
                                          DELAYS_S[i % len(DELAYS_S)])) for i in range(args.trials)]
            summary[label], rows_by[label] = summarise(rows), rows
            print(label, summary[label], flush=True)
    write(args.name, {"material": "ko_speech_dev: questions and interruptions (first 1.5 s) are human recordings",
                      "delays_s": DELAYS_S, "configs": CONFIGS, "summary": summary, "rows": rows_by,
                      "plot": str(plot(RESULTS / f"{args.name}.png", summary))})


if __name__ == "__main__":
    main()
