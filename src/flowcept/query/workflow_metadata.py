"""Workflow metadata the reference's UI and agents keep beside the records (domain data schema, graph node
positions), and store liveness. Mixed into :class:`flowcept.query.api.DBAPI`."""

from __future__ import annotations

from typing import Any

_SCHEMA_FIELD = "workflow_domain_data_schema"
_POSITIONS_FIELD = "node_positions"


class WorkflowMetadataQueries:
    """``Flowcept.db`` methods for metadata stored on the workflow record."""

    store: Any  # provided by DBAPI

    def save_workflow_domain_data_schema(self, workflow_id: str, schema: dict) -> bool:
        """Store ``schema`` (a dict describing the workflow's domain data) on the workflow record.

        A later call replaces the stored schema's keys with the new ones (keys it does not name are kept).
        """
        if not isinstance(schema, dict):
            raise TypeError(f"schema must be a dict, not {type(schema).__name__}")
        return self._set_workflow_field(workflow_id, _SCHEMA_FIELD, schema)

    def get_workflow_domain_data_schema(self, workflow_id: str) -> dict | None:
        """The schema stored by :meth:`save_workflow_domain_data_schema`, or None."""
        return self._workflow_field(workflow_id, _SCHEMA_FIELD)

    def save_node_positions(self, workflow_id: str, positions: dict) -> bool:
        """Store graph node positions (``{node_id: {"x": .., "y": ..}}``) for a workflow's UI view."""
        if not isinstance(positions, dict):
            raise TypeError(f"positions must be a dict, not {type(positions).__name__}")
        return self._set_workflow_field(workflow_id, _POSITIONS_FIELD, positions)

    def get_node_positions(self, workflow_id: str) -> dict | None:
        """The positions stored by :meth:`save_node_positions`, or None."""
        return self._workflow_field(workflow_id, _POSITIONS_FIELD)

    def liveness_test(self) -> bool:
        """Whether the store answers a query."""
        try:
            self.store.count("workflows")
        except Exception:  # noqa: BLE001 - any failure means it does not answer
            return False
        return True

    @staticmethod
    def db_liveness_tests() -> bool:
        """Whether the store the settings enable answers (the reference's static check)."""
        from flowcept.query.api import DBAPI

        db = DBAPI()
        try:
            return db.liveness_test()
        finally:
            db.close()

    def _set_workflow_field(self, workflow_id: str, field: str, value: dict) -> bool:
        if not workflow_id:
            raise ValueError("workflow_id is required")
        return self.store.upsert([{"type": "workflow", "workflow_id": workflow_id, field: value}]) == 1

    def _workflow_field(self, workflow_id: str, field: str) -> dict | None:
        docs = self.store.find("workflows", {"workflow_id": workflow_id}, projection=[field], limit=1)
        return docs[0].get(field) if docs else None
