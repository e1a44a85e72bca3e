# The two commands a new user needs: `make demo` and `make test`. Both set up everything first.
# `make demo BRAIN=llm`: the demo call answered by a language model (FRONTDESK_LLM_BASE_URL, or
# the packaged local model on a llama.cpp server the demo starts itself).
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/bin/frontdesk demo $(if $(BRAIN),--brain $(BRAIN))

test: setup
	@bash scripts/test.sh

lint: setup
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench

bench: setup
	@$(PY) bench/speech.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
