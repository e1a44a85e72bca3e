#!/usr/bin/env bash
# Lint, then the whole suite. pytest's exit 5 ("no tests collected") is a failure here.
# Most tests are real-time phone calls that leave the CPU idle while they wait on the clock,
# so two workers (one per core; whole files per worker) halve the wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests bench || exit 1
.venv/bin/python -m pytest -q -n "${FRONTDESK_TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test: pytest collected no tests - failing" >&2
    exit 1
fi
exit "$rc"
