# Run on a GPU machine (the device tool): python3 benchmarks/gpu_llm.py <dir with a saved Gemma 3 tokenizer>
"""GPU run of the production LLM path: our TransformersEngine (triton_models/llm_transformers.py) on Gemma-shaped
models with random weights (no Gemma weights offline), real Gemma 3 tokenizer; bf16 on CUDA."""
import json, sys, time, os
sys.path.insert(0, os.getcwd())
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, AutoTokenizer
from triton_models.llm import GenOptions, stream_chat
from triton_models.llm_transformers import TransformersEngine
SHAPES = {  # layer shapes of the public Gemma 3 text models
    "gemma3-1b-shape": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256),
    "gemma3-4b-shape": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4, head_dim=256),
}
tok = AutoTokenizer.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else ".gpu/gemma_tok")
out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
msgs = [{"role": "system", "content": "당신은 친절한 한국어 음성 비서입니다."}, {"role": "user", "content": "한국의 사계절에 대해 설명해 주세요."}]
for name, shape in SHAPES.items():
    d = f"/tmp/{name}"
    cfg = Gemma3TextConfig(vocab_size=len(tok), max_position_embeddings=8192, **shape)
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = Gemma3ForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(d); tok.save_pretrained(d); del m; torch.cuda.empty_cache()
    t = time.perf_counter(); eng = TransformersEngine(d, n_ctx=4096); load_s = time.perf_counter() - t
    runs = []
    for i in range(4):
        s = {}; list(stream_chat(eng, msgs, GenOptions(max_tokens=128, temperature=0.0), s)); runs.append(s)
    out[name] = {"load_s": round(load_s, 1), "ttft_ms": [r["ttft_ms"] for r in runs[1:]], "tok_s": [r.get("tok_s") for r in runs[1:]],
                 "tokens": [r["tokens"] for r in runs[1:]], "params_M": round(sum(p.numel() for p in eng.model.parameters()) / 1e6)}
    print(json.dumps(out[name]), flush=True)
    del eng; torch.cuda.empty_cache()
os.makedirs(os.environ.get("OUT", "/tmp/out"), exist_ok=True)
json.dump(out, open(os.path.join(os.environ.get("OUT", "/tmp/out"), "gpu_llm.json"), "w"), indent=1)
print(json.dumps(out))
