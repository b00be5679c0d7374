"""The orchestrator image's Python environment, built the way docker/orchestrator.Dockerfile builds it
(the same package list from requirements.txt, in a clean venv), imports and creates the app; where a
Docker daemon exists, the image itself is built."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "orchestrator.Dockerfile"


def image_requirements() -> list[str]:
    """The lines of requirements.txt the Dockerfile's grep selects."""
    pattern = re.search(r"grep -E '([^']+)' requirements.txt", DOCKERFILE.read_text()).group(1)
    return [line for line in (ROOT / "requirements.txt").read_text().splitlines() if re.match(pattern, line)]


def test_the_image_environment_imports_the_app(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (tmp_path / "req-app.txt").write_text("\n".join(image_requirements()) + "\n")
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", "-r",
                    tmp_path / "req-app.txt"], check=True, timeout=900)
    app_dir = tmp_path / "app"  # only what the Dockerfile copies
    shutil.copytree(ROOT / "orchestrator", app_dir / "orchestrator")
    shutil.copytree(ROOT / "RealTime_zeroshot_TTS_ko", app_dir / "RealTime_zeroshot_TTS_ko")
    (app_dir / "triton_models").mkdir()
    for name in ("__init__.py", "common.py"):
        shutil.copy2(ROOT / "triton_models" / name, app_dir / "triton_models" / name)
    out = subprocess.run([venv / "bin" / "python", "-c",
                          "from orchestrator.app import create_app; from orchestrator.settings import Settings; "
                          "create_app(Settings(_env_file=None)); print('app ok')"],
                         cwd=app_dir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "app ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no Docker client here; the environment test above stands in")
def test_docker_build():
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon reachable")
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", "voice-orchestrator:test", str(ROOT)],
                   check=True, timeout=1800)
