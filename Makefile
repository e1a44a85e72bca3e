# The two commands a new user needs: `make demo` and `make test`. Both set up everything first.
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/bin/frontdesk demo

test: setup
	@bash scripts/test.sh

lint: setup
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench

bench: setup
	@$(PY) bench/speech.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
