#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite against real Triton, MariaDB and Milvus Lite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
