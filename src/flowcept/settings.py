"""Typed, validated flowcept settings: every settings key and environment variable is defined here once."""

# How settings are found (see ``load_settings``):
#   1. env FLOWCEPT_USE_DEFAULT truthy -> built-in defaults only: no file is read and no env override applies;
#      ``Settings.path`` is the sentinel "FLOWCEPT_DEFAULT_SETTINGS".
#   2. else the file is env FLOWCEPT_SETTINGS_PATH, or ~/.flowcept/settings.yaml;
#   3. a missing file means built-in defaults (env overrides still apply);
#   4. keys missing from the file take their defaults key by key (not section by section);
#   5. env overrides win over the file.
# Unknown keys and wrong types are ConfigErrors naming the key and the file. Keys of the reference schema that this
# flowcept accepts but does not act on (IGNORED_KEYS) give one FlowceptSettingsWarning per load.

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from flowcept.errors import ConfigError

__all__ = [
    "DEFAULT_SETTINGS_PATH",
    "DEFAULT_SETTINGS_SENTINEL",
    "ENV_VARS",
    "IGNORED_KEYS",
    "FlowceptSettingsWarning",
    "Settings",
    "get_settings",
    "load_settings",
    "reload_settings",
    "settings_from_dict",
]

#: Value of ``Settings.path`` when no settings file was read.
DEFAULT_SETTINGS_SENTINEL = "FLOWCEPT_DEFAULT_SETTINGS"
#: The settings file used when env FLOWCEPT_SETTINGS_PATH is not set.
DEFAULT_SETTINGS_PATH = "~/.flowcept/settings.yaml"

#: Env var: path of the YAML settings file (default ``~/.flowcept/settings.yaml``).
ENV_SETTINGS_PATH = "FLOWCEPT_SETTINGS_PATH"
#: Env var: set by a running Flowcept for the Python processes it starts; a child reads it on its first capture and
#: joins that workflow (JSON: workflow and campaign ids, the join folder). Not a user setting: see
#: ``instrumentation.join_child_processes`` and ``flowcept._child``.
ENV_JOIN_WORKFLOW = "FLOWCEPT_JOIN_WORKFLOW"
#: Env var: when truthy, ignore any settings file and every env override below; use built-in defaults.
ENV_USE_DEFAULT = "FLOWCEPT_USE_DEFAULT"

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})
_SECRET_PARTS = ("password", "token", "secret", "api_key", "access_key", "passwd", "credentials")
_LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical", "fatal", "disable")
_REDACTED = "REDACTED"
#: Default of ``project.redact_keys``.
REDACT_KEYS = ("password", "passwd", "secret", "secrets", "secret_key", "token", "api_key", "apikey", "access_key",
               "private_key", "credential", "credentials", "authorization", "cookie", "cookies")

#: Keys of the reference schema that are accepted but not acted on. A dotted key names one key; a section name
#: covers every key under it. Each one present in a settings file is named in one FlowceptSettingsWarning.
IGNORED_KEYS = frozenset({
    "kv_db",                  # no key-value DB: Redis Streams consumer groups replace the safe-stop protocol
    "web_server.ui_enabled",  # the UI is always served
    "web_server.cors_origins",  # same-origin page only
    "web_server.dashboards_dir",
    "web_server.max_label_length",
    "db_buffer",              # the keeper's batching follows `buffer`
    "agent",                  # no agent server
    "databases.mongodb",      # out of scope: use databases.sqlite or databases.postgres
    "databases.lmdb",         # out of scope
    "project.debug",
    "project.performance_logging",
    "project.json_serializer",  # values are always converted as documented (serialize.py)
    "mq.group_file",          # Mofka only
    "mq.instances",           # one keeper per stream consumer group, started by the user
    "mq.timing",
    "mq.chunk_size",          # batches follow buffer.batch_size
    "mq.same_as_kvdb",
    "mq.bin",                 # only used by the reference CLI to start redis-server
    "mq.conf_file",
})


class FlowceptSettingsWarning(UserWarning):
    """A settings file holds keys that this flowcept accepts but does not act on."""


def _key(default: Any, doc: str, *, env: str | None = None, choices: tuple | None = None,
         min: float | None = None, max: float | None = None, hidden: bool = False,
         expand_user: bool = False, str_from_number: bool = False) -> Any:
    """Declare one settings key: its default, one-line meaning, env override and checks."""
    meta = {"doc": doc, "env": env, "choices": choices, "min": min, "max": max, "hidden": hidden,
            "expand_user": expand_user, "str_from_number": str_from_number}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type, doc: str) -> Any:
    """Declare a nested settings section."""
    return field(default_factory=cls, metadata={"doc": doc, "section": cls})


_settings = dataclass(frozen=True, slots=True)


# --------------------------------------------------------------------------------------------------- project
@_settings
class DumpBufferSettings:
    """``project.dump_buffer``: the JSONL buffer file every flushed batch is appended to."""

    enabled: bool = _key(True, "Append every flushed batch to the JSONL buffer file.", env="DUMP_BUFFER")
    path: str = _key("flowcept_buffer.jsonl", "Base path of the JSONL buffer file.")
    append_id_to_path: bool = _key(False, "Add `_<pid>_<thread id>` to the file stem.")
    append_workflow_id_to_path: bool = _key(False, "Add `_<workflow_id>` before the file extension.")
    delete_previous_file: bool = _key(True, "Delete the base file when a Flowcept controller is constructed.")


@_settings
class ProjectSettings:
    """``project``: capture behaviour shared by every part of the pipeline."""

    name: str = _key("flowcept", "Project name, for logs and metadata.")
    debug: bool = _key(False, "Reference only: tag saved data as debug (not acted on).")
    json_serializer: str = _key("default", "`complex` also encodes odd objects generically.",
                                choices=("default", "complex"))
    replace_non_json_serializable: bool = _key(True, "Sanitize captured values into JSON-clean ones.")
    performance_logging: bool = _key(False, "Reference only: timing debug logs (not acted on).")
    enrich_messages: bool = _key(False, "Add host/user metadata and telemetry summaries to records.")
    db_flush_mode: str = _key("online", "`online`: records reach the store during the run; `offline`: no store "
                              "writes, the JSONL buffer file only.", env="DB_FLUSH_MODE",
                              choices=("online", "offline"))
    dump_buffer: DumpBufferSettings = _section(DumpBufferSettings, "The JSONL buffer file.")
    # Redaction (flowcept/redact.py states the matching rule; docs/guide.md "Secrets").
    redact: bool = _key(True, "Store the values of secret-looking keys (see `redact_keys`) in used, generated, "
                        "custom_metadata and workflow args, at any depth, as `REDACTED`.", env="FLOWCEPT_REDACT")
    redact_keys: list[str] = _key(list(REDACT_KEYS), "Key patterns redacted: a key matches when its words end "
                                  "with the pattern's words (`token` matches `access_token`, not `max_tokens`); "
                                  "`*` and `?` make a glob over the whole key.")
    redact_allow: list[str] = _key([], "Key patterns never redacted (same rule), e.g. `pad_token`.")


# ------------------------------------------------------------------------------------------------------- log
@_settings
class LogSettings:
    """``log``: the `flowcept` logger's handlers."""

    log_path: str = _key("default", "Log file; `default` means flowcept.log in the working directory.")
    log_file_level: str = _key("disable", "File handler level (a logging level name, or `disable`).",
                               env="FLOWCEPT_LOG_FILE_LEVEL", choices=_LOG_LEVELS)
    log_stream_level: str = _key("warning", "Stream handler level (a logging level name, or `disable`).",
                                 env="FLOWCEPT_LOG_STREAM_LEVEL", choices=_LOG_LEVELS)


# ----------------------------------------------------------------------------------------- telemetry_capture
@_settings
class TelemetryCaptureSettings:
    """``telemetry_capture``: which resource metrics tasks carry (all off by default)."""

    gpu: list[str] | None = _key(None, "GPU metric names to capture (e.g. used, temperature, power, name, id); "
                                 "null disables GPU capture.")
    cpu: bool = _key(False, "Capture CPU times and percent.")
    per_cpu: bool = _key(False, "Capture per-core CPU percent.")
    process_info: bool = _key(False, "Capture the current process's resources.")
    mem: bool = _key(False, "Capture virtual memory and swap.")
    disk: bool = _key(False, "Capture disk usage and I/O counters.")
    network: bool = _key(False, "Capture network I/O counters.")
    machine_info: bool = _key(False, "Add machine information to workflow records.")
    env_enabled: bool = _key(True, "Global telemetry switch; telemetry runs only when this and a metric are on.",
                             env="TELEMETRY_ENABLED", hidden=True)

    @property
    def enabled(self) -> bool:
        """True when at least one metric is on and env TELEMETRY_ENABLED (default true) is truthy."""
        metric_on = bool(self.gpu) or self.cpu or self.per_cpu or self.process_info or self.mem \
            or self.disk or self.network or self.machine_info
        return bool(metric_on and self.env_enabled)


# ------------------------------------------------------------------------------------------- instrumentation
@_settings
class TorchInstrumentationSettings:
    """``instrumentation.torch``: what `@flowcept_torch` records."""

    what: str | None = _key("parent_and_children", "Modules to record; null disables torch capture.",
                            choices=("parent_and_children", "parent_only"))
    children_mode: str | None = _key("telemetry_and_tensor_inspection", "What child-module tasks carry.",
                                     choices=("telemetry_and_tensor_inspection", "tensor_inspection",
                                              "telemetry", "lightweight"))
    epoch_loop: str | None = _key("lightweight", "Loop capture for epochs; null disables it.",
                                  choices=("lightweight", "default"))
    batch_loop: str | None = _key("lightweight", "Loop capture for batches; null disables it.",
                                  choices=("lightweight", "default"))
    capture_epochs_at_every: int = _key(1, "Record every n-th epoch.", min=1)
    register_workflow: bool = _key(True, "Emit a workflow record per instrumented model.")


@_settings
class InstrumentationSettings:
    """``instrumentation``: decorators, loops, explicit tasks and torch."""

    enabled: bool = _key(True, "Master switch for every capture method.", env="INSTRUMENTATION_ENABLED")
    max_snapshot_items: int = _key(10_000, "Containers (list, tuple, set, dict) captured with more items than this "
                                   "are stored as a summary {type, length, head} instead of copied on the "
                                   "caller's thread (counted as a capture warning).", min=1)
    join_child_processes: bool = _key(True, "Processes started while a Flowcept runs (multiprocessing, "
                                            "concurrent.futures, subprocess running Python) join its workflow on "
                                            "their first capture.", env="INSTRUMENTATION_JOIN_CHILD_PROCESSES")
    torch: TorchInstrumentationSettings = _section(TorchInstrumentationSettings, "PyTorch module capture.")


# ------------------------------------------------------------------------------------------------ experiment
@_settings
class ExperimentSettings:
    """``experiment``: who runs the experiment."""

    user: str = _key("blank_user", "User name stamped on workflows that do not name one.",
                     env="FLOWCEPT_USER", str_from_number=True)


# -------------------------------------------------------------------------------------------------------- mq
_UNSUPPORTED_MQ = ("kafka", "mofka")


@_settings
class MQSettings:
    """``mq``: the message queue (Redis Streams or RabbitMQ) between producers and the keeper."""

    enabled: bool = _key(False, "Send records through the message queue instead of writing the store in-process.",
                         env="MQ_ENABLED")
    type: str = _key("redis", "Message queue kind: `redis` (Redis Streams) or `rabbitmq` (a durable quorum queue; "
                               "install flowcept[rabbitmq]).", env="MQ_TYPE", choices=("redis", "rabbitmq"))
    host: str = _key("localhost", "Broker host.", env="MQ_HOST")
    port: int = _key(6379, "Broker port (with mq.type rabbitmq, the Redis default 6379 means RabbitMQ's 5672).",
                     env="MQ_PORT", min=1, max=65535)
    uri: str | None = _key(None, "Broker URI (redis://, rediss:// or unix://; amqp:// or amqps:// for RabbitMQ); "
                                 "wins over host/port/username/password/vhost.", env="MQ_URI")
    password: str | None = _key(None, "Broker password.", env="MQ_PASSWORD")
    username: str | None = _key(None, "RabbitMQ user (default `guest`).", env="MQ_USERNAME")
    vhost: str | None = _key(None, "RabbitMQ virtual host (default `/`).", env="MQ_VHOST")
    group_id: str | None = _key(None, "Consumer group the keepers read the stream through (default "
                                      "`flowcept_keeper`); keepers of one group share the records.",
                                env="MQ_GROUP_ID")
    group_file: str | None = _key(None, "Reference only (Mofka group file).")
    instances: list[str] | None = _key(None, "Reference only (`host:port` list of DB writers).")
    channel: str = _key("interception", "Redis Stream, or RabbitMQ exchange (keepers' queue "
                                        "`<channel>.<group>`), records are published to.", env="MQ_CHANNEL")
    buffer_size: int = _key(50, "Reference producer flush size (compatibility constant).", min=1)
    insertion_buffer_time_secs: float = _key(5.0, "Reference producer flush period (compatibility constant).",
                                             min=0)
    timing: bool = _key(False, "Reference only (per-flush timing CSV).")
    chunk_size: int = _key(-1, "Reference only (bulk publish chunking).")
    same_as_kvdb: bool = _key(False, "Reference only (share the KV connection).")
    bin: str | None = _key(None, "Reference only (redis-server binary for the CLI).")
    conf_file: str | None = _key(None, "Reference only (redis-server config for the CLI).")
    spill_path: str = _key("flowcept_spill.jsonl",
                           "Base name of the files batches are spilled to while the broker is unreachable (each "
                           "process writes <stem>_<host>_<pid>.jsonl, replays it into the stream once the broker "
                           "is back, then deletes it; `flowcept ingest` loads one left behind).",
                           env="FLOWCEPT_MQ_SPILL_PATH")
    reconnect_deadline_secs: float = _key(2.0, "How long publishing retries a lost broker before spilling (the "
                                          "buffer holds what is captured meanwhile; keep it short).",
                                          env="FLOWCEPT_MQ_RECONNECT_DEADLINE_SECS", min=0)


# ----------------------------------------------------------------------------------------------------- kv_db
@_settings
class KVDBSettings:
    """``kv_db``: reference only (a Redis key-value DB for safe stops); not acted on."""

    enabled: bool = _key(False, "Reference only.", env="KVDB_ENABLED")
    host: str = _key("localhost", "Reference only.", env="KVDB_HOST")
    port: int = _key(6379, "Reference only.", env="KVDB_PORT", min=1, max=65535)
    uri: str | None = _key(None, "Reference only.", env="KVDB_URI")
    password: str | None = _key(None, "Reference only.")


# ------------------------------------------------------------------------------------------------ web_server
@_settings
class WebServerSettings:
    """``web_server``: the read-only web service and UI (``flowcept serve``)."""

    host: str = _key("127.0.0.1", "Bind host.", env="WEBSERVER_HOST")
    port: int = _key(8008, "Bind port.", env="WEBSERVER_PORT", min=1, max=65535)
    ui_enabled: bool = _key(True, "Serve the UI.")
    cors_origins: list[str] = _key([], "Allowed CORS origins.")
    sse_poll_interval_sec: float = _key(2.0, "Server-sent events poll period.", min=0)
    sse_max_batch: int = _key(500, "Server-sent events batch size.", min=1)
    dashboards_dir: str = _key("~/.flowcept/dashboards", "Saved dashboards folder.")
    max_label_length: int = _key(30, "Longest label shown.", env="WEBSERVER_MAX_LABEL_LENGTH", min=1)
    token: str | None = _key(None, "Token every request must carry (`Authorization: Bearer <token>`); required "
                             "to bind to an address other than 127.0.0.1/localhost/::1.", env="FLOWCEPT_WEB_TOKEN")
    allow_delete: bool = _key(False, "Enable the DELETE endpoints (workflows, campaigns); off: the service only "
                              "reads.")


# ---------------------------------------------------------------------------------------------- sys_metadata
@_settings
class SysMetadataSettings:
    """``sys_metadata``: host facts stamped on records; null means detect."""

    environment_id: str | None = _key(None, "Free label of the environment (e.g. `laptop`).",
                                      str_from_number=True)
    sys_name: str | None = _key(None, "OS name; default os.uname().sysname.")
    node_name: str | None = _key(None, "Node name; default os.uname().nodename.")
    login_name: str | None = _key(None, "User login; default getpass.getuser().")
    public_ip: str | None = _key(None, "Public IP address, if you want it recorded.")
    private_ip: str | None = _key(None, "Private IP address, if you want it recorded.")


# ------------------------------------------------------------------------------------------------- db_buffer
@_settings
class DBBufferSettings:
    """``db_buffer``: reference only (the DB writer's batching); the keeper follows ``buffer``."""

    insertion_buffer_time_secs: float | None = _key(5.0, "Reference only.", min=0)
    buffer_size: int = _key(50, "Reference only.", min=1)
    remove_empty_fields: bool = _key(False, "Reference only.")
    stop_max_trials: int = _key(240, "Reference only.", min=0)
    stop_trials_sleep: float = _key(0.01, "Reference only.", min=0)


# ----------------------------------------------------------------------------------------------------- agent
@_settings
class AgentSettings:
    """``agent``: reference only (the MCP agent server); not acted on."""

    enabled: bool = _key(False, "Reference only.")
    mcp_host: str = _key("localhost", "Reference only.", env="AGENT_HOST")
    mcp_port: int = _key(8000, "Reference only.", env="AGENT_PORT", min=1, max=65535)
    mcp_allowed_hosts: list[str] | None = _key(None, "Reference only (env: JSON list).", env="MCP_ALLOWED_HOSTS")
    mcp_allowed_origins: list[str] | None = _key(None, "Reference only (env: JSON list).",
                                                 env="MCP_ALLOWED_ORIGINS")
    llm_server_url: str | None = _key(None, "Reference only.")
    api_key: str | None = _key(None, "Reference only.", env="AGENT_API_KEY")
    model: str | None = _key(None, "Reference only.")
    service_provider: str | None = _key(None, "Reference only.")
    model_kwargs: dict[str, Any] = _key({}, "Reference only.")
    audio_enabled: bool = _key(False, "Reference only.", env="AGENT_AUDIO")
    debug: bool = _key(False, "Reference only.")
    start_persistence: bool = _key(False, "Reference only.")
    chat_enabled: bool = _key(True, "Reference only.")
    chat_max_tool_iterations: int = _key(5, "Reference only.", min=0)
    chat_max_query_limit: int = _key(1000, "Reference only.", min=0)
    chat_max_tool_result_chars: int = _key(4000, "Reference only.", min=0)
    agent_mode: str = _key("disabled", "Reference only.", env="AGENT_MODE",
                           choices=("disabled", "separate", "colocated"))


# ------------------------------------------------------------------------------------------------- databases
@_settings
class SQLiteSettings:
    """``databases.sqlite``: the default, serverless store."""

    enabled: bool = _key(True, "Write records to SQLite (unless postgres is enabled too: postgres wins).",
                         env="FLOWCEPT_SQLITE_ENABLED")
    path: str = _key("~/.flowcept/flowcept.sqlite", "Database file (`~` is expanded).",
                     env="FLOWCEPT_SQLITE_PATH", expand_user=True)


@_settings
class PostgresSettings:
    """``databases.postgres``: the scale-out store."""

    enabled: bool = _key(False, "Write records to PostgreSQL; wins over sqlite when both are enabled.",
                         env="FLOWCEPT_POSTGRES_ENABLED")
    uri: str | None = _key(None, "Connection URI; wins over the parts below.", env="FLOWCEPT_POSTGRES_URI")
    host: str = _key("127.0.0.1", "Server host.", env="FLOWCEPT_POSTGRES_HOST")
    port: int = _key(5432, "Server port.", env="FLOWCEPT_POSTGRES_PORT", min=1, max=65535)
    user: str = _key("postgres", "User name.", env="FLOWCEPT_POSTGRES_USER")
    password: str | None = _key(None, "Password.", env="FLOWCEPT_POSTGRES_PASSWORD")
    dbname: str = _key("flowcept", "Database name.", env="FLOWCEPT_POSTGRES_DBNAME")

    @property
    def dsn(self) -> str:
        """The connection URI: ``uri`` when set, else built from the parts (user and password quoted)."""
        if self.uri:
            return self.uri
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{quote(self.dbname, safe='')}"


@_settings
class MongoDBSettings:
    """``databases.mongodb``: reference only (out of scope); not acted on."""

    enabled: bool = _key(False, "Reference only.", env="MONGO_ENABLED")
    host: str = _key("localhost", "Reference only.", env="MONGO_HOST")
    port: int = _key(27017, "Reference only.", env="MONGO_PORT", min=1, max=65535)
    uri: str | None = _key(None, "Reference only.", env="MONGO_URI")
    db: str = _key("flowcept", "Reference only.")
    create_collection_index: bool = _key(True, "Reference only.")
    bin: str | None = _key(None, "Reference only.")
    db_path: str | None = _key(None, "Reference only.")
    log_path: str | None = _key(None, "Reference only.")
    lock_file_path: str | None = _key(None, "Reference only.")


@_settings
class LMDBSettings:
    """``databases.lmdb``: reference only (out of scope); not acted on."""

    enabled: bool = _key(False, "Reference only.", env="LMDB_ENABLED")
    path: str = _key("flowcept_lmdb", "Reference only.", env="LMDB_PATH")


@_settings
class DatabasesSettings:
    """``databases``: where records are stored. If sqlite and postgres are both enabled, postgres wins."""

    sqlite: SQLiteSettings = _section(SQLiteSettings, "The SQLite store.")
    postgres: PostgresSettings = _section(PostgresSettings, "The PostgreSQL store.")
    mongodb: MongoDBSettings = _section(MongoDBSettings, "Reference only.")
    lmdb: LMDBSettings = _section(LMDBSettings, "Reference only.")

    @property
    def store_kind(self) -> str | None:
        """``"postgres"`` if enabled (it wins over sqlite), else ``"sqlite"`` if enabled, else None."""
        if self.postgres.enabled:
            return "postgres"
        if self.sqlite.enabled:
            return "sqlite"
        return None


# ---------------------------------------------------------------------------------------------------- buffer
@_settings
class BufferSettings:
    """``buffer``: the per-process record buffer and its flusher thread."""

    batch_size: int = _key(2000, "Records per flushed batch; crossing it wakes the flusher.",
                           env="FLOWCEPT_BUFFER_BATCH_SIZE", min=1)
    flush_interval_secs: float = _key(0.1, "Longest time a record waits in the buffer (at least 1 ms: the flusher "
                                           "wakes this often even when idle).",
                                      env="FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS", min=0.001)
    max_size: int = _key(20000, "Records the buffer holds before appends wait for room (bounds the memory of a "
                                "process that captures faster than its store writes).",
                         env="FLOWCEPT_BUFFER_MAX_SIZE", min=1)
    full_wait_secs: float = _key(5.0, "How long appends wait on a full buffer while nothing at all is delivered "
                                      "before records are dropped (counted in stop()'s report, logged).",
                                 env="FLOWCEPT_BUFFER_FULL_WAIT_SECS", min=0)
    stop_timeout_secs: float = _key(60.0, "stop() deadline for every buffered record to be confirmed.",
                                    env="FLOWCEPT_BUFFER_STOP_TIMEOUT_SECS", min=0)


# -------------------------------------------------------------------------------------------------- Settings
@_settings
class Settings:
    """All flowcept settings, read-only. Build with :func:`load_settings` or :func:`get_settings`."""

    path: str = _key(DEFAULT_SETTINGS_SENTINEL, "The settings file used, or the sentinel string.", hidden=True)
    flowcept_version: str | None = _key(None, "Informational version the file was written for.",
                                        str_from_number=True)
    project: ProjectSettings = _section(ProjectSettings, "Capture behaviour.")
    log: LogSettings = _section(LogSettings, "Logging.")
    telemetry_capture: TelemetryCaptureSettings = _section(TelemetryCaptureSettings, "Resource metrics.")
    instrumentation: InstrumentationSettings = _section(InstrumentationSettings, "Capture methods.")
    experiment: ExperimentSettings = _section(ExperimentSettings, "Experiment metadata.")
    mq: MQSettings = _section(MQSettings, "Message queue.")
    kv_db: KVDBSettings = _section(KVDBSettings, "Reference only.")
    web_server: WebServerSettings = _section(WebServerSettings, "Reference only.")
    sys_metadata: SysMetadataSettings = _section(SysMetadataSettings, "Host facts.")
    extra_metadata: dict[str, Any] = _key({}, "Free mapping added to workflow records.")
    db_buffer: DBBufferSettings = _section(DBBufferSettings, "Reference only.")
    agent: AgentSettings = _section(AgentSettings, "Reference only.")
    databases: DatabasesSettings = _section(DatabasesSettings, "Stores.")
    adapters: dict[str, dict[str, Any]] = _key({}, "Adapter key -> adapter settings: a `kind` (dask, mlflow, "
                                                   "tensorboard, broker) and its keys (flowcept/adapters/_specs.py).")
    buffer: BufferSettings = _section(BufferSettings, "Record buffer.")

    def to_dict(self, redact: bool = True) -> dict[str, Any]:
        """Return the settings as the nested plain dict of the YAML tree (``path`` left out).

        Args:
            redact: replace the values of secret-looking keys (password, token, api_key...) and the password
                part of URIs with ``"REDACTED"``.
        """
        return _to_dict(self, redact)


def _to_dict(obj: Any, redact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.metadata.get("hidden"):
            continue
        value = getattr(obj, f.name)
        if "section" in f.metadata:
            out[f.name] = _to_dict(value, redact)
        else:
            out[f.name] = _plain(f.name, value, redact)
    return out


def _plain(name: str, value: Any, redact: bool) -> Any:
    if redact and value is not None and _is_secret(name):
        return _REDACTED
    if isinstance(value, dict):
        return {k: _plain(str(k), v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain("", v, redact) for v in value]
    if redact and isinstance(value, str) and "://" in value and "@" in value:
        return _redact_uri(value)
    return value


def redact_settings_values(values: Any) -> Any:
    """A copy of settings-shaped data (nested dicts and lists) with secret-looking keys' values (password, token,
    secret, api_key, access_key, passwd, credentials) and URI passwords replaced by ``"REDACTED"``."""
    return _plain("", values, True)


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_PARTS)


_URI_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):([^@/]*)@")


def _redact_uri(uri: str) -> str:
    return _URI_PASSWORD.sub(lambda m: f"{m.group(1)}:{_REDACTED}@", uri)


def _iter_keys(cls: type, prefix: str = ""):
    """Yield (dotted key, field) for every settings key, depth first."""
    for f in fields(cls):
        if "section" in f.metadata:
            yield from _iter_keys(f.metadata["section"], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


#: Every env override: env var name -> dotted settings key.
ENV_VARS: dict[str, str] = {f.metadata["env"]: key for key, f in _iter_keys(Settings) if f.metadata.get("env")}
ENV_VARS[ENV_SETTINGS_PATH] = "path"
ENV_VARS[ENV_USE_DEFAULT] = "path"


# --------------------------------------------------------------------------------------------------- loading
class _Load:
    """State of one load: where values come from and which ignored keys were seen."""

    __slots__ = ("path", "env", "ignored_seen")

    def __init__(self, path: str | None, env: Mapping[str, str] | None):
        self.path = path
        self.env = env  # None: env overrides are off (FLOWCEPT_USE_DEFAULT)
        self.ignored_seen: list[str] = []


def _truthy(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _base_type(annotation: str) -> tuple[str, bool]:
    """Parse an annotation string such as ``"list[str] | None"`` into ("list", optional)."""
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip().split("[", 1)[0]
    return base, optional


_EXPECTED = {"bool": "a boolean (true/false)", "int": "an integer", "float": "a number", "str": "a string",
             "list": "a list", "dict": "a mapping"}


def _convert_file_value(value: Any, f, key: str, load: _Load) -> Any:
    base, optional = _base_type(f.type)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"expected {_EXPECTED[base]}, got null", key=key, path=load.path)
    ok = False
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base == "str":
        if f.metadata.get("str_from_number") and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        ok = isinstance(value, str)
    elif base == "list":
        ok = isinstance(value, list)
        if ok and "[str]" in f.type and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"expected a list of strings, got {value!r}", key=key, path=load.path)
    elif base == "dict":
        ok = isinstance(value, dict)
    if not ok:
        raise ConfigError(f"expected {_EXPECTED[base]}, got {type(value).__name__} {value!r}",
                          key=key, path=load.path)
    return value


def _convert_env_value(text: str, f, key: str, var: str) -> Any:
    base, optional = _base_type(f.type)
    stripped = text.strip()
    if optional and (stripped == "" or (base != "str" and stripped.lower() in ("none", "null"))):
        return None  # an empty variable means "not set"

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected} from env {var}, got {text!r}", key=key)

    if base == "bool":
        value = _truthy(stripped)
        if value is None:
            raise bad("a boolean (1/true/yes/y/t or 0/false/no/n/f)")
        return value
    if base == "int":
        try:
            return int(stripped)
        except ValueError:
            raise bad("an integer") from None
    if base == "float":
        try:
            return float(stripped)
        except ValueError:
            raise bad("a number") from None
    if base in ("list", "dict"):
        try:
            value = json.loads(stripped)
        except ValueError:
            if base == "dict":
                raise bad("a JSON object") from None
            value = [part.strip() for part in stripped.split(",") if part.strip()]
        if not isinstance(value, list if base == "list" else dict):
            raise bad("a JSON list" if base == "list" else "a JSON object")
        return value
    return text


def _check_value(value: Any, f, key: str, path: str | None) -> Any:
    meta = f.metadata
    if value is None:
        return None
    choices = meta.get("choices")
    if choices:
        if key == "mq.type" and value in _UNSUPPORTED_MQ:
            raise ConfigError(f"message queue type {value!r} is not supported by this flowcept; "
                              f"use 'redis' (Redis Streams) or 'rabbitmq'", key=key, path=path)
        if isinstance(value, str) and choices is _LOG_LEVELS:
            value = value.lower()
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"invalid value {value!r}; allowed values: {allowed}", key=key, path=path)
    if isinstance(value, float) and value != value:  # NaN passes every comparison below
        raise ConfigError("must be a number, got nan", key=key, path=path)
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"must be >= {meta['min']}, got {value!r}", key=key, path=path)
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"must be <= {meta['max']}, got {value!r}", key=key, path=path)
    if meta.get("expand_user") and isinstance(value, str):
        value = os.path.expanduser(value)
    return value


def _is_ignored(key: str) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:i]) in IGNORED_KEYS for i in range(1, len(parts) + 1))


def _suggest(name: str, prefix: str, cls: type) -> str | None:
    import difflib

    here = [f.name for f in fields(cls) if not f.metadata.get("hidden")]
    match = difflib.get_close_matches(name, here, n=1, cutoff=0.6)
    if match:
        return prefix + match[0]
    # Not close to anything at this level: maybe the key belongs in another section.
    everywhere = {key.rsplit(".", 1)[-1]: key for key, f in _iter_keys(Settings) if not f.metadata.get("hidden")}
    match = difflib.get_close_matches(name, list(everywhere), n=1, cutoff=0.8)
    return everywhere[match[0]] if match else None


def _build(cls: type, data: Any, prefix: str, load: _Load) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping (a section), got {type(data).__name__} {data!r}",
                          key=prefix.rstrip(".") or None, path=load.path)
    known = {f.name: f for f in fields(cls) if not f.metadata.get("hidden")}
    for name in data:
        if name not in known:
            key = f"{prefix}{name}"
            suggestion = _suggest(str(name), prefix, cls)
            hint = f"; did you mean '{suggestion}'?" if suggestion else ""
            raise ConfigError(f"unknown settings key '{key}'{hint}", key=key, path=load.path)
    kwargs = {}
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        if "section" in f.metadata:
            kwargs[f.name] = _build(f.metadata["section"], data.get(f.name), key + ".", load)
            continue
        if key == "path":
            continue  # set by the loader, never from the file
        value = _default(f)
        source_path = load.path
        if f.name in data and not f.metadata.get("hidden"):
            value = _convert_file_value(data[f.name], f, key, load)
            if _is_ignored(key):
                load.ignored_seen.append(key)
        var = f.metadata.get("env")
        if var and load.env is not None and var in load.env:
            value = _convert_env_value(load.env[var], f, key, var)
            source_path = None
        kwargs[f.name] = _check_value(value, f, key, source_path)
    return cls(**kwargs)


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()


def _check_settings(settings: Settings, load: _Load) -> None:
    if settings.adapters:
        from flowcept.adapters._specs import validate_adapter

        for name, spec in settings.adapters.items():
            validate_adapter(str(name), spec, load.path)
    uri = settings.mq.uri
    schemes = ("amqp://", "amqps://") if settings.mq.type == "rabbitmq" else ("redis://", "rediss://", "unix://")
    if uri and not uri.startswith(schemes):
        raise ConfigError(f"expected a {', '.join(schemes)} URI for mq.type {settings.mq.type}, got "
                          f"{_redact_uri(uri)!r}", key="mq.uri", path=load.path)


_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_OC_ENV = re.compile(r"^oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,(.*))?$", re.S)


def _resolve(value: Any, key: str, load: _Load, environ: Mapping[str, str]) -> Any:
    """Resolve ``${oc.env:VAR}`` / ``${oc.env:VAR,default}`` interpolations (the only OmegaConf form supported)."""
    if isinstance(value, dict):
        return {k: _resolve(v, f"{key}.{k}" if key else str(k), load, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, key, load, environ) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(match: re.Match) -> str:
        m = _OC_ENV.match(match.group(1).strip())
        if not m:
            raise ConfigError(f"unsupported interpolation {match.group(0)!r}; only ${{oc.env:VAR}} and "
                              f"${{oc.env:VAR,default}} are supported", key=key, path=load.path)
        var, default = m.group(1), m.group(2)
        if var in environ:
            return environ[var]
        if default is None:
            raise ConfigError(f"env var {var} is not set and {match.group(0)!r} has no default",
                              key=key, path=load.path)
        return default.strip().strip("'\"")

    whole = _INTERPOLATION.fullmatch(value.strip())
    resolved = _INTERPOLATION.sub(one, value)
    if whole:
        # A value that is one interpolation takes the YAML type of what it resolves to (6379 -> int).
        import yaml

        try:
            typed = yaml.safe_load(resolved)
        except yaml.YAMLError:
            return resolved
        if typed is None or isinstance(typed, (bool, int, float, str)):
            return typed
    return resolved


def _read_file(path: str, environ: Mapping[str, str]) -> dict:
    import yaml

    load = _Load(path, None)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file: {exc.strerror or exc}", path=path) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"the settings file is not valid YAML: {exc}", path=path) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the settings file must hold a mapping at the top level, got {type(data).__name__}",
                          path=path)
    return _resolve(data, "", load, environ)


def _build_settings(data: Mapping[str, Any], path: str | None, env: Mapping[str, str] | None) -> Settings:
    load = _Load(path, env)
    settings = replace(_build(Settings, dict(data), "", load), path=path or DEFAULT_SETTINGS_SENTINEL)
    _check_settings(settings, load)
    if load.ignored_seen:
        warnings.warn(
            f"{path or 'settings'}: these keys are accepted for compatibility but not acted on by this flowcept: "
            + ", ".join(load.ignored_seen),
            FlowceptSettingsWarning,
            stacklevel=3,
        )
    return settings


def settings_from_dict(data: Mapping[str, Any], path: str | None = None,
                       env: Mapping[str, str] | None = None) -> Settings:
    """Validate a settings mapping (the YAML tree) into :class:`Settings`.

    Args:
        data: the nested settings mapping; missing keys take their defaults.
        path: where the mapping came from, for error messages and ``Settings.path``.
        env: the environment for overrides (default ``os.environ``); overrides are off when it sets
            FLOWCEPT_USE_DEFAULT truthy.

    Raises:
        ConfigError: unknown key, wrong type or invalid value.
    """
    environ = os.environ if env is None else env
    use_default = _truthy(environ.get(ENV_USE_DEFAULT, "")) is True
    return _build_settings(data, path, None if use_default else environ)


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Find, read and validate the settings.

    Without ``path``: env FLOWCEPT_USE_DEFAULT truthy gives the built-in defaults (no file, no env override);
    else the file is env FLOWCEPT_SETTINGS_PATH or ``~/.flowcept/settings.yaml``, and a missing file gives the
    defaults with env overrides applied. With ``path``, that file is read and must exist (env overrides apply
    unless FLOWCEPT_USE_DEFAULT is truthy).

    Args:
        path: the settings file to read instead of looking one up.
        env: the environment (default ``os.environ``).

    Returns:
        The validated, read-only settings.

    Raises:
        ConfigError: the file is unreadable, not YAML, not a mapping, or holds a bad key or value.
    """
    environ = os.environ if env is None else env
    use_default = _truthy(environ.get(ENV_USE_DEFAULT, "")) is True
    overrides = None if use_default else environ
    if path is not None:
        path = os.path.expanduser(os.fspath(path))
        if not os.path.isfile(path):
            raise ConfigError("settings file not found", path=path)
        return _build_settings(_read_file(path, environ), path, overrides)
    if use_default:
        return _build_settings({}, None, None)
    path = os.path.expanduser(environ.get(ENV_SETTINGS_PATH) or DEFAULT_SETTINGS_PATH)
    if not os.path.isfile(path):
        if environ.get(ENV_SETTINGS_PATH):
            warnings.warn(f"{ENV_SETTINGS_PATH}={path} does not exist; using the built-in defaults",
                          FlowceptSettingsWarning, stacklevel=2)
        return _build_settings({}, None, overrides)
    return _build_settings(_read_file(path, environ), path, overrides)


_cached: Settings | None = None
_cache_lock = threading.Lock()


def get_settings() -> Settings:
    """Return the process's settings, loaded on first call and cached.

    Raises:
        ConfigError: as :func:`load_settings`.
    """
    global _cached
    settings = _cached
    if settings is None:
        with _cache_lock:
            if _cached is None:
                _cached = load_settings()
            settings = _cached
    return settings


def use_settings(settings: Settings) -> None:
    """Make ``settings`` the process's settings (a child process joining its parent's workflow takes the parent's)."""
    global _cached
    with _cache_lock:
        _cached = settings


def reload_settings() -> Settings:
    """Drop the cached settings and load them again (after the environment or the file changed)."""
    global _cached
    with _cache_lock:
        _cached = None
    return get_settings()
