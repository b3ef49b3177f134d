"""Every example file runs as a new user would run it, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = {
    "quickstart.py": "7 tasks stored",
    "exports/export_and_report.py": "7 tasks, 3 activities exported to flowcept_exports",
    "spec/context_manager.py": "8",
    "spec/manual_start_stop.py": "Result: 42",
    "spec/custom_args.py": "{'epochs_list': [10, 100], 'learning_rates': [0.1, 0.01, 0.001]}",
    "spec/decorators.py": "42 (10, 15) 0.123 2",
    "spec/custom_args_handler.py": "{'x': 3} {'result': 6}",
    "spec/custom_tasks.py": "['workflow', 'download', 'parse']",
    "spec/end_vs_send.py": "4 records",
    "spec/loops.py": "{'loop': 5, 'train_loop': 5, 'eval_loop': 5, 'loop_a': 100, 'loop_b': 100}",
    "spec/torch_model.py": "3 parent forwards, input shape [100, 10]",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path):
    """The example exits 0 and prints its expected line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "MQ_", "DB_FLUSH"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert EXPECTED[name] in out.stdout.splitlines()[-1] or EXPECTED[name] in out.stdout, out.stdout
