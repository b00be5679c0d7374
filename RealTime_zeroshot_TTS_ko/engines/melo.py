"""The seed's production engine: MeloTTS-KR synthesizer + OpenVoice v2 tone-colour converter.

Checkpoints in their real formats, each a folder with `config.json` (the projects' hparams) and
`checkpoint.pth` ({"model": state_dict}); the OpenVoice folder may hold `base_se.pth`, the base
speaker's tone-colour embedding. The network code is MeloTTS's and OpenVoice's own, from the PyPI
packages `melotts-plus` (module `meloplus`) and `openvoice-cli`, installed without their heavy
dependency pins; only their model modules are imported (their package `__init__`s pull web UIs and
hub downloads). No weights exist offline: tests write random weights in exactly these formats.

Korean symbols are Melo's: g2pkk pronunciation split into Hangul jamo (our shared front end), tone 0
of the KR block, language id KR, and the 768-d BERT features of kykim/bert-kor-base when a `bert/`
folder (Hugging Face format) is given; without one they are zeros, as MeloTTS's `disable_bert` does
(melo_text.py).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
import types
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine, resample
from RealTime_zeroshot_TTS_ko.engines.melo_text import KoreanBert, melo_sequence


class MeloText(NamedTuple):
    ids: list[int]
    tones: list[int]
    langs: list[int]
    norm: str
    word2ph: list[int]


def model_module(package: str, module: str):
    """Import package.module without running the package's __init__ (it pulls UIs / hub code)."""
    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise ImportError(f"{package} is not installed (scripts/setup.sh installs it with --no-deps)")
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = stub
    return importlib.import_module(f"{package}.{module}")


def hparams(path: Path):
    def ns(obj):
        if isinstance(obj, dict):
            return types.SimpleNamespace(**{k: ns(v) for k, v in obj.items()}, _dict=obj)
        return obj

    return ns(json.loads(Path(path).read_text(encoding="utf-8")))


def load_melo(melo_dir: Path, device: str = "cpu"):
    """MeloTTS SynthesizerTrn from config.json + checkpoint.pth, exactly as MeloTTS's api.TTS builds it."""
    import torch

    models = model_module("meloplus", "models")
    hps = hparams(melo_dir / "config.json")
    net = models.SynthesizerTrn(len(hps.symbols), hps.data.filter_length // 2 + 1,
                                hps.train.segment_size // hps.data.hop_length, n_speakers=hps.data.n_speakers,
                                num_tones=hps.num_tones, num_languages=hps.num_languages, **hps.model._dict).to(device)
    state = torch.load(melo_dir / "checkpoint.pth", map_location=device, weights_only=True)
    net.load_state_dict(state["model"], strict=True)
    return net.eval(), hps


def load_converter(openvoice_dir: Path, device: str = "cpu"):
    """OpenVoice v2 ToneColorConverter network, as openvoice's api builds it (no watermark model)."""
    import torch

    models = model_module("openvoice_cli", "models")
    hps = hparams(openvoice_dir / "config.json")
    net = models.SynthesizerTrn(len(getattr(hps, "symbols", [])), hps.data.filter_length // 2 + 1,
                                n_speakers=hps.data.n_speakers, **hps.model._dict).to(device)
    state = torch.load(openvoice_dir / "checkpoint.pth", map_location=device, weights_only=True)
    net.load_state_dict(state["model"], strict=True)
    return net.eval(), hps


class ToneColours:
    """Voice bank of the Melo path: voice id → target tone-colour embedding ("default": none)."""

    def __init__(self):
        self.embeddings: dict = {"default": None}

    def get(self, voice: str):
        if voice not in self.embeddings:
            raise KeyError(f"unknown voice {voice!r}")
        return self.embeddings[voice]


class MeloOpenVoiceEngine(TtsEngine):
    def __init__(self, melo_dir: Path, openvoice_dir: Path | None = None, device: str = "cpu", tau: float = 0.3,
                 bert_dir: Path | None = None):
        import torch

        torch.set_grad_enabled(False)
        self.device, self.tau = device, tau
        self.melo, self.hps = load_melo(Path(melo_dir), device)
        self.sample_rate = int(self.hps.data.sampling_rate)
        self.symbol_to_id = {s: i for i, s in enumerate(self.hps.symbols)}
        self.speaker_id = next(iter(vars(self.hps.data.spk2id).values())) if hasattr(self.hps.data, "spk2id") else 0
        self.bert = KoreanBert(Path(bert_dir), device) if bert_dir else None
        self.converter = self.conv_hps = self.source_se = None
        if openvoice_dir:
            self.converter, self.conv_hps = load_converter(Path(openvoice_dir), device)
            base = Path(openvoice_dir) / "base_se.pth"
            self.source_se = torch.load(base, map_location=device) if base.exists() else None
        self.voices = ToneColours()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, weights_dir: Path | None = None, **kwargs) -> "MeloOpenVoiceEngine":
        """weights_dir holds melo/, openvoice/ and bert/ (the model-repository layout), or pass them explicitly."""
        import os

        root = Path(weights_dir or os.environ.get("MELO_WEIGHTS_DIR", ""))
        melo = Path(kwargs.pop("melo_dir", root / "melo"))
        openvoice = kwargs.pop("openvoice_dir", root / "openvoice")
        bert = kwargs.pop("bert_dir", root / "bert")
        kwargs["bert_dir"] = bert if bert and (Path(bert) / "config.json").exists() else None
        kwargs.pop("threads", None)
        kwargs.pop("voice_dir", None)
        return cls(melo, openvoice if openvoice and Path(openvoice).exists() else None, **kwargs)

    # ------------------------------------------------------------ text → Melo symbols
    def symbols(self, text: str) -> MeloText:
        melo_symbols = model_module("meloplus", "text.symbols")  # Melo's own language/tone tables
        add_blank = getattr(self.hps.data, "add_blank", True)
        norm, ids, word2ph = melo_sequence(text, self.symbol_to_id, self.bert, add_blank)
        tone, lang = melo_symbols.language_tone_start_map["KR"], melo_symbols.language_id_map["KR"]
        real = [not add_blank or i % 2 == 1 for i in range(len(ids))]  # blanks get tone 0, language 0
        return MeloText(ids, [tone if r else 0 for r in real], [lang if r else 0 for r in real], norm, word2ph)

    # ------------------------------------------------------------ synthesis
    def _melo(self, text: str, speed: float) -> np.ndarray:
        import torch

        seq = self.symbols(text)
        if not any(seq.ids):  # only "_" ends and blanks (both id 0): nothing to say
            return np.zeros(0, np.float32)
        n, dev = len(seq.ids), self.device
        ja_bert = self.bert.features(seq.norm, seq.word2ph)[None] if self.bert else torch.zeros(1, 768, n, device=dev)
        audio = self.melo.infer(torch.LongTensor(seq.ids)[None].to(dev), torch.LongTensor([n]).to(dev),
                                torch.LongTensor([self.speaker_id]).to(dev), torch.LongTensor(seq.tones)[None].to(dev),
                                torch.LongTensor(seq.langs)[None].to(dev), torch.zeros(1, 1024, n, device=dev), ja_bert,
                                sdp_ratio=0.2, noise_scale=0.6, noise_scale_w=0.8, length_scale=1.0 / speed)[0]
        return audio[0, 0].float().cpu().numpy()

    def _spectrogram(self, audio: np.ndarray):
        import torch

        mel = model_module("openvoice_cli", "mel_processing")
        d = self.conv_hps.data
        y = torch.FloatTensor(audio).unsqueeze(0).to(self.device)
        return mel.spectrogram_torch(y, d.filter_length, d.sampling_rate, d.hop_length, d.win_length, center=False)

    def tone_colour(self, audio: np.ndarray, sr: int):
        """OpenVoice's extract_se: the reference encoder over the clip's linear spectrogram."""
        spec = self._spectrogram(resample(audio, sr, self.conv_hps.data.sampling_rate))
        return self.converter.ref_enc(spec.transpose(1, 2)).unsqueeze(-1)

    def convert(self, audio: np.ndarray, target_se) -> np.ndarray:
        import torch

        conv_rate = self.conv_hps.data.sampling_rate
        wav = resample(audio, self.sample_rate, conv_rate)
        if self.source_se is None:  # the base speaker's colour, measured once on its own voice
            self.source_se = self.tone_colour(self._melo("안녕하세요, 반갑습니다. 오늘도 좋은 하루 보내세요.", 1.0),
                                              self.sample_rate)
        spec = self._spectrogram(wav)
        out = self.converter.voice_conversion(spec, torch.LongTensor([spec.size(-1)]).to(self.device),
                                              sid_src=self.source_se, sid_tgt=target_se, tau=self.tau)[0]
        return resample(out[0, 0].float().cpu().numpy(), conv_rate, self.sample_rate)

    def stream(self, text: str, voice: str = "default", speed: float | None = None,
               windowed_first: bool = False, ahead_s: float = 0.0) -> Iterator[SynthChunk]:
        target = self.voices.get(voice)
        with self._lock:
            audio = self._melo(text, speed or 1.0)
            if target is not None and self.converter is not None and len(audio):
                audio = self.convert(audio, target)
        yield SynthChunk(np.clip(audio, -1, 1).astype(np.float32), text, last=True)

    def enroll(self, voice_id: str, reference: np.ndarray, sr: int, pause=None) -> dict:
        if self.converter is None:
            raise ValueError("zero-shot voices need the OpenVoice converter checkpoint")
        with self._lock:
            self.voices.embeddings[voice_id] = self.tone_colour(reference, sr)
        return {"voice": voice_id, "engine": "melo+openvoice"}
