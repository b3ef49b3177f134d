"""Every adapter example runs as a new user would run it, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "adapters"
EXPECTED = {
    "dask_example.py": "7 dask tasks, 5 decorated calls inside them, 5 dependency edges",
    "mlflow_example.py": "3 mlflow runs captured",
    "tensorboard_example.py": "2 tensorboard runs captured",
    "mqtt_example.py": "5 messages captured, 1 rejected",
}


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_example_runs(name, tmp_path):
    """The example exits 0 and its last line is the promised summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "MQ_", "DB_FLUSH"))}
    env["HOME"] = str(tmp_path)
    # The checkout's sources first (an installed flowcept otherwise; a relative PYTHONPATH would not survive cwd).
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLES.parents[1] / "src"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == EXPECTED[name], out.stdout
