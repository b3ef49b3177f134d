"""collection_of routing and make_store backend selection."""

from types import SimpleNamespace as NS

import pytest

from flowcept.errors import ConfigError
from flowcept.store import COLLECTIONS, collection_of, load_store_class, make_store
from flowcept.store.sqlite import SqliteStore


@pytest.mark.parametrize("record,expected", [
    ({"type": "task", "task_id": "a"}, "tasks"),
    ({"type": "workflow", "workflow_id": "w"}, "workflows"),
    ({"type": "agent", "agent_id": "g"}, "agents"),
    ({"type": "object", "object_id": "o"}, None),
    ({"type": "flowcept_control"}, None),
    ({"task_id": "a", "agent_id": "g"}, "tasks"),
    ({"activity_id": "f"}, "tasks"),
    ({"agent_id": "g"}, "agents"),
    ({"name": "wf"}, "workflows"),
    ({"environment_id": "e"}, "workflows"),
    ({"other": 1}, None),
])
def test_collection_of(record, expected):
    """Records route by type, or by their fields when untyped."""
    assert collection_of(record) == expected


def _settings(mode="online", pg=False, lite=True, path="x.sqlite"):
    return NS(project=NS(db_flush_mode=mode),
              databases=NS(postgres=NS(enabled=pg, dsn="postgresql://nowhere/db"), sqlite=NS(enabled=lite, path=path)))


def test_make_store(tmp_path):
    """sqlite when enabled; None offline or with nothing enabled."""
    store = make_store(_settings(path=str(tmp_path / "m.sqlite")))
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "m.sqlite"
    store.close()
    assert make_store(_settings(mode="offline")) is None
    assert make_store(_settings(lite=False)) is None
    assert COLLECTIONS == {"tasks": "task_id", "workflows": "workflow_id", "agents": "agent_id"}


def test_unknown_backend():
    """An unknown backend name raises ConfigError listing the known ones."""
    with pytest.raises(ConfigError, match="postgres, sqlite"):
        load_store_class("mongodb")
