"""All configuration in one place, read from the environment and `.env` (see .env.example)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SYSTEM_PROMPT = (
    "당신은 한국어로 대화하는 음성 비서입니다. 사용자의 말에 자연스러운 존댓말 한두 문장으로 바로 답하세요. "
    "질문에는 답을 말하고, 인사나 잡담에는 짧게 공감하며 대화를 이어 가세요. "
    "사용자의 말을 그대로 따라 하거나 이 지시를 읽지 마세요. 목록, 마크다운, 이모지는 쓰지 마세요."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Triton
    triton_url: str = "127.0.0.1:8001"
    triton_http_port: int = 8000
    triton_metrics_port: int = 8002
    start_triton: bool = True  # `python -m orchestrator` starts the lite server itself
    model_repository: Path = REPO_ROOT / "model_repository"
    lazy_load: bool = False      # explicit model control: load each model on first use
    stt_enabled: bool = True
    llm_enabled: bool = True
    tts_enabled: bool = True
    stt_model: str = "stt"
    vad_model: str = "vad"
    llm_model: str = "llm"
    tts_model: str = "tts"
    embedder_model: str = "embedder"
    stt_window_s: int = 0   # Whisper's encoder window for finals: 0 = 10 or 15 s where it fits (stt.py), else 30
    # Whisper's own VAD pass on finals the listener's VAD already segmented (a second check in noisy
    # rooms); off by default: on human speech it cut syllables (CER 0.093 with it, 0.078 without)
    stt_whisper_vad: bool = False
    triton_timeout_s: float = 60.0
    triton_stream_gap_s: float = 20.0   # a stream silent this long fails (and its model is reloaded)

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8080

    # Storage
    database_url: str = "mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat"
    milvus_uri: str = str(REPO_ROOT / "data" / "milvus.db")
    milvus_collection: str = "turns"
    memory_top_k: int = 3
    memory_min_score: float = 0.846  # calibrated on e5 scores of labelled pairs (benchmarks/answers.py)
    storage_timeout_s: float = 5.0   # each MariaDB / Milvus call of a session or turn (lock waits included)
    store_retry_s: float = 120.0     # a turn that could not be stored is retried this long, then reported lost

    # Limits (every socket and session is bounded)
    max_sessions: int = 64                # open sockets on the server; past it: error server_busy + close 1013
    max_sessions_per_user: int = 4        # open sockets per API key's user
    start_timeout_s: float = 10.0         # a /ws/voice socket that sends no session.start is closed
    max_text_bytes: int = 1_500_000       # one JSON event (a voice reference is ≤ 1 MB of base64)
    ws_max_bytes: int = 8 * 1024 * 1024   # a bigger frame closes the socket (1009); up to it: an error event
    max_errors_per_s: int = 20            # error events per session per second; the rest are summarised
    connections_per_minute: int = 60      # new sockets per key's user (per client address without keys); 0 = off
    enrollments_per_hour: int = 10        # voice enrolments per user (each is seconds of CPU); 0 = off

    # Audio in: PCM16 mono 16 kHz
    input_sample_rate: int = 16000
    max_frame_bytes: int = 32000          # 1 s per binary frame at most
    max_utterance_s: float = 30.0
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 200
    vad_end_silence_ms: int = 600         # endpointing: this much silence ends the user's turn
    speculative_pause_ms: int = 250       # a pause this long starts the turn's models (0 = off); it speaks
                                          # only once the endpoint (vad_end_silence_ms) is confirmed
    partial_interval_ms: int = 900        # partial transcripts while the user speaks
    stt_prefix_from_partials: bool = True  # the final STT starts from the words two partials agreed on
    max_queued_frames: int = 500          # audio frames waiting for the VAD, per session
    turn_cancel_timeout_s: float = 2.0    # a cancelled turn gets this long to stop before it is abandoned
    error_interval_s: float = 5.0         # a repeating failure (VAD down) is reported at most this often
    barge_in_min_speech_ms: int = 250     # speech this long during playback interrupts the bot

    # LLM
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    llm_max_tokens: int = 96
    max_reply_sentences: int = 2   # generation is cancelled after this many sentences, spoken or dropped
    llm_temperature: float = 0.3   # small models answer facts better near-greedy (benchmarks/answers.py)
    # On 2 cores, llama.cpp with 2 threads stalls (busy-wait) while TTS runs beside it: decode voice
    # turns with 1 thread (~14 tok/s, still faster than speech). 0 = the model's own default.
    llm_threads: int = 1
    llm_first_sentence_threads: int = 2  # until the first sentence is out nothing else runs: use both cores
    history_turns: int = 6
    # while the user speaks, each partial transcript has the LLM evaluate the turn's prompt (history,
    # memories, the words so far) into its KV cache: the final prompt's prefill shrinks to the last words
    llm_prefill_from_partials: bool = True
    # once a reply is made (before it has played) the LLM evaluates the next turn's prompt up to the
    # user's words, the history with this exchange: a history window that moves on is evaluated then,
    # not while the next turn waits for it
    llm_prefill_after_reply: bool = True
    # the prefill's memories serve the turn when its partial has this share of the final's characters
    # (1.01 = always search again with the final transcript)
    recall_partial_min_share: float = 0.7
    # conversations' turns reach the models' critical path first come, first served (by when their
    # user stopped speaking) instead of sharing the cores when they end together
    critical_path_in_turn_order: bool = True
    # said when the reply guard drops every sentence: the one said least recently in the history
    # (REPLY_FALLBACKS='["…", "…"]' in .env)
    reply_fallbacks: list[str] = ["잘 들었어요. 조금 더 자세히 말씀해 주시겠어요?", "그 이야기를 조금 더 들려주시겠어요?",
                                  "그 부분에 대해서는 어떻게 생각하세요?"]
    # the fallbacks' audio comes from the `tts` model's phrase cache, made in the background for the
    # session's voice when it starts and when a voice is enrolled: a fallback turn speaks at once
    fallback_audio_cached: bool = True
    # the models' first calls (STT, embedder, the LLM's default prompt, the fallbacks' audio) made in the
    # background at start (warmup.py), not in a user's first turn
    warm_up_at_start: bool = True

    # TTS out
    first_chunk_chars: int = 10   # an unpunctuated first sentence goes to TTS at the first space past this
    # a reply's TTS is critical-path work (priority.py) while the listener has less than this much of
    # its audio left to play, by the reply's playout clock (respond.Playout: audio held for a commit or
    # sent late has not played; 0 = only the first chunk is critical)
    tts_lead_min_s: float = 1.0
    # a reply lasts until its audio has played on the client (each chunk in real time once sent), not
    # only until it was sent: speech until then is a barge-in, and what was not heard is not remembered
    turn_lasts_until_played: bool = True
    tts_voice: str = "default"
    output_sample_rate: int = Field(24000, description="24000 or 16000")

    # Keys (see orchestrator/auth.py): `key:user_id` pairs; none = local development (loopback only)
    api_keys: str = ""
    api_keys_file: str | None = None
    admin_key: str = ""                    # /api/admin/* (with keys on); empty = admin routes refused
    allowed_origins: str = ""              # browser origins besides the server's own (comma separated)
    realtime_model_name: str = "voice-ko"  # the model name /v1/realtime reports (clients send their own)

    log_level: str = "INFO"


@lru_cache
def get_settings() -> Settings:
    return Settings()
