#!/usr/bin/env bash
# Set up (idempotent) and run the voice server: Triton (lite, CPU) + the FastAPI orchestrator on
# the embedded defaults (local MariaDB, Milvus Lite file under data/). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m orchestrator "$@"
