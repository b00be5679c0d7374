"""Shared benchmark plumbing: a private Triton, percentiles, JSON + PNG output."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def percentiles(values, ps=(50, 95)) -> dict:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(arr):
        return {f"p{p}": None for p in ps}
    return {f"p{p}": round(float(np.percentile(arr, p)), 2) for p in ps} | {"mean": round(float(arr.mean()), 2)}


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:  # VMs of one size differ by up to ~2x in these benchmarks by CPU model
        lines = open("/proc/cpuinfo", encoding="utf-8").read().splitlines()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
        info["cpu_isa"] = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
                           if f in flags]  # int8 kernels (Kokoro, Whisper, llama.cpp) depend on them
    except (OSError, StopIteration):
        pass
    try:
        import subprocess

        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        if gpu.returncode == 0:
            info["gpu"] = gpu.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


@contextmanager
def triton(models: list[str], port: int = 18500, repo: Path | None = None):
    from triton_models.launcher import TritonServer

    with TritonServer(repo or ROOT / "model_repository", http_port=port, grpc_port=port + 1,
                      metrics_port=port + 2, load_models=models) as server:
        yield server


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(json.dumps(result, ensure_ascii=False))
    return path


@contextmanager
def figure(path: Path, size: tuple[float, float] = (8, 4)):
    """One matplotlib axes, saved to `path` (PNG) when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def bar_plot(path: Path, title: str, groups: dict[str, dict[str, float]], ylabel: str) -> Path:
    """groups: {metric: {series: value}} → grouped bars, one colour per series."""
    metrics = list(groups)
    series = sorted({s for g in groups.values() for s in g})
    with figure(path, (max(6, 1.6 * len(metrics)), 4)) as ax:
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs = [m + i * width for m in range(len(metrics))]
            ax.bar(xs, [groups[m].get(s) or 0 for m in metrics], width, label=s)
        ax.set_xticks([m + width * (len(series) - 1) / 2 for m in range(len(metrics))], metrics, rotation=15)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
    return path
