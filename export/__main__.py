"""`python -m export {stt,vad,llm,tts,embedder,all} [--repo DIR] [--new-version | --version N]`.

Writes <repo>/<model>/config.pbtxt and <repo>/<model>/<version>/ (weights + a thin model.py that
imports the implementation from triton_models/). `--new-version` adds version N+1 next to the
current one: Triton (explicit mode, latest policy) switches to it on the next load_model call.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from export.models import EXPORTERS, LLM_VARIANTS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", choices=[*EXPORTERS, "all"])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent / "model_repository")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--new-version", action="store_true", help="write version latest+1")
    group.add_argument("--version", type=int, help="write exactly this version")
    parser.add_argument("--llm-variant", choices=sorted(LLM_VARIANTS), default="qwen2.5-0.5b")
    parser.add_argument("--llm-engine", choices=["llama_cpp", "transformers"], default="llama_cpp")
    parser.add_argument("--gguf", help="any local GGUF file for the llm (instead of --llm-variant)")
    parser.add_argument("--hf-dir", help="local Hugging Face model folder for --llm-engine transformers (Gemma)")
    parser.add_argument("--tts-engine", choices=["kokoro", "melo"], default="kokoro")
    parser.add_argument("--melo-dir", help="MeloTTS-KR checkpoint folder (config.json + checkpoint.pth)")
    parser.add_argument("--openvoice-dir", help="OpenVoice v2 converter folder (config.json + checkpoint.pth)")
    parser.add_argument("--melo-bert-dir", help="Korean BERT for Melo-KR, Hugging Face folder (kykim/bert-kor-base)")
    parser.add_argument("--load-into", metavar="URL",
                        help="then ask a running orchestrator (e.g. http://127.0.0.1:8080) to make Triton load it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    names = list(EXPORTERS) if "all" in args.models else args.models
    for name in names:
        kw = {"new_version": args.new_version, "version": args.version}
        if name == "llm":
            kw |= {"variant": args.llm_variant, "engine": args.llm_engine, "hf_dir": args.hf_dir, "gguf": args.gguf}
        if name == "tts":
            kw |= {"engine": args.tts_engine, "melo_dir": args.melo_dir, "openvoice_dir": args.openvoice_dir,
                   "bert_dir": args.melo_bert_dir}
        vdir = EXPORTERS[name](args.repo, **kw)
        print(f"exported {name} -> {vdir}")
        if args.load_into:
            import httpx

            key = os.environ.get("ADMIN_KEY")
            r = httpx.post(f"{args.load_into.rstrip('/')}/api/admin/models/{name}/load", timeout=600,
                           headers={"Authorization": f"Bearer {key}"} if key else None)
            r.raise_for_status()
            print(f"Triton now serves {name} version {r.json()['version']}")


if __name__ == "__main__":
    main()
