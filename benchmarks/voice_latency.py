"""Voice→voice latency over the WebSocket on human Korean speech (../shared/ko_speech_dev).

Clients stream real recordings in real time (trailing recording silence cut, so the clock starts at
the last speech sample sent); per turn, per stage (ms after that sample): endpoint (speech.stopped),
STT final, recall (response.started), first LLM text, first reply audio, turn done, as the client sees
them, plus the server's own marks (the models' work behind a speculative turn starts before the
endpoint), and the playback stall: the silence inside a reply when a chunk arrives after the audio
before it has played. Configurations run in one process, one after the other, on the same Triton:

  before  no speculation, Whisper encoder window 30 s, LLM decoding 1 thread from the first token,
          the first TTS piece waits for a comma or the sentence's end, no LLM prefill
  after   the defaults: speculative end of turn at 250 ms, 15 s encoder window, 2 threads until the
          first clause, an unpunctuated first sentence goes to TTS at the first space past 10 chars,
          two llama.cpp contexts (conversations generate side by side)
  one context  the defaults but one llama.cpp context (conversations queue for it), at 2 clients
  no STT prefix  the defaults, but the final STT decodes the whole utterance instead of starting from
          the words two partial transcripts agreed on, at 1 client
  pause 120 ms  the defaults, but the turn's models start at a 120 ms pause instead of 250 ms (more
          speculations that the user's next words cancel), at 1 client
  no playback lead  the defaults, but only a reply's first TTS chunk is critical-path work, not every
          chunk while the listener has under TTS_LEAD_MIN_S of audio left, at 1 client
  no LLM prefill  the defaults, but the LLM evaluates the turn's prompt only once the final transcript
          is known, instead of from each partial transcript while the user speaks, at 1 client
  no TTS pre-emption  the defaults, but a reply's first TTS chunk waits for another conversation's
          later phrase in progress instead of stopping it (the tts model's `preempt` = 0), at 2 clients
  turns share the critical path  the defaults, but two conversations' turns that end together share
          the cores on the critical path instead of going first come, first served, at 2 clients
  decodes run on  the defaults, but a TTS decode in progress runs to its end beside another turn's
          final transcript or first clause, and one critical for its listener's lead beside another
          reply's first chunk, instead of stopping for them and starting over (the tts model's
          `stop_for_critical` = 0), at 2 clients
  STT decoder on 2 threads  the defaults, but Whisper's decoder runs on two threads like its encoder
          (the stt model's `decoder_threads` = 2, the setting before 2026-11-27's evening), at every
          client count given
  fallbacks synthesised when said  the defaults, but a reply the guard turns into a fallback has its
          audio made when it is said instead of from the `tts` model's phrase cache (made for the
          session's voice when it starts), at 1 client
  no prefill after a reply  the defaults, but the next turn's prompt is evaluated only from the partial
          transcripts, not also once a reply is made (while it plays), at 1 client

and the same models called in-process along the critical path (STT → LLM first sentence → TTS first
chunk) give the share of a turn spent outside the models.

    .venv/bin/python -m benchmarks.voice_latency [--clients 1,2] [--turns 8] [--configs before,...]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import kocer
import numpy as np

from benchmarks.common import RESULTS, ROOT, figure, percentiles, triton, write
from benchmarks.corpus import human_clips, to_pcm16, trim_to_speech
from benchmarks.stack import AppServer, make_settings
from orchestrator.settings import Settings
from orchestrator.stages.respond import fallback_phrases

MODELS = ["vad", "stt", "embedder", "llm", "tts"]
STAGES = ["endpoint", "stt", "recall", "first_token", "first_audio", "turn_done"]
SERVER_STAGES = ["stt_done", "recall_done", "llm_first_token", "first_sentence", "first_audio"]
CONFIGS = {
    "before": {"speculative_pause_ms": 0, "stt_window_s": 30, "llm_first_sentence_threads": 1,
               "first_chunk_chars": 0, "llm_prefill_from_partials": False, "fallback_audio_cached": False},
    "after": {},
    "Whisper VAD + 15 s window": {"stt_whisper_vad": True, "stt_window_s": 15},
    "no partials": {"partial_interval_ms": 100_000},  # nor, therefore, the STT prefix or the LLM prefill
    "recall by the final transcript": {"recall_partial_min_share": 1.01},  # the prefill's memories never reused
    "one context": {},
    "no STT prefix": {"stt_prefix_from_partials": False},
    "pause 120 ms": {"speculative_pause_ms": 120},
    "no playback lead": {"tts_lead_min_s": 0.0},
    "no LLM prefill": {"llm_prefill_from_partials": False},
    "no TTS pre-emption": {},
    "turns share the critical path": {"critical_path_in_turn_order": False},
    "decodes run on": {},
    "STT decoder on 2 threads": {},
    "later sentences in phrases": {},  # the tts model's one_call parameter "0"
    "first phrase always windowed": {},  # the tts model's first_window parameter "always"
    "fallbacks synthesised when said": {"fallback_audio_cached": False},
    "no prefill after a reply": {"llm_prefill_after_reply": False},
}
# the llm model's `contexts` parameter per configuration
LLM_CONTEXTS = {"before": 1, "after": 2, "Whisper VAD + 15 s window": 2, "no partials": 2,
                "recall by the final transcript": 2, "one context": 1,
                "no STT prefix": 2, "pause 120 ms": 2, "no playback lead": 2, "no LLM prefill": 2,
                "no TTS pre-emption": 2, "turns share the critical path": 2,
                "decodes run on": 2, "STT decoder on 2 threads": 2, "later sentences in phrases": 2,
                "first phrase always windowed": 2, "fallbacks synthesised when said": 2,
                "no prefill after a reply": 2}
# configurations that only differ with several clients
MULTI_CLIENT = ("one context", "no TTS pre-emption", "turns share the critical path", "decodes run on")
# configurations compared at every client count asked for
EVERY_CLIENT_COUNT = ("STT decoder on 2 threads", "later sentences in phrases", "first phrase always windowed")
SENTENCE_COUNTERS = ("voice_tts_sentences_one_call_total", "voice_tts_sentences_phrases_total",
                     "voice_tts_phrases_cached_total")


def _ms(event: dict | None, t0: float) -> float | None:
    return None if event is None else round((event["_t"] - t0) * 1000, 1)


async def one_client(url: str, index: int, clips: list, turns: int) -> list[dict]:
    from orchestrator.client import VoiceClient

    rows = []
    async with VoiceClient(url, f"bench-{index}-{uuid.uuid4().hex[:8]}") as client:
        await client.start(f"bench-user-{uuid.uuid4().hex[:8]}")
        for t in range(turns):
            audio, reference, name = clips[(index * 3 + t) % len(clips)]
            speech_end = await client.stream(to_pcm16(audio), trailing_silence_s=1.5)
            turn_id = t + 1
            done = await client.wait_for("response.done", timeout=600, turn_id=turn_id)
            events = [e for e in client.rx.events if e.get("turn_id") == turn_id]
            first = {k: next((e for e in events if e["type"] == k), None) for k in
                     ("speech.stopped", "transcript.final", "response.started", "response.text.delta",
                      "response.audio.started")}
            audio_t = [f[0] for f in client.rx.audio.get(turn_id, [])]
            rows.append({
                "clip": name, "status": done["status"], "text": (first["transcript.final"] or {}).get("text"),
                "reference": reference,
                "endpoint": _ms(first["speech.stopped"], speech_end), "stt": _ms(first["transcript.final"], speech_end),
                "recall": _ms(first["response.started"], speech_end),
                "first_token": _ms(first["response.text.delta"], speech_end),
                "first_audio": round((min(audio_t) - speech_end) * 1000, 1) if audio_t else None,
                # the answer made: its last audio arrived (response.done waits until it has played)
                "turn_done": round((max(audio_t) - speech_end) * 1000, 1) if audio_t else _ms(done, speech_end),
                "playback_stall": playback_stall_ms(sorted(client.rx.audio.get(turn_id, []), key=lambda f: f[1]),
                                                    (first["response.audio.started"] or {}).get("sample_rate", 24000)),
                "speculative": (first["speech.stopped"] or {}).get("speculative"),
                "reply": done.get("text"), "server": done.get("timings", {}), "llm": done.get("llm", {}),
                "stt_final": done.get("stt", {})})
            await asyncio.sleep(0.5)
    return rows


async def run_clients(url: str, n: int, clips: list, turns: int) -> list[dict]:
    results = await asyncio.gather(*(one_client(url, i, clips, turns) for i in range(n)))
    return [row for rows in results for row in rows]


def model_parameter(server, model: str, key: str, value: str) -> None:
    """Reload a model with one parameter changed (Triton's load with a config override)."""
    import json

    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    config = client.get_model_config(model)
    if config.get("parameters", {}).get(key, {}).get("string_value") == value:
        return
    config.setdefault("parameters", {})[key] = {"string_value": value}
    client.load_model(model, config=json.dumps(config))


def playback(frames: list, rate: int) -> tuple[float, float | None]:
    """A listener's playback of the reply's (receive time, seq, pcm) frames in order: it starts with
    the first chunk and waits whenever the next one has not arrived by the time the audio before it
    has played. Returns the silence heard inside the reply (s) and when the last audio has played."""
    clock, stall = None, 0.0
    for t, _seq, pcm in frames:
        if clock is None:
            clock = t
        elif t > clock:
            stall, clock = stall + t - clock, t
        clock += len(pcm) / 2 / rate
    return stall, clock


def playback_stall_ms(frames: list, rate: int) -> float:
    return round(playback(frames, rate)[0] * 1000, 1)


def speculations() -> dict[str, float]:
    """Turns started at a pause so far in this process (the orchestrator runs in it), by outcome."""
    from prometheus_client import REGISTRY

    return {o: REGISTRY.get_sample_value("voice_speculations_total", {"outcome": o}) or 0.0
            for o in ("committed", "cancelled")}


def is_fallback(row: dict) -> bool:
    """A reply the guard turned into one of the default fallbacks."""
    return any(f in (row["reply"] or "") for f in fallback_phrases(tuple(Settings(_env_file=None).reply_fallbacks)))


def summarise(rows: list[dict]) -> dict:
    out = {s: percentiles(r[s] for r in rows if r[s] is not None) for s in STAGES}
    out["server_ms"] = {s: percentiles(r["server"][s] for r in rows if s in r["server"]) for s in SERVER_STAGES}
    out["statuses"] = {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
    heard = [r for r in rows if r["text"] is not None]
    out["stt_cer"] = round(kocer.cer([r["reference"] for r in heard], [r["text"] for r in heard]), 4) if heard else None
    out["playback_stall_ms"] = percentiles(r["playback_stall"] for r in rows)
    out["turns_with_stall_over_100ms"] = sum(r["playback_stall"] > 100 for r in rows)
    out["turns"] = len(rows)
    # how each turn's generation started in the llm model: prompt tokens evaluated at the turn (the rest
    # was in the KV cache, prefilled while the user spoke), its wait for a context, time to first token
    started = [r["llm"] for r in rows if "prompt_cached" in (r["llm"] or {})]
    out["llm_start"] = {
        "turns": len(started),
        "prompt_evaluated": percentiles(s["prompt_tokens"] - s["prompt_cached"] for s in started),
        "context_wait_ms": percentiles(s.get("context_wait_ms", 0.0) for s in started),
        "ttft_ms": percentiles(s["ttft_ms"] for s in started if "ttft_ms" in s)}
    # the final transcript's model time, and its wait before it (a partial in flight, transport)
    finals = [r["stt_final"] for r in rows if "infer_ms" in (r.get("stt_final") or {})]
    out["stt_final"] = {"turns": len(finals), "infer_ms": percentiles(s["infer_ms"] for s in finals),
                        "waited_ms": percentiles(s["waited_ms"] for s in finals)}
    # replies the guard turned into a fallback (the phrase cache serves them) apart from the LLM's own
    for kind, wanted in (("fallback", True), ("llm", False)):
        rows_of = [r for r in rows if is_fallback(r) == wanted]
        out[f"first_audio_{kind}_replies"] = {
            "turns": len(rows_of), **percentiles(r["first_audio"] for r in rows_of if r["first_audio"] is not None)}
    return out


def outside_share(after: dict, rows: list[dict], per_clip: dict[str, dict], started_at: float) -> dict:
    """The part of first audio outside the models, turn by turn: with speculation the models start at
    the pause, so a turn's outside time is its first audio - (the pause + the same clip's models'
    own time in-process). The models' time depends on the reply: the LLM's own first sentence goes
    through TTS; a fallback served from the phrase cache has none, so its path ends at the LLM's first
    sentence (the one the guard held back). p50 over the turns of each kind."""
    out = {"endpoint_p50_ms": after["endpoint"]["p50"], "models_start_ms": started_at}
    fallback_cached = bool(after["tts_sentences"].get("phrases_cached_total"))
    for kind in ("llm", "fallback"):
        stage = "first_sentence" if kind == "fallback" and fallback_cached else "first_audio"
        turns = [(r["first_audio"], per_clip[r["clip"]][stage]) for r in rows
                 if is_fallback(r) == (kind == "fallback") and r["first_audio"] is not None and r["clip"] in per_clip]
        if not turns:
            continue
        outside = [heard - started_at - models for heard, models in turns]
        out[f"{kind}_replies"] = {
            "turns": len(turns), "voice_to_voice_p50_ms": percentiles(h for h, _ in turns)["p50"],
            "models_p50_ms": percentiles(m for _, m in turns)["p50"],
            "outside_p50_ms": percentiles(outside)["p50"],
            "share": round(float(np.median([o / h for o, (h, _) in zip(outside, turns)])), 3)}
    return out


def in_process_critical_path(clips: list) -> dict[str, dict]:
    """The models alone, back to back in this process, per clip: STT, LLM until its first sentence, TTS
    first chunk (ms). The LLM sees the pipeline's prompt (exemplars included) with the KV cache a turn
    finds: the prompt up to the transcript's last two words prefilled, as the partial transcripts do
    while the user speaks."""
    from orchestrator.settings import DEFAULT_SYSTEM_PROMPT, Settings
    from orchestrator.stages.prompting import build_messages
    from RealTime_zeroshot_TTS_ko import load_engine
    from RealTime_zeroshot_TTS_ko.text.splitter import SentenceSplitter
    from triton_models.llm import GenOptions, load_llm, stream_chat
    from triton_models.stt import SttOptions, WhisperTranscriber

    repo = ROOT / "model_repository"
    stt = WhisperTranscriber(next((repo / "stt").glob("*/whisper")))
    llm = load_llm("llama_cpp", next((repo / "llm").glob("*/*.gguf")))
    tts = load_engine("kokoro", next((repo / "tts").glob("*/kokoro")))
    cfg = Settings(_env_file=None)  # the pipeline's own first-chunk and thread settings
    stt.transcribe(clips[0][0])
    runs = {}
    for audio, _text, name in clips:
        t0 = time.perf_counter()
        text = stt.transcribe(audio, SttOptions())["text"] or "안녕하세요"
        t_stt = time.perf_counter()
        splitter, first_sentence, t_tok = SentenceSplitter(first_chunk_max=cfg.first_chunk_chars), None, None
        messages = build_messages(DEFAULT_SYSTEM_PROMPT, [], [], text)
        if cfg.llm_prefill_from_partials:
            heard_so_far = " ".join(text.split()[:-2]) or text
            llm.prefill([*messages[:-1], {"role": "user", "content": heard_so_far}])
        t0 += time.perf_counter() - t_stt  # the prefill ran while the user spoke: not on the critical path
        t_stt = time.perf_counter()
        opts = GenOptions(max_tokens=cfg.llm_max_tokens, threads=cfg.llm_threads,
                          first_threads=cfg.llm_first_sentence_threads, first_clause_chars=cfg.first_chunk_chars)
        for delta in stream_chat(llm, messages, opts, {}):
            t_tok = t_tok or time.perf_counter()
            if sentences := splitter.push(delta):
                first_sentence = sentences[0]
                break
        first_sentence = first_sentence or (splitter.flush() or ["네."])[0]
        t_sentence = time.perf_counter()
        next(iter(tts.stream(first_sentence, windowed_first=True)))  # as the tts model speaks a reply's first
        t_audio = time.perf_counter()
        runs[name] = {"stt": (t_stt - t0) * 1000, "first_token": (t_tok - t0) * 1000,
                      "first_sentence": (t_sentence - t0) * 1000, "first_audio": (t_audio - t0) * 1000}
    return runs


def plot(path: Path, summary: dict) -> Path:
    with figure(path) as ax:
        labels = list(summary)
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            vals = [summary[label][s]["p50"] for s in STAGES]
            ax.bar(np.arange(len(STAGES)) + i * width, vals, width, label=f"{label} p50")
        ax.axhline(1500, color="red", linestyle="--", linewidth=1, label="1.5 s target (first audio)")
        ax.set_xticks(np.arange(len(STAGES)) + width * (len(labels) - 1) / 2, STAGES)
        ax.set_ylabel("ms after the last speech sample")
        ax.set_title("Voice→voice on human Korean speech (ko_speech_dev), 2-core CPU")
        ax.legend(fontsize=7)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,2", help="client counts for the 'after' configuration")
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--name", default="voice_latency", help="results file name")
    parser.add_argument("--configs", default=",".join(c for c in CONFIGS if c != "after"),
                        help="the single-client configurations to run besides 'after' (comma-separated)")
    args = parser.parse_args()
    clips = [(trim_to_speech(a), t, n) for a, t, n in human_clips()]
    summary, rows_by = {}, {}
    with triton(MODELS, port=18600) as server, tempfile.TemporaryDirectory() as tmp:
        chosen = [c for c in args.configs.split(",") if c]  # "" runs the defaults only
        runs = [("before", 1)] * ("before" in chosen) + [("after", int(n)) for n in args.clients.split(",")] \
            + [(c, int(n)) for c in MULTI_CLIENT if c in chosen for n in args.clients.split(",") if int(n) > 1] \
            + [(c, int(n)) for c in EVERY_CLIENT_COUNT if c in chosen for n in args.clients.split(",")] \
            + [(c, 1) for c in chosen if c not in ("before", "after", *MULTI_CLIENT, *EVERY_CLIENT_COUNT)]
        for label, n in runs:
            model_parameter(server, "llm", "contexts", str(LLM_CONTEXTS[label]))
            model_parameter(server, "tts", "preempt", "0" if label == "no TTS pre-emption" else "1")
            model_parameter(server, "tts", "stop_for_critical", "0" if label == "decodes run on" else "1")
            model_parameter(server, "tts", "one_call", "0" if label == "later sentences in phrases" else "1")
            model_parameter(server, "tts", "first_window", "always" if label == "first phrase always windowed" else "auto")
            model_parameter(server, "stt", "decoder_threads", "2" if label == "STT decoder on 2 threads" else "1")
            settings = make_settings(server, Path(tmp) / label, **CONFIGS[label],
                                     database_url="mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_bench")
            with AppServer(settings) as app:
                asyncio.run(run_clients(app.ws, 1, clips[-1:], 1))  # warm-up turn (not counted)
                # background TTS decodes stopped for a reply's first audio (the tts model's counter)
                before, preempted = speculations(), server.counter("voice_tts_preempted_total")
                sentences = {m: server.counter(m) for m in SENTENCE_COUNTERS}
                rows = asyncio.run(run_clients(app.ws, n, clips, args.turns))
            key = f"{label}, {n} client{'s' if n > 1 else ''}"
            summary[key], rows_by[key] = summarise(rows), rows
            summary[key]["speculations"] = {k: v - before[k] for k, v in speculations().items()}
            summary[key]["tts_preempted"] = server.counter("voice_tts_preempted_total") - preempted
            # reply sentences longer than a first phrase: one Kokoro call or phrases (KokoroEngine.stream)
            summary[key]["tts_sentences"] = {m.removeprefix("voice_tts_"): server.counter(m) - v
                                             for m, v in sentences.items()}
            print(key, {s: summary[key][s]["p50"] for s in STAGES}, flush=True)
    share = models_only = per_clip = None
    if "after, 1 client" in summary:  # the outside-models share is of the defaults at one client
        heard = {r["clip"] for r in rows_by["after, 1 client"]}
        per_clip = in_process_critical_path([c for c in clips if c[2] in heard])
        models_only = {k: percentiles(r[k] for r in per_clip.values())["p50"] for k in next(iter(per_clip.values()))}
        share = outside_share(summary["after, 1 client"], rows_by["after, 1 client"], per_clip,
                              Settings(_env_file=None).speculative_pause_ms)  # the defaults' ("after")
    write(args.name, {
        "material": "ko_speech_dev (Zeroth-Korean speaker 104 + Picovoice test clip), trailing silence cut",
        "configs": CONFIGS, "llm_contexts": LLM_CONTEXTS, "summary": summary, "in_process_models_ms": models_only,
        "in_process_per_clip_ms": per_clip, "share_outside_models": share,
        "rows": rows_by, "plot": str(plot(RESULTS / f"{args.name}.png", summary))})


if __name__ == "__main__":
    main()
