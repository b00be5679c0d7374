"""The OpenAI Realtime session as a client sees it: both dialects' `session.update`, and the session
object echoed in `session.created/updated`.

GA nests audio settings (`audio.input.format {type: audio/pcm, rate: 24000}`, `audio.input.turn_detection`,
`audio.output.voice`, `output_modalities`); beta is flat (`input_audio_format: pcm16`, `turn_detection`,
`voice`, `modalities`). Unknown fields are ignored (clients send `tracing`, `include`, ...); a value we
cannot honour is refused with a `ConfigError` naming its parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RATE = 24000  # the protocol's PCM16 rate, in and out
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
                 "marin", "cedar"}  # accepted and spoken in the server's default voice
EAGERNESS_SILENCE_MS = {"low": 1000, "medium": 600, "auto": 600, "high": 400}  # semantic_vad → endpoint silence


class ConfigError(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass
class TurnDetection:
    type: str = "server_vad"            # semantic_vad is accepted and runs as server_vad
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 600
    create_response: bool = True
    interrupt_response: bool = True
    eagerness: str | None = None

    def render(self) -> dict:
        out = {"type": self.type, "threshold": self.threshold, "prefix_padding_ms": self.prefix_padding_ms,
               "silence_duration_ms": self.silence_duration_ms, "create_response": self.create_response,
               "interrupt_response": self.interrupt_response}
        if self.type == "semantic_vad":
            out = {"type": self.type, "eagerness": self.eagerness or "auto", "create_response": self.create_response,
                   "interrupt_response": self.interrupt_response}
        return out


@dataclass
class RealtimeConfig:
    session_id: str
    model: str
    instructions: str
    voice: str = "default"
    text_only: bool = False
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    transcription_model: str = "whisper-1"
    max_output_tokens: int | str = "inf"

    # ---------------------------------------------------------------- session.update
    def update(self, session: dict, beta: bool) -> None:
        if not isinstance(session, dict):
            raise ConfigError("session", "session must be an object")
        if "instructions" in session:
            self.instructions = _text(session["instructions"], "session.instructions", 20000)
        if beta:
            self._update_beta(session)
        else:
            self._update_ga(session)
        if "max_output_tokens" in session or "max_response_output_tokens" in session:
            value = session.get("max_output_tokens", session.get("max_response_output_tokens"))
            if value != "inf" and not (isinstance(value, int) and 1 <= value <= 4096):
                raise ConfigError("session.max_output_tokens", "an integer 1–4096 or \"inf\"")
            self.max_output_tokens = value
        tools = session.get("tools")
        if tools:
            raise ConfigError("session.tools", "function tools are not supported by this server")

    def _update_beta(self, s: dict) -> None:
        for key in ("input_audio_format", "output_audio_format"):
            if key in s and s[key] != "pcm16":
                raise ConfigError(f"session.{key}", "only pcm16 (24 kHz PCM16 mono) is supported")
        if "modalities" in s:
            self.text_only = _modalities(s["modalities"], "session.modalities")
        if "voice" in s:
            self.voice = _voice(s["voice"], "session.voice")
        if "turn_detection" in s:
            self.turn_detection = _turn_detection(s["turn_detection"], "session.turn_detection", self.turn_detection)
        if isinstance(s.get("input_audio_transcription"), dict):
            self.transcription_model = str(s["input_audio_transcription"].get("model") or self.transcription_model)

    def _update_ga(self, s: dict) -> None:
        if s.get("type", "realtime") != "realtime":
            raise ConfigError("session.type", "only realtime sessions are served (not transcription)")
        if "output_modalities" in s:
            self.text_only = _modalities(s["output_modalities"], "session.output_modalities")
        audio = s.get("audio") or {}
        if not isinstance(audio, dict):
            raise ConfigError("session.audio", "audio must be an object")
        for side in ("input", "output"):
            fmt = (audio.get(side) or {}).get("format")
            if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "audio/pcm"
                                        and fmt.get("rate", RATE) == RATE):
                raise ConfigError(f"session.audio.{side}.format", "only audio/pcm at 24000 Hz is supported")
        source = audio.get("input") or {}
        if "turn_detection" in source:
            self.turn_detection = _turn_detection(source["turn_detection"], "session.audio.input.turn_detection",
                                                  self.turn_detection)
        if isinstance(source.get("transcription"), dict):
            self.transcription_model = str(source["transcription"].get("model") or self.transcription_model)
        if "voice" in (audio.get("output") or {}):
            self.voice = _voice(audio["output"]["voice"], "session.audio.output.voice")

    # ---------------------------------------------------------------- the echoed session object
    @property
    def server_voice(self) -> str | None:
        """The TTS voice to use: None = the session's own (default or enrolled)."""
        return None if self.voice == "default" or self.voice in OPENAI_VOICES else self.voice

    def render(self, beta: bool) -> dict:
        detection = self.turn_detection.render() if self.turn_detection else None
        common = {"id": self.session_id, "object": "realtime.session", "model": self.model,
                  "instructions": self.instructions, "tools": [], "tool_choice": "auto"}
        if beta:  # the beta types allow only OpenAI's model names here: ours is left out
            common.pop("model")
            return {**common, "modalities": ["text"] if self.text_only else ["audio", "text"], "voice": self.voice,
                    "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                    "input_audio_transcription": {"model": self.transcription_model}, "turn_detection": detection,
                    "temperature": 0.8, "max_response_output_tokens": self.max_output_tokens}
        pcm = {"type": "audio/pcm", "rate": RATE}
        return {**common, "type": "realtime", "output_modalities": ["text"] if self.text_only else ["audio"],
                "audio": {"input": {"format": pcm, "transcription": {"model": self.transcription_model},
                                    "noise_reduction": None, "turn_detection": detection},
                          "output": {"format": pcm, "voice": self.voice, "speed": 1.0}},
                "max_output_tokens": self.max_output_tokens}


def _text(value, param: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ConfigError(param, f"a string of at most {limit} characters")
    return value


def _voice(value, param: str) -> str:
    if isinstance(value, dict) and "id" in value:  # GA allows {"id": "voice_..."}
        value = value["id"]
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ConfigError(param, "a voice name")
    return value


def _modalities(value, param: str) -> bool:
    """True for text only; audio replies always carry their transcript."""
    if not isinstance(value, list) or not value or not set(value) <= {"audio", "text"}:
        raise ConfigError(param, 'a list of "audio" and/or "text"')
    return "audio" not in value


def _turn_detection(value, param: str, current: TurnDetection | None) -> TurnDetection | None:
    if value is None:
        return None  # manual turns: the client commits and asks for responses
    if not isinstance(value, dict):
        raise ConfigError(param, "an object or null")
    kind = value.get("type", current.type if current else "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ConfigError(f"{param}.type", "server_vad or semantic_vad")
    base = TurnDetection(**{**(current.__dict__ if current else {}), "type": kind})
    if kind == "semantic_vad":
        eagerness = value.get("eagerness", "auto")
        if eagerness not in EAGERNESS_SILENCE_MS:
            raise ConfigError(f"{param}.eagerness", "low, medium, high or auto")
        base.eagerness, base.silence_duration_ms = eagerness, EAGERNESS_SILENCE_MS[eagerness]
    checks = {"threshold": (float, 0.0, 1.0), "prefix_padding_ms": (int, 0, 2000),
              "silence_duration_ms": (int, 100, 5000)}
    for name, (kind_, low, high) in checks.items():
        if value.get(name) is not None:
            v = value[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise ConfigError(f"{param}.{name}", f"a number from {low} to {high}")
            setattr(base, name, kind_(v))
    for name in ("create_response", "interrupt_response"):
        if name in value and value[name] is not None:
            if not isinstance(value[name], bool):
                raise ConfigError(f"{param}.{name}", "true or false")
            setattr(base, name, value[name])
    return base
