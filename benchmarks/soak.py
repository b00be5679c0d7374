"""Soak: many sessions of human speech at once, with barge-ins, then an account of every turn.

N sessions (default 8) each stream T turns (default 10) of real human Korean speech
(../shared/ko_speech_dev) in real time over /ws/voice against the real stack: Triton (all models), the
orchestrator as its own process (as deployed), MariaDB, and Milvus Lite as a server process. Every
third turn the user speaks again as soon as the reply's audio starts (a barge-in).

Afterwards every turn the clients saw committed is looked up: a MariaDB row with the same status
(completed, interrupted, or failed with its reason), vectors in Milvus for every row and a row for
every vector, and for an interrupted turn only the text that was spoken. The orchestrator's resident
memory is sampled throughout: it must not grow with the turns.

    .venv/bin/python -m benchmarks.soak [--sessions 8] [--turns 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, ROOT, figure, percentiles, triton, write
from benchmarks.corpus import human_clips, to_pcm16, trim_to_speech
from benchmarks.stack import MilvusProcess, free_port, reset_database, stored_turns

MODELS = ["vad", "stt", "embedder", "llm", "tts"]
DATABASE = "mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_soak"
TURN_BOUND_S = 180.0  # a turn that has not ended by then counts as hung


class Orchestrator:
    """`python -m orchestrator` against a running Triton, in its own process (its RSS is measured)."""

    def __init__(self, triton_url: str, milvus_uri: str, log: Path):
        self.port, self.log = free_port(), log
        self.env = {**os.environ, "START_TRITON": "false", "TRITON_URL": triton_url, "PORT": str(self.port),
                    "DATABASE_URL": DATABASE, "MILVUS_URI": milvus_uri, "LOG_LEVEL": "INFO",
                    "CONNECTIONS_PER_MINUTE": "0"}

    def __enter__(self) -> "Orchestrator":
        import httpx

        asyncio.run(reset_database(DATABASE))
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator"], cwd=ROOT, env=self.env,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/health/", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"orchestrator did not start; see {self.log}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def one_session(url: str, index: int, clips: list, turns: int, barge_every: int) -> dict:
    """Stream `turns` utterances; returns what the client saw, per committed turn id."""
    from orchestrator.client import VoiceClient

    session_id = f"soak-{index}-{uuid.uuid4().hex[:8]}"
    seen: dict[int, dict] = {}
    async with VoiceClient(url, session_id) as client:
        await client.start(f"soak-user-{index}")
        for t in range(turns):
            audio, _text, name = clips[(index * 5 + t) % len(clips)]
            stopped_before = len([e for e in client.rx.events if e["type"] == "speech.stopped"])
            speech_end = await client.stream(to_pcm16(audio), trailing_silence_s=1.0)

            def stopped():
                events = [e for e in client.rx.events if e["type"] == "speech.stopped"]
                return events[stopped_before] if len(events) > stopped_before else None

            deadline = time.monotonic() + 30
            while stopped() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if stopped() is None:
                seen[-(t + 1)] = {"clip": name, "status": "no_endpoint"}
                continue
            turn_id = stopped()["turn_id"]
            seen[turn_id] = {"clip": name, "speech_end": speech_end, "barge_in": False}
            if barge_every and t % barge_every == barge_every - 1 and t < turns - 1:
                try:  # speak again as soon as the answer is heard
                    await client.wait_for("response.audio.started", timeout=TURN_BOUND_S, turn_id=turn_id)
                    seen[turn_id]["barge_in"] = True
                    await asyncio.sleep(0.3)
                    continue
                except asyncio.TimeoutError:
                    pass
            try:
                await client.wait_for("response.done", timeout=TURN_BOUND_S, turn_id=turn_id)
            except asyncio.TimeoutError:
                pass
        for turn_id, row in seen.items():
            if turn_id < 0:
                continue
            try:
                done = await client.wait_for("response.done", timeout=TURN_BOUND_S, turn_id=turn_id)
            except asyncio.TimeoutError:
                row["status"] = "hung"
                continue
            row.update(status=done["status"], text=done.get("text", ""), done_s=round(done["_t"] - row["speech_end"], 2))
            audio_t = [f[0] for f in client.rx.audio.get(turn_id, [])]
            row["first_audio_s"] = round(min(audio_t) - row["speech_end"], 2) if audio_t else None
        errors = [e for e in client.rx.events if e["type"] == "error"]
        await client.send_json({"type": "session.end"})
    return {"session_id": session_id, "turns": seen, "errors": [f"{e['code']}: {e['message']}" for e in errors]}


async def account(sessions: list[dict], milvus_uri: str) -> dict:
    """Every committed turn against MariaDB and Milvus."""
    rows, vector_turns = await stored_turns(DATABASE, milvus_uri)
    problems, by_session, spoken_share = [], {}, []
    for row in rows:
        by_session.setdefault(row.session_id, []).append(row)
    for session in sessions:
        stored = by_session.get(session["session_id"], [])
        expected = [t for tid, t in sorted(session["turns"].items()) if tid > 0 and t["status"] != "empty"]
        if [r.status for r in stored] != [t["status"] for t in expected]:
            problems.append(f"{session['session_id']}: client saw {[t['status'] for t in expected]}, "
                            f"stored {[r.status for r in stored]}")
            continue
        for row, seen in zip(stored, expected):
            if row.status == "interrupted":
                spoken_share.append(len(row.assistant_text) / max(1, len(seen.get("text", ""))))
                if len(row.assistant_text) > len(seen.get("text", "")):
                    problems.append(f"{session['session_id']} turn {row.turn_index}: interrupted text longer "
                                    "than the answer")
            if row.status == "failed" and not row.error:
                problems.append(f"{session['session_id']} turn {row.turn_index}: failed without a reason")
    row_ids = {r.id for r in rows}
    if row_ids - vector_turns:
        problems.append(f"rows without vectors: {sorted(row_ids - vector_turns)}")
    if vector_turns - row_ids:
        problems.append(f"vectors without rows: {sorted(vector_turns - row_ids)}")
    return {"rows": len(rows), "rows_with_vectors": len(row_ids & vector_turns), "problems": problems,
            "interrupted_stored_share_of_answer": percentiles(spoken_share)}


def plot(path: Path, samples: list[tuple[float, float]], done_at: list[float]) -> Path:
    with figure(path, (8, 3.5)) as ax:
        ax.plot([t for t, _ in samples], [m for _, m in samples], label="orchestrator RSS (MB)")
        for t in done_at:
            ax.axvline(t, color="grey", alpha=0.15, linewidth=0.8)
        ax.set_xlabel("s since the sessions started (grey: a turn ended)")
        ax.set_ylabel("MB")
        ax.set_title("Soak: orchestrator memory across the run (human speech, barge-ins)")
        ax.legend(fontsize=8)
    return path


async def soak(app: Orchestrator, clips: list, sessions: int, turns: int, barge_every: int) -> tuple[list, list]:
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    async def sample() -> None:
        while True:
            samples.append((round(time.monotonic() - t0, 1), round(app.rss_mb(), 1)))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    url = f"ws://127.0.0.1:{app.port}"
    try:
        results = await asyncio.gather(*(one_session(url, i, clips, turns, barge_every) for i in range(sessions)))
    finally:
        sampler.cancel()
    for r in results:
        for t in r["turns"].values():
            if "speech_end" in t:
                t["speech_end"] = round(t["speech_end"] - t0, 2)
    return results, samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--barge-every", type=int, default=3)
    args = parser.parse_args()
    clips = [(trim_to_speech(a), t, n) for a, t, n in human_clips()]
    with tempfile.TemporaryDirectory() as tmp, triton(MODELS, port=18620) as server:
        milvus = MilvusProcess(Path(tmp) / "milvus").start()
        try:
            with Orchestrator(server.grpc_url, milvus.uri, RESULTS / "soak.log") as app:
                asyncio.run(warm_up(app, clips))
                start_rss = app.rss_mb()
                t0 = time.monotonic()
                results, samples = asyncio.run(soak(app, clips, args.sessions, args.turns, args.barge_every))
                wall_s = time.monotonic() - t0
                time.sleep(3)  # the last turns' storage
                end_rss = app.rss_mb()
            accounted = asyncio.run(account(results, milvus.uri))
        finally:
            milvus.stop()
    turns = [t for r in results for tid, t in r["turns"].items()]
    statuses = {s: sum(t["status"] == s for t in turns) for s in sorted({t["status"] for t in turns})}
    half = [m for t, m in samples if t >= samples[-1][0] / 2] or [end_rss]
    first_half = [m for t, m in samples if t < samples[-1][0] / 2] or [start_rss]
    done_at = sorted(t["speech_end"] + t["done_s"] for t in turns if t.get("done_s") is not None)
    write("soak", {
        "material": "ko_speech_dev (Zeroth-Korean speaker 104 + Picovoice clip), real-time streaming",
        "sessions": args.sessions, "turns_per_session": args.turns, "barge_in_every": args.barge_every,
        "wall_s": round(wall_s, 1), "statuses": statuses,
        "barge_ins_sent": sum(bool(t.get("barge_in")) for t in turns),
        "turn_done_s": percentiles(t.get("done_s") for t in turns),
        "first_audio_s": percentiles(t.get("first_audio_s") for t in turns),
        "hung_turns": statuses.get("hung", 0), "accounting": accounted,
        "rss_mb": {"after_warm_up": round(start_rss, 1), "end": round(end_rss, 1),
                   "peak": max(m for _, m in samples), "first_half_mean": round(float(np.mean(first_half)), 1),
                   "second_half_mean": round(float(np.mean(half)), 1)},
        "client_errors": sorted({e for r in results for e in r["errors"]}),
        "sessions_detail": results,
        "plot": str(plot(RESULTS / "soak.png", samples, done_at))})


async def warm_up(app: Orchestrator, clips: list) -> None:
    """One turn first, so model caches and the first connections are not counted as growth."""
    await one_session(f"ws://127.0.0.1:{app.port}", 99, clips, 1, 0)


if __name__ == "__main__":
    main()
