"""docker-compose.yml wiring: `docker compose config` where the client has compose, else the YAML."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose_config() -> dict:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        out = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        return json.loads(out.stdout)
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_wiring():
    cfg = compose_config()
    services = cfg["services"]
    assert {"triton", "orchestrator", "mariadb", "milvus", "etcd", "minio"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
    triton = services["triton"]
    command = triton["command"] if isinstance(triton["command"], str) else " ".join(triton["command"])
    assert "--model-control-mode=explicit" in command and "--model-repository=/models" in command
    assert any("model_repository" in str(v) and "/models" in str(v) for v in triton["volumes"])
    assert any("8002" in str(p) for p in triton["ports"])  # Triton's own metrics exposed...
    for port in triton["ports"]:  # ...on loopback only: Triton has no auth
        assert (port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]) == "127.0.0.1", port
    assert "API_KEYS" in services["orchestrator"]["environment"]
    assert "nvidia" in json.dumps(triton["deploy"])
    env = services["orchestrator"]["environment"]
    assert env["TRITON_URL"] == "triton:8001" and str(env["START_TRITON"]).lower() == "false"
    assert "@mariadb:3306/" in env["DATABASE_URL"] and env["MILVUS_URI"] == "http://milvus:19530"
    deps = services["orchestrator"]["depends_on"]
    assert all(deps[s]["condition"] == "service_healthy" for s in ("triton", "mariadb", "milvus"))
    assert set(services["milvus"]["depends_on"]) == {"etcd", "minio"}
    mounts = [str(v) for v in services["mariadb"]["volumes"]]
    assert any("db/init.sql" in m for m in mounts) and (ROOT / "db" / "init.sql").exists()
    assert {"mariadb", "milvus", "etcd", "minio"} <= set(cfg["volumes"])


def test_env_example_names_real_settings():
    fields = {f.upper() for f in Settings.model_fields}
    compose_only = {"APP_PORT", "MARIADB_USER", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key = line.split("=", 1)[0]
            assert key in fields | compose_only, f".env.example names unknown setting {key}"
