"""`flowcept query` refuses hostile queries with exit code 2 and the reason, and answers large $in lists."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from flowcept.cli import app
from flowcept.settings import get_settings
from flowcept.store import make_store


@pytest.fixture(name="runner")
def fixture_runner():
    store = make_store(get_settings())
    store.upsert([{"type": "task", "task_id": f"t{i}", "workflow_id": "w", "used": {"s": "a" * 40 + "b"}}
                  for i in range(3)])
    store.close()
    return CliRunner()


def _deep_and(levels: int) -> str:
    return '{"$and": [' * levels + '{"task_id": "t1"}' + "]}" * levels


@pytest.mark.parametrize("args,reason", [
    (["-f", '{"used.s": {"$regex": "(a|aa)+$"}}'], "longer than"),
    (["-f", _deep_and(200)], "levels deep"),
    (["-f", _deep_and(2000)], "--filter"),  # past the JSON parser's own depth limit
    (["-n", str(2 ** 70)], "2**63-1"),
    (["-f", '{"used.s": {"$like": "a"}}'], "unknown query operator '$like'"),
])
def test_refused_with_reason(runner, args, reason):
    """Each hostile query exits 2 with 'Error:' and the reason on stderr."""
    result = runner.invoke(app, ["query", *args])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr and reason in result.stderr


def test_large_in(runner):
    """A 50,000-value $in over the CLI returns exactly the matching tasks."""
    values = [f"t{i}" for i in range(1, 50_000)]
    result = runner.invoke(app, ["query", "-f", orjson.dumps({"task_id": {"$in": values}}).decode(), "--json",
                                 "-p", '["task_id"]', "--sort", '[["task_id", 1]]'])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == [{"task_id": "t1"}, {"task_id": "t2"}]
