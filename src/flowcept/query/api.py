"""``Flowcept.db``: the documented query API (reference 3.4) over a :class:`flowcept.store.Store`."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from flowcept.errors import ConfigError
from flowcept.query.objects_api import ObjectsAPI
from flowcept.query.workflow_metadata import WorkflowMetadataQueries

__all__ = ["DBAPI", "ASCENDING", "DESCENDING"]

ASCENDING = 1
DESCENDING = -1

_log = logging.getLogger(__name__)


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, Mapping):
        return dict(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"expected a dict or an object with to_dict(), got {type(obj).__name__}")


def _projected_fields(projection: Any) -> list[str]:
    if projection is None:
        return []
    if isinstance(projection, str):
        return [projection]
    if isinstance(projection, Mapping):
        return [k for k, v in projection.items() if v]
    return list(projection)


class DBAPI(WorkflowMetadataQueries, ObjectsAPI):
    """Queries over the configured store; every method is safe to call from any thread.

    Args:
        store: the store to use. When None, the store enabled by :func:`flowcept.settings.get_settings` is made on
            first use (and closed by :meth:`close`).
    """

    ASCENDING = ASCENDING
    DESCENDING = DESCENDING

    def __init__(self, store: Any = None):
        self._store = store
        self._owns_store = store is None

    @property
    def store(self):
        """The underlying :class:`flowcept.store.Store`, made from the settings on first use.

        Raises:
            ConfigError: no store is enabled (or ``project.db_flush_mode`` is ``offline``).
        """
        if self._store is None:
            from flowcept.settings import get_settings
            from flowcept.store import make_store

            store = make_store(get_settings(), for_reading=True)
            if store is None:
                raise ConfigError(
                    "no database is enabled, so there is nothing to query. Enable one in the settings file: "
                    "databases.sqlite.enabled: true (with databases.sqlite.path) or databases.postgres.enabled: true "
                    "(with project.db_flush_mode: online, runs write to it).",
                    key="databases",
                )
            self._store = store
        if self._owns_store:
            # Read your writes: what this process captured so far is in the store before the query runs.
            from flowcept._runtime import flush_pending

            flush_pending()
        return self._store

    # ------------------------------------------------------------------------------------------ queries

    def query(self, filter: Mapping | None = None, projection: Any = None, limit: int = 0, sort: Any = None,
              aggregation: Sequence[tuple[str, str]] | None = None, remove_json_unserializables: bool = True,
              collection: str = "tasks") -> list[dict]:
        """Find records, or aggregate them.

        Args:
            filter: Mongo-style filter (``$and $or $nor $not $eq $ne $gt $gte $lt $lte $in $nin $exists $regex``,
                dotted paths).
            projection: field names to return (dotted allowed), or a ``{field: 1|0}`` dict.
            limit: at most this many records; 0 means no limit.
            sort: list of ``(field, ASCENDING|DESCENDING)``.
            aggregation: list of ``(op, field)`` with op in avg/sum/min/max/count. With a projection of exactly
                one field, results are grouped by that field. ``sort`` (by the group field or an ``<op>_<field>``
                name) and ``limit`` then apply to the groups.
            remove_json_unserializables: kept for compatibility; stored records are always JSON-clean.
            collection: ``"tasks"``, ``"workflows"`` or ``"agents"``.

        Returns:
            The matching records (or one dict per group with ``<op>_<field>`` keys).

        Raises:
            QueryError: malformed filter, projection, sort or aggregation.
            StoreError: the database failed.
            ConfigError: no store is configured.
        """
        if collection in self.OBJECT_COLLECTIONS:  # objects live beside the records: see query/objects_api.py
            return self.object_collection_query(collection, filter, projection, limit, sort, aggregation)
        if aggregation:
            fields = _projected_fields(projection)
            group_by = fields[0] if len(fields) == 1 else None
            from flowcept.store._filters import order_groups

            # $match and $group run in the store; $sort and $limit apply to the groups, not to the records.
            return order_groups(self.store.aggregate(collection, filter, group_by, list(aggregation)), sort, limit)
        return self.store.find(collection, filter, projection=projection, sort=sort, limit=limit)

    def task_query(self, filter: Mapping | None = None, projection: Any = None, limit: int = 0, sort: Any = None,
                   aggregation: Sequence[tuple[str, str]] | None = None,
                   remove_json_unserializables: bool = True) -> list[dict]:
        """:meth:`query` on the ``tasks`` collection."""
        return self.query(filter, projection, limit, sort, aggregation, remove_json_unserializables, "tasks")

    def workflow_query(self, filter: Mapping | None = None) -> list[dict]:
        """Workflow records matching ``filter``."""
        return self.query(filter, collection="workflows")

    def agent_query(self, filter: Mapping | None = None) -> list[dict]:
        """Agent records matching ``filter``."""
        return self.query(filter, collection="agents")

    def count(self, collection: str = "tasks", filter: Mapping | None = None) -> int:
        """How many records of ``collection`` match ``filter``."""
        return self.store.count(collection, filter)

    def get_workflow_object(self, workflow_id: str):
        """The workflow as a ``WorkflowObject``, or None when it is not stored."""
        docs = self.store.find("workflows", {"workflow_id": workflow_id}, limit=1)
        if not docs:
            return None
        from flowcept.commons.flowcept_dataclasses.workflow_object import WorkflowObject

        return WorkflowObject.from_dict(docs[0])

    def get_agent_object(self, agent_id: str):
        """The agent as an ``AgentObject``, or None when it is not stored."""
        docs = self.store.find("agents", {"agent_id": agent_id}, limit=1)
        if not docs:
            return None
        from flowcept.commons.flowcept_dataclasses.agent_object import AgentObject

        return AgentObject.from_dict(docs[0])

    def get_tasks_from_current_workflow(self) -> list[dict]:
        """Tasks of the current (or most recently started) workflow; empty when there is none."""
        from flowcept.context import last_workflow_id

        workflow_id = last_workflow_id()
        if workflow_id is None:
            return []
        return self.task_query({"workflow_id": workflow_id})

    # ------------------------------------------------------------------------------------------ writes

    def insert_or_update_task(self, task: Any) -> bool:
        """Upsert one task (a dict or an object with ``to_dict()``), merged with any stored version."""
        doc = _as_dict(task)
        doc.setdefault("type", "task")
        return self.store.upsert([doc]) == 1

    def insert_or_update_workflow(self, workflow: Any) -> bool:
        """Upsert one workflow; a missing ``workflow_id`` gets a new uuid (written back to a dict argument)."""
        doc = _as_dict(workflow)
        doc.setdefault("type", "workflow")
        if not doc.get("workflow_id"):
            from flowcept.ids import new_uuid

            doc["workflow_id"] = new_uuid()
            if isinstance(workflow, dict):
                workflow["workflow_id"] = doc["workflow_id"]
            elif hasattr(workflow, "workflow_id"):
                try:
                    workflow.workflow_id = doc["workflow_id"]
                except AttributeError:
                    pass
        return self.store.upsert([doc]) == 1

    def insert_or_update_agent(self, agent: Any) -> bool:
        """Upsert one agent record."""
        doc = _as_dict(agent)
        doc.setdefault("type", "agent")
        return self.store.upsert([doc]) == 1

    def delete_agents_with_filter(self, filter: Mapping) -> int:
        """Delete agent records matching ``filter``; returns how many."""
        return self.store.delete("agents", filter)

    def delete_workflow_data(self, workflow_id: str) -> dict[str, int]:
        """Delete a workflow's objects (every version; see :meth:`delete_object_keys`), tasks, agents, the agents
        only its tasks named, and the workflow record; see :func:`flowcept.query.analytics.delete_workflow_data`.

        Returns:
            Deleted counts ``{"objects": n, "tasks": n, "agents": n, "workflows": n}`` (all 0 for an unknown id).
        """
        from flowcept.query import analytics

        return analytics.delete_workflow_data(self.store, workflow_id, self.object_store)

    # ------------------------------------------------------------------------------------------ lineage
    # (flowcept.query.lineage computes these in the store; flowcept.query.lineage.edges gives a workflow's edges)

    def upstream(self, task_id: str, depth: int | None = None, match_values: bool = False,
                 projection: Any = None) -> list[dict]:
        """The tasks ``task_id`` depends on, transitively (parents, dependencies, producers of what it used).

        See :func:`flowcept.query.lineage.upstream`. Raises QueryError naming an unknown ``task_id``.
        """
        from flowcept.query import lineage

        return lineage.upstream(self.store, task_id, depth, match_values, projection)

    def downstream(self, task_id: str, depth: int | None = None, match_values: bool = False,
                   projection: Any = None) -> list[dict]:
        """The tasks depending on ``task_id``, transitively; see :func:`flowcept.query.lineage.downstream`."""
        from flowcept.query import lineage

        return lineage.downstream(self.store, task_id, depth, match_values, projection)

    def lineage_edges(self, workflow_id: str, match_values: bool = False) -> list[tuple[str, str, str]]:
        """``(src, dst, kind)`` edges between the tasks of a workflow; see :func:`flowcept.query.lineage.edges`."""
        from flowcept.query import lineage

        return list(lineage.edges(self.store, workflow_id, match_values))

    def get_tasks_recursive(self, workflow_id: str, max_depth: int = 999,
                            mapping: Mapping[str, str] | None = None) -> list[dict]:
        """A workflow's tasks walked down ``parent_task_id`` from its roots, each with ``depth`` and
        ``ancestor_ids``; see :func:`flowcept.query.lineage.tasks_recursive`."""
        from flowcept.query import lineage

        return lineage.tasks_recursive(self.store, workflow_id, max_depth, mapping)

    def dump_tasks_to_file_recursive(self, workflow_id: str, output_file: str = "tasks.parquet",
                                     max_depth: int = 999, mapping: Mapping[str, str] | None = None) -> int:
        """Write :meth:`get_tasks_recursive` to ``output_file`` (format from its suffix: ``.parquet``, ``.csv``,
        ``.json``); returns how many tasks were written."""
        from flowcept.query.dump import write_records

        tasks = self.get_tasks_recursive(workflow_id, max_depth, mapping)
        suffix = str(output_file).rsplit(".", 1)[-1].lower()
        return write_records(lambda: tasks, output_file, {"jsonl": "json"}.get(suffix, suffix))

    def dump_to_file(self, collection: str = "tasks", filter: Mapping | None = None, output_file: str | None = None,
                     export_format: str = "json", should_zip: bool = False) -> str:
        """Stream matching records to a ``json``, ``csv`` or ``parquet`` file; returns its path.

        See :func:`flowcept.query.dump.dump_to_file` (a dump without a filter must be zipped).
        """
        from flowcept.query.dump import dump_to_file

        return dump_to_file(self.store, collection, filter, output_file, export_format, should_zip)

    # ------------------------------------------------------------------------------------------ analytics
    # (flowcept.query.analytics: SQL aggregates in the store)

    def task_summary(self, filter: Mapping | None = None) -> dict:
        """Counts, statuses and durations of matching tasks, overall and per activity."""
        from flowcept.query import analytics

        return analytics.task_summary(self.store, filter)

    def telemetry_timeseries(self, filter: Mapping | None, fields: Sequence[str], x_field: str = "started_at",
                             limit: int = 1000) -> list[dict]:
        """Numeric fields of matching tasks along ``x_field``; see :func:`flowcept.query.analytics.telemetry_timeseries`."""
        from flowcept.query import analytics

        return analytics.telemetry_timeseries(self.store, filter, fields, x_field, limit)

    def resolve_chart_data(self, data: Any, context: Mapping | None = None) -> dict:
        """Chart data, ``{"x_field", "x": [...], "series": {name: [...]}}``, from literal rows or columns, or from a
        spec read from the store, e.g. ``{"collection": "tasks", "filter": {...}, "x": "started_at",
        "y": ["telemetry_at_end.cpu.percent_all"], "limit": 1000}``; ``context`` (e.g. ``{"workflow_id": wf}``)
        narrows a spec's filter. See :func:`flowcept.query.charts.resolve_chart_data` for every form and rule.

        Raises:
            QueryError (a ValueError): malformed data, spec or filter; the message names the key and the fix.
        """
        from flowcept.query.charts import resolve_chart_data

        return resolve_chart_data(self.query, data, context)

    def derive_campaigns(self, campaign_id: str | None = None) -> list[dict]:
        """Campaigns grouped from the workflow records, with task counts."""
        from flowcept.query import analytics

        return analytics.derive_campaigns(self.store, campaign_id)

    def derive_agents(self, filter: Mapping | None = None) -> list[dict]:
        """Agents named by matching tasks, with task counts and their agent records' names."""
        from flowcept.query import analytics

        return analytics.derive_agents(self.store, filter)

    def delete_campaign_data(self, campaign_id: str) -> dict[str, int]:
        """Delete a campaign's workflows, objects, tasks and agents; returns deleted counts per collection; see
        :func:`flowcept.query.analytics.delete_campaign_data`."""
        from flowcept.query import analytics

        return analytics.delete_campaign_data(self.store, campaign_id, self.object_store)

    # ------------------------------------------------------------------------------------------ export

    def to_df(self, collection: str = "tasks", filter: Mapping | None = None):
        """Matching records as a pandas DataFrame with dotted column names for nested fields.

        Raises:
            BackendUnavailableError: pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            from flowcept.errors import BackendUnavailableError

            raise BackendUnavailableError("DBAPI.to_df", "pandas") from exc
        docs = self.store.find(collection, filter)
        return pd.json_normalize(docs, sep=".")

    def export_workflow(self, workflow_id: str, format: str, path: str | None = None, **options: Any) -> dict:
        """Export one workflow as ``prov-json``, ``prov-n``, ``prov-o``, ``ro-crate`` or ``openlineage``; the options
        and the result are those of :func:`flowcept.export.export_workflow`."""
        from flowcept.export import export_workflow

        return export_workflow(workflow_id, format, path, store=self.store, **options)

    def close(self) -> None:
        """Close the store if this API made it (a later query makes a new one); idempotent."""
        if not self._owns_store:
            return  # the caller's store: the caller closes it
        store, self._store = self._store, None
        if store is not None:
            store.close()
