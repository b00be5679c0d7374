"""Start and stop the real Triton server (the `tritonserver` binary from the nvidia-pytriton wheel).

The lite server in that wheel has the Python backend but no onnxruntime backend. We add a
Python-based backend named `onnxruntime` (triton_models/ort_backend.py) to a private backend
directory, so one repository whose ONNX models say `backend: "onnxruntime"` runs here and in the
NVIDIA GPU container (where the real onnxruntime backend answers to that name).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from triton_models.common import bootstrap_source

log = logging.getLogger("triton.launcher")

REPO_ROOT = Path(__file__).resolve().parent.parent


class TritonStartError(RuntimeError):
    """Triton did not become ready; the message carries the failing models and the log tail."""


def pytriton_home() -> Path:
    import pytriton  # the wheel that carries tritonserver

    return Path(pytriton.__file__).parent / "tritonserver"


def model_pythonpath() -> str:
    """Paths the Python-backend stub must see (it runs isolated and ignores PYTHONPATH)."""
    return os.pathsep.join([str(REPO_ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])


def prepare_backends(target: Path) -> Path:
    """Build a backend directory: the wheel's Python backend + its stub + our ORT shim."""
    home = pytriton_home()
    py_dir = target / "python"
    if not (py_dir / "triton_python_backend_stub").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(home / "backends" / "python", py_dir)
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = home / "python_backend_stubs" / ver / "triton_python_backend_stub"
        shutil.copy2(stub, py_dir / "triton_python_backend_stub")
    ort_dir = target / "onnxruntime"
    ort_dir.mkdir(parents=True, exist_ok=True)
    (ort_dir / "model.py").write_text(bootstrap_source("triton_models.ort_backend"))
    return target


@dataclass
class TritonServer:
    model_repository: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    explicit: bool = True
    load_models: list[str] = field(default_factory=list)  # loaded at start in explicit mode
    workdir: Path = REPO_ROOT / ".triton"
    log_path: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 300.0) -> "TritonServer":
        home = pytriton_home()
        backends = prepare_backends(self.workdir / "backends")
        self.log_path = self.log_path or self.workdir / f"triton-{self.grpc_port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(home / "bin" / "tritonserver"),
            f"--model-repository={Path(self.model_repository).resolve()}",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            # Triton has no auth: loopback only (the orchestrator is on this machine)
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
            "--log-verbose=0", "--exit-on-error=false", "--strict-readiness=false",
        ]
        if self.explicit:
            cmd.append("--model-control-mode=explicit")
            cmd += [f"--load-model={m}" for m in self.load_models]
        env = dict(os.environ)
        libs = Path(home).parent.parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in [str(libs), env.get("LD_LIBRARY_PATH", "")] if p)
        env["VOICE_PYTHONPATH"] = model_pythonpath()
        # the models of this server share one critical-path folder (triton_models/priority.py)
        env.setdefault("VOICE_PRIORITY_DIR", f"/dev/shm/voice-priority-{os.getuid()}-{self.grpc_port}")
        log.info("starting tritonserver grpc=%s http=%s repo=%s", self.grpc_port, self.http_port, self.model_repository)
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(self.grpc_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise TritonStartError(f"tritonserver exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                if client.is_server_live():
                    failed = self.failed_models(client)
                    if failed:
                        self.stop()
                        raise TritonStartError(f"models failed to load: {failed}\n{self.log_tail()}")
                    if all(client.is_model_ready(m) for m in self.load_models):
                        log.info("tritonserver ready with %s", self.load_models or "no models")
                        return
            except TritonStartError:
                raise
            except Exception:  # not up yet
                pass
            time.sleep(0.2)
        self.stop()
        raise TritonStartError(f"tritonserver not ready after {timeout:.0f}s\n{self.log_tail()}")

    @staticmethod
    def failed_models(client) -> dict[str, str]:
        index = client.get_model_repository_index(as_json=True).get("models", [])
        return {m["name"]: m.get("reason", "") for m in index if m.get("state") == "UNAVAILABLE" and m.get("reason")
                and "unloaded" not in m.get("reason", "")}

    def counter(self, name: str) -> float:
        """A counter from the metrics port (the models' custom metrics), summed over its labels."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as reply:
            lines = reply.read().decode().splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{"))

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:  # a model stub that outlived tritonserver (same process group) goes with it
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log_file.close()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
