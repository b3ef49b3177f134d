"""Record kinds, their identity and status vocabulary, and typed views over the plain record dicts.

One fact, one place: which collection a record kind goes to and which field identifies it (:data:`KINDS`), how
an untyped record's kind is inferred (:func:`kind_of`), and which statuses are terminal
(:data:`TERMINAL_STATUSES`). The stores, the merge rules, the keeper and the JSONL readers all ask here.

Capture code builds plain dicts (cheap); the classes below are for users who want attributes, and for the
documented ``TaskObject`` / ``WorkflowObject`` / ``AgentObject`` API. ``to_dict()`` leaves out fields that are None.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar, Mapping

#: Stored record kind (the ``type`` field) -> (collection, id key).
KINDS: dict[str, tuple[str, str]] = {
    "task": ("tasks", "task_id"),
    "workflow": ("workflows", "workflow_id"),
    "agent": ("agents", "agent_id"),
}
#: Collection -> the id key of its records.
COLLECTIONS: dict[str, str] = {collection: id_key for collection, id_key in KINDS.values()}
#: Collection -> the kind stored there.
KIND_OF_COLLECTION: dict[str, str] = {collection: kind for kind, (collection, _) in KINDS.items()}
#: Kinds that carry an identity but are not stored in a collection (yet): merged by id, never routed to a table.
UNSTORED_ID_KEYS: dict[str, str] = {"object": "object_id"}


def kind_of(record: Mapping) -> str | None:
    """The kind of a record: its ``type`` when that is a stored kind; None for other types.

    An untyped record (written by other tools) is inferred from its fields: ``task_id`` or ``activity_id``
    make a task, else ``agent_id`` an agent, else ``workflow_id``, ``name`` or ``environment_id`` a workflow.
    """
    rtype = record.get("type")
    if rtype is not None:
        return rtype if rtype in KINDS else None
    if "task_id" in record or "activity_id" in record:
        return "task"
    if "agent_id" in record:
        return "agent"
    if "workflow_id" in record or "name" in record or "environment_id" in record:
        return "workflow"
    return None


def collection_of(record: Mapping) -> str | None:
    """The collection a record belongs to (``tasks``, ``workflows``, ``agents``), or None when stores ignore it."""
    kind = kind_of(record)
    return KINDS[kind][0] if kind is not None else None


def record_key(record: Mapping) -> tuple[str, Any] | None:
    """``(id key, id)`` identifying the record that a message is about, or None (no identity: never merged).

    The id key is the one of the record's kind (:func:`kind_of`), so an untyped message with ``activity_id`` but
    no ``task_id`` is a task without an id, never merged into its workflow's record.
    """
    kind = kind_of(record)
    if kind is not None:
        id_key = KINDS[kind][1]
    else:
        id_key = UNSTORED_ID_KEYS.get(record.get("type"))  # type: ignore[arg-type]
        if id_key is None:
            return None
    rid = record.get(id_key)
    return (id_key, rid) if rid is not None else None


class Status(str, Enum):
    """Lifecycle status of a task or workflow."""

    SUBMITTED = "SUBMITTED"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @staticmethod
    def get_finished_statuses() -> list["Status"]:
        """The terminal statuses."""
        return [Status.FINISHED, Status.ERROR]


#: Statuses a record never leaves (see :func:`flowcept.store.merge.merge_record`).
TERMINAL_STATUSES = frozenset({"FINISHED", "ERROR"})


class ML_Types:  # noqa: N801 - documented name
    """Subtypes used by ML workflows."""

    WORKFLOW = "ml_workflow"
    DATA_PREP = "dataprep"
    LEARNING = "learning"
    MODEL_SELECTION = "model_selection"


class PROV_AGENT:  # noqa: N801 - documented name
    """Subtypes used by agent capture."""

    AI_MODEL_INVOCATION = "ai_model_invocation"
    AGENT_TOOL = "agent_tool"


class MimeType(str, Enum):
    """MIME types of stored objects and files (the reference's vocabulary)."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    GIF = "image/gif"
    BMP = "image/bmp"
    TIFF = "image/tiff"
    WEBP = "image/webp"
    SVG = "image/svg+xml"
    PDF = "application/pdf"
    JSON = "application/json"
    CSV = "text/csv"
    JSONL = "application/x-ndjson"


class Vocabulary:
    """Names used in settings (the reference's vocabulary)."""

    class Settings:
        ADAPTERS = "adapters"
        KIND = "kind"
        ZAMBEZE_KIND = "zambeze"
        MLFLOW_KIND = "mlflow"
        TENSORBOARD_KIND = "tensorboard"
        DASK_KIND = "dask"


def host_facts(record: dict) -> dict:
    """``record`` with the host fields it lacks, filled in place: ``hostname`` and those of
    :func:`flowcept._runtime.host_identity` (``sys_metadata`` settings first, else this host's)."""
    from flowcept._runtime import host_identity, hostname
    from flowcept.settings import get_settings

    for key, value in {"hostname": hostname(), **host_identity(get_settings())}.items():
        if record.get(key) is None:
            record[key] = value
    return record


class _Record:
    """Attribute view of a record dict: reading a field not set gives None; setting one writes the dict."""

    __slots__ = ("_d",)
    type: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]

    def __init__(self, **fields: Any):
        unknown = set(fields).difference(self.FIELDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")
        object.__setattr__(self, "_d", fields)

    @classmethod
    def wrap(cls, record: dict):
        """A view over ``record`` itself (changes write through)."""
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_d", record)
        return obj

    def __getattr__(self, name: str) -> Any:
        if name in self.FIELDS:
            return self._d.get(name)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.FIELDS:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        self._d[name] = value

    def to_dict(self) -> dict:
        """The record as a plain dict, None fields omitted, ``type`` set."""
        out = {k: (v.value if isinstance(v, Enum) else v) for k, v in self._d.items()
               if v is not None and k != "type"}
        out["type"] = self.type
        return out

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a dict; keys that are not fields are ignored; a status string becomes a :class:`Status`."""
        obj = cls(**{k: v for k, v in data.items() if k in cls.FIELDS})
        status = obj._d.get("status")
        if isinstance(status, str) and status in Status.__members__:
            obj._d["status"] = Status(status)
        return obj

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k in self.FIELDS[:6])
        return f"{type(self).__name__}({shown})"


class TaskObject(_Record):
    """A task record (``type: "task"``)."""

    type = "task"
    FIELDS = (
        "task_id", "workflow_id", "workflow_name", "campaign_id", "activity_id", "subtype", "group_id",
        "parent_task_id", "agent_id", "source_agent_id", "adapter_id", "environment_id", "utc_timestamp",
        "submitted_at", "started_at", "ended_at", "registered_at", "used", "generated", "dependencies",
        "dependents", "status", "stdout", "stderr", "data", "custom_metadata", "tags", "telemetry_at_start",
        "telemetry_at_end", "telemetry_summary", "user", "login_name", "node_name", "hostname", "public_ip",
        "private_ip", "address", "mq_host",
    )

    @staticmethod
    def get_time_field_names() -> list[str]:
        return ["started_at", "ended_at", "submitted_at", "registered_at", "utc_timestamp"]

    @staticmethod
    def get_dict_field_names() -> list[str]:
        return ["used", "generated", "custom_metadata", "telemetry_at_start", "telemetry_at_end"]

    @staticmethod
    def task_id_field() -> str:
        return "task_id"

    @staticmethod
    def workflow_id_field() -> str:
        return "workflow_id"

    def enrich(self, adapter_key: str | None = None) -> "TaskObject":
        """Stamp ``adapter_id`` (when given), ``utc_timestamp`` and the host fields the task lacks."""
        import time

        if adapter_key is not None:
            self.adapter_id = adapter_key
        if self.utc_timestamp is None:
            self.utc_timestamp = time.time()
        host_facts(self._d)
        return self

    @staticmethod
    def enrich_task_dict(task: dict) -> dict:
        """The host fields a task dict lacks, filled in place (see :func:`host_facts`); returns it."""
        return host_facts(task)

    def serialize(self) -> bytes:
        """:meth:`to_dict` as MessagePack bytes (needs ``msgpack``: ``pip install 'flowcept[redis]'``)."""
        try:
            import msgpack
        except ImportError:
            raise ImportError("TaskObject.serialize() needs msgpack: pip install 'flowcept[redis]' (or msgpack)") \
                from None
        return msgpack.packb(self.to_dict(), default=str)


class WorkflowObject(_Record):
    """A workflow record (``type: "workflow"``)."""

    type = "workflow"
    FIELDS = (
        "workflow_id", "parent_workflow_id", "campaign_id", "name", "workflow_description", "subtype", "used",
        "generated", "custom_metadata", "started_at", "ended_at", "status", "adapter_id", "interceptor_ids",
        "agent_id", "machine_info", "conf", "flowcept_settings", "flowcept_version", "utc_timestamp", "user",
        "environment_id", "sys_name", "extra_metadata", "code_repository", "workflow_domain_data_schema",
        "hostname",
    )

    def to_dict(self) -> dict:
        """The record as a plain dict, with secrets redacted as the store would hold them: ``flowcept_settings``
        by the settings' rule (password, token, secret, api_key, ...), and ``used`` / ``generated`` /
        ``custom_metadata`` / ``extra_metadata`` by ``project.redact_keys`` (see :mod:`flowcept.redact`)."""
        from flowcept.redact import redacted_copy
        from flowcept.settings import redact_settings_values

        out = super().to_dict()
        if "flowcept_settings" in out:
            out["flowcept_settings"] = redact_settings_values(out["flowcept_settings"])
        return redacted_copy(out)

    def enrich(self, adapter_key: str | None = None) -> "WorkflowObject":
        """Stamp ``adapter_id`` (when given) and ``utc_timestamp``, and, with ``project.enrich_messages``, the fields
        a running Flowcept puts on its workflow record (version, settings, user, host facts) where unset."""
        import time

        from flowcept import __version__
        from flowcept.controller import workflow_enrichment
        from flowcept.settings import get_settings

        if adapter_key is not None:
            self.adapter_id = adapter_key
        if self.utc_timestamp is None:
            self.utc_timestamp = time.time()
        settings = get_settings()
        if settings.project.enrich_messages:
            facts = {"flowcept_version": __version__, "conf": {"settings_path": settings.path},
                     **workflow_enrichment(settings)}
            for key, value in facts.items():
                if value is not None and self._d.get(key) is None:
                    self._d[key] = value
        return self


class AgentObject(_Record):
    """An agent record (``type: "agent"``)."""

    type = "agent"
    FIELDS = ("agent_id", "name", "user", "workflow_id", "campaign_id", "extra_metadata", "registered_at")

    def __init__(self, **fields: Any):
        super().__init__(**fields)
        if self._d.get("registered_at") is None:
            import time

            self._d["registered_at"] = time.time()  # set at construction, as the reference's

    def enrich(self) -> "AgentObject":
        """Fill ``user`` (the login name) and ``extra_metadata`` (the ``extra_metadata`` settings) where unset."""
        from flowcept._runtime import login_name
        from flowcept.settings import get_settings

        if self.user is None:
            self.user = login_name(get_settings())
        extra = dict(get_settings().extra_metadata)
        if extra:
            self.extra_metadata = {**extra, **(self.extra_metadata or {})}
        return self


class BlobObject(_Record):
    """A stored object's metadata (``type: "object"``): a model, dataset or artifact, one version of it.

    ``data`` holds the content only when it was loaded (``Flowcept.db.get_blob_object``); ``version`` is always
    present in :meth:`to_dict` (0 for a new object).
    """

    type = "object"
    FIELDS = (
        "object_id", "task_id", "workflow_id", "campaign_id", "object_type", "custom_metadata", "tags", "version",
        "created_at", "updated_at", "object_size_bytes", "data_sha256", "data_hash_algo", "pickle",
        "prev_version", "storage_type", "source", "data",
    )

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.setdefault("version", 0)
        return out
