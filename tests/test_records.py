"""Record kinds: one table of kind -> (collection, id key), and the inference every reader shares."""

import pytest

from flowcept.records import COLLECTIONS, KINDS, TERMINAL_STATUSES, collection_of, kind_of, record_key
from flowcept.store.merge import coalesce


def test_kinds_table():
    """Tasks, workflows and agents, keyed by their id fields; the terminal statuses are FINISHED and ERROR."""
    assert KINDS == {"task": ("tasks", "task_id"), "workflow": ("workflows", "workflow_id"),
                     "agent": ("agents", "agent_id")}
    assert COLLECTIONS == {"tasks": "task_id", "workflows": "workflow_id", "agents": "agent_id"}
    assert TERMINAL_STATUSES == {"FINISHED", "ERROR"}


@pytest.mark.parametrize("record,kind,key", [
    ({"type": "task", "task_id": "a", "workflow_id": "w"}, "task", ("task_id", "a")),
    ({"type": "workflow", "workflow_id": "w"}, "workflow", ("workflow_id", "w")),
    ({"type": "agent", "agent_id": "g", "workflow_id": "w"}, "agent", ("agent_id", "g")),
    ({"type": "object", "object_id": "o"}, None, ("object_id", "o")),
    ({"type": "flowcept_control", "workflow_id": "w"}, None, None),
    ({"task_id": "a", "agent_id": "g"}, "task", ("task_id", "a")),
    ({"activity_id": "f", "workflow_id": "w"}, "task", None),
    ({"agent_id": "g", "workflow_id": "w"}, "agent", ("agent_id", "g")),
    ({"workflow_id": "w", "name": "n"}, "workflow", ("workflow_id", "w")),
    ({"other": 1}, None, None),
])
def test_kind_and_key_agree(record, kind, key):
    """The kind decides the id key: a record is never merged under another kind's id."""
    assert kind_of(record) == kind
    assert record_key(record) == key
    assert collection_of(record) == (KINDS[kind][0] if kind else None)


def test_untyped_task_without_id_is_not_merged_into_its_workflow():
    """An untyped message with activity_id but no task_id stays a separate (id-less) task message."""
    workflow = {"type": "workflow", "workflow_id": "w", "name": "run"}
    orphan = {"activity_id": "f", "workflow_id": "w", "used": {"x": 1}}
    assert coalesce([workflow, orphan]) == [workflow, orphan]
