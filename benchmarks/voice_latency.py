"""Voice→voice latency over the WebSocket: N concurrent clients stream real Korean speech in real time.

Per turn, measured by the client from the moment its last speech sample was sent: final transcript,
first LLM text delta, first reply audio byte (voice→voice), and the whole turn; p50/p95 per N.
The same run also calls the same models in-process (no orchestrator, no Triton) along the critical
path (STT → LLM first sentence → TTS first chunk) to give the share of a turn spent outside models.

    .venv/bin/python -m benchmarks.voice_latency [--clients 1,2,4,8] [--turns 2]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, percentiles, triton, write
from benchmarks.corpus import QUESTIONS, synth_clip, to_pcm16
from benchmarks.stack import AppServer, make_settings

MODELS = ["vad", "stt", "embedder", "llm", "tts"]
STAGES = ["final_transcript", "first_token", "first_audio", "turn_total"]


async def one_client(url: str, index: int, turns: int) -> list[dict]:
    from orchestrator.client import VoiceClient

    rows = []
    async with VoiceClient(url, f"bench-{index}-{uuid.uuid4().hex[:6]}") as client:
        await client.start(f"bench-user-{index}")
        for t in range(turns):
            question = QUESTIONS[(index + t) % len(QUESTIONS)]
            speech_end = await client.stream(to_pcm16(synth_clip(question, pad_s=0.1)), trailing_silence_s=1.0)
            final = await client.wait_for("transcript.final", timeout=300, turn_id=t + 1)
            done = await client.wait_for("response.done", timeout=600, turn_id=t + 1)
            deltas = [e["_t"] for e in client.rx.events if e["type"] == "response.text.delta" and e["turn_id"] == t + 1]
            audio = [f[0] for f in client.rx.audio.get(t + 1, [])]
            rows.append({
                "final_transcript": (final["_t"] - speech_end) * 1000,
                "first_token": (min(deltas) - speech_end) * 1000 if deltas else None,
                "first_audio": (min(audio) - speech_end) * 1000 if audio else None,
                "turn_total": (done["_t"] - speech_end) * 1000, "status": done["status"],
                "server_timings": done.get("timings", {}), "llm": done.get("llm", {})})
    return rows


async def run_clients(url: str, n: int, turns: int) -> list[dict]:
    results = await asyncio.gather(*(one_client(url, i, turns) for i in range(n)))
    return [row for rows in results for row in rows]


def in_process_critical_path(question: str) -> dict:
    """The models alone, back to back in this process: STT, LLM until its first sentence, TTS first chunk."""
    from benchmarks.corpus import synth_clip
    from orchestrator.settings import DEFAULT_SYSTEM_PROMPT
    from RealTime_zeroshot_TTS_ko import load_engine
    from RealTime_zeroshot_TTS_ko.text.splitter import SentenceSplitter
    from triton_models.llm import GenOptions, load_llm, stream_chat
    from triton_models.stt import WhisperTranscriber

    repo = ROOT / "model_repository"
    stt = WhisperTranscriber(repo / "stt" / "1" / "whisper")
    llm = load_llm("llama_cpp", next((repo / "llm").glob("*/*.gguf")))
    tts = load_engine("kokoro", next((repo / "tts").glob("*/kokoro")))
    audio = synth_clip(question)
    stt.transcribe(audio)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        text = stt.transcribe(audio)["text"]
        t_stt = time.perf_counter()
        splitter, first_sentence, t_tok = SentenceSplitter(), None, None
        messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": text}]
        for delta in stream_chat(llm, messages, GenOptions(max_tokens=96), {}):
            t_tok = t_tok or time.perf_counter()
            sentences = splitter.push(delta)
            if sentences:
                first_sentence = sentences[0]
                break
        first_sentence = first_sentence or (splitter.flush() or ["네."])[0]
        t_sentence = time.perf_counter()
        next(iter(tts.stream(first_sentence)))
        t_audio = time.perf_counter()
        runs.append({"stt": (t_stt - t0) * 1000, "first_token": (t_tok - t0) * 1000,
                     "first_sentence": (t_sentence - t0) * 1000, "first_audio": (t_audio - t0) * 1000})
    return {k: percentiles(r[k] for r in runs)["p50"] for k in runs[0]}


def plot(path: Path, by_n: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(by_n)
    fig, ax = plt.subplots(figsize=(7, 4))
    for stage in STAGES:
        for p, style in (("p50", "-o"), ("p95", "--x")):
            ax.plot(ns, [by_n[n][stage][p] for n in ns], style, label=f"{stage} {p}")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("ms after end of user speech")
    ax.set_xscale("log", base=2)
    ax.set_title("Voice→voice latency over the WebSocket (Triton + orchestrator)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()
    for q in QUESTIONS:
        synth_clip(q, pad_s=0.1)  # make the audio before timing anything
    by_n, all_rows = {}, {}
    with triton(MODELS, port=18600) as server, tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(server, Path(tmp), database_url="mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_bench")
        with AppServer(settings) as app:
            for n in [int(x) for x in args.clients.split(",")]:
                rows = asyncio.run(run_clients(app.ws, n, args.turns))
                all_rows[n] = rows
                by_n[n] = {s: percentiles(r[s] for r in rows) for s in STAGES}
                by_n[n]["statuses"] = sorted({r["status"] for r in rows})
                print(f"clients={n}: {by_n[n]}", flush=True)
    models_only = in_process_critical_path(QUESTIONS[0])
    single = by_n[min(by_n)]
    endpoint = settings.vad_end_silence_ms
    v2v = single["first_audio"]["p50"]
    outside = v2v - endpoint - models_only["first_audio"]
    write("voice_latency", {
        "clients": by_n, "turns_per_client": args.turns, "endpoint_silence_ms": endpoint,
        "in_process_models_ms": models_only,
        "share_outside_models": {"voice_to_voice_p50_ms": v2v, "endpointing_ms": endpoint,
                                 "models_ms": models_only["first_audio"], "outside_ms": round(outside, 1),
                                 "share": round(outside / v2v, 3)},
        "server_timings_example": all_rows[min(all_rows)][0]["server_timings"],
        "plot": str(plot(RESULTS / "voice_latency.png", by_n))})


if __name__ == "__main__":
    main()
