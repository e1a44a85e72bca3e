#!/usr/bin/env bash
# Lint, then the whole suite. pytest's exit 5 ("no tests collected") is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests bench || exit 1
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test: pytest collected no tests - failing" >&2
    exit 1
fi
exit "$rc"
