"""The agent capture tests again under the other MCP SDK major (1.x: FastMCP), in a venv of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_agent_capture_under_mcp_1x(tmp_path):
    """mcp 1.x and 2.x cannot share one environment: the same agent tests pass in a fresh venv with mcp<2."""
    venv = tmp_path / "venv-mcp1"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "mcp<2", "pytest", "-e", str(ROOT)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    version = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("1."), version
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "PYTEST_"))}
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/capture/test_agent.py",
                          "tests/docs/test_spec_agent.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
