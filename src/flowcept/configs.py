"""Reference-compatible module constants, computed once at import from :func:`flowcept.settings.get_settings`."""

# New code should read ``flowcept.settings.get_settings()`` (or the settings of the running scope) instead: these
# constants are frozen at first import and do not follow reload_settings().

from __future__ import annotations

import getpass
import os
from typing import Any

from flowcept.settings import get_settings

SETTINGS = get_settings()
#: The loaded settings as a nested dict (e.g. ``settings["adapters"]["mlflow"]["file_path"]``); secrets included,
#: as in the reference (this is the user's own file).
settings: dict[str, Any] = SETTINGS.to_dict(redact=False)
SETTINGS_PATH: str = SETTINGS.path
FLOWCEPT_VERSION: str | None = SETTINGS.flowcept_version

_project = SETTINGS.project
PROJECT_NAME: str = _project.name
DB_FLUSH_MODE: str = _project.db_flush_mode
JSON_SERIALIZER: str = _project.json_serializer
REPLACE_NON_JSON_SERIALIZABLE: bool = _project.replace_non_json_serializable
ENRICH_MESSAGES: bool = _project.enrich_messages
PERF_LOG: bool = _project.performance_logging
DUMP_BUFFER_ENABLED: bool = _project.dump_buffer.enabled
DUMP_BUFFER_PATH: str = _project.dump_buffer.path
DUMP_BUFFER_APPEND_ID: bool = _project.dump_buffer.append_id_to_path
DUMP_BUFFER_APPEND_WORKFLOW_ID: bool = _project.dump_buffer.append_workflow_id_to_path
DELETE_BUFFER_FILE: bool = _project.dump_buffer.delete_previous_file
# The reference's names for the dump-buffer path flags.
APPEND_ID_TO_PATH: bool = DUMP_BUFFER_APPEND_ID
APPEND_WORKFLOW_ID_TO_PATH: bool = DUMP_BUFFER_APPEND_WORKFLOW_ID

LOG_FILE_PATH: str = SETTINGS.log.log_path
LOG_FILE_LEVEL: str = SETTINGS.log.log_file_level
LOG_STREAM_LEVEL: str = SETTINGS.log.log_stream_level

_mq = SETTINGS.mq
MQ_ENABLED: bool = _mq.enabled
MQ_TYPE: str = _mq.type
MQ_HOST: str = _mq.host
MQ_PORT: int = _mq.port
MQ_URI: str | None = _mq.uri
MQ_CHANNEL: str = _mq.channel
MQ_BUFFER_SIZE: int = _mq.buffer_size
MQ_INSERTION_BUFFER_TIME: float = _mq.insertion_buffer_time_secs
INSERTION_BUFFER_TIME: float = _mq.insertion_buffer_time_secs
MQ_USER: str | None = _mq.username
MQ_PASSWORD: str | None = _mq.password
MQ_VHOST: str | None = _mq.vhost
MQ_GROUP_ID: str | None = _mq.group_id
MQ_TIMING: bool = _mq.timing
MQ_CHUNK_SIZE: int = _mq.chunk_size
MQ_INSTANCES: list[str] | None = _mq.instances

_kv = SETTINGS.kv_db
KVDB_HOST: str = _kv.host
KVDB_PORT: int = _kv.port
KVDB_URI: str | None = _kv.uri
KVDB_PASSWORD: str | None = _kv.password

_dbb = SETTINGS.db_buffer
DB_BUFFER_SIZE: int = _dbb.buffer_size
DB_INSERTER_MAX_TRIALS_STOP: int = _dbb.stop_max_trials
DB_INSERTER_SLEEP_TRIALS_STOP: float = _dbb.stop_trials_sleep
DB_INSERTION_BUFFER_TIME: float | None = _dbb.insertion_buffer_time_secs
REMOVE_EMPTY_FIELDS: bool = _dbb.remove_empty_fields

_web = SETTINGS.web_server
WEBSERVER_HOST: str = _web.host
WEBSERVER_PORT: int = _web.port

#: The ``agent`` section as a dict, and its most used keys.
AGENT: dict[str, Any] = settings["agent"]
AGENT_HOST: str = SETTINGS.agent.mcp_host
AGENT_PORT: int = SETTINGS.agent.mcp_port

TELEMETRY_ENABLED: bool = SETTINGS.telemetry_capture.enabled
TELEMETRY_CAPTURE: dict[str, Any] = SETTINGS.to_dict(redact=False)["telemetry_capture"]
INSTRUMENTATION_ENABLED: bool = SETTINGS.instrumentation.enabled
INSTRUMENTATION: dict[str, Any] = SETTINGS.to_dict(redact=False)["instrumentation"]

_db = SETTINGS.databases
SQLITE_ENABLED: bool = _db.sqlite.enabled
SQLITE_PATH: str = _db.sqlite.path
POSTGRES_ENABLED: bool = _db.postgres.enabled
MONGO_ENABLED: bool = _db.mongodb.enabled
LMDB_ENABLED: bool = _db.lmdb.enabled
DATABASES: dict[str, Any] = settings["databases"]
MONGO_HOST: str = _db.mongodb.host
MONGO_PORT: int = _db.mongodb.port
MONGO_URI: str | None = _db.mongodb.uri
MONGO_DB: str = _db.mongodb.db
LMDB_PATH: str = _db.lmdb.path
KVDB_ENABLED: bool = SETTINGS.kv_db.enabled

_sys = SETTINGS.sys_metadata


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return "unknown_user"


def _uname_field(name: str) -> str:
    if hasattr(os, "uname"):
        return getattr(os.uname(), name)
    import platform

    return platform.system() if name == "sysname" else platform.node()


ENVIRONMENT_ID: str | None = _sys.environment_id
SYS_NAME: str = _sys.sys_name or _uname_field("sysname")
NODE_NAME: str = _sys.node_name or _uname_field("nodename")
LOGIN_NAME: str = _sys.login_name or _login_name()
PUBLIC_IP: str | None = _sys.public_ip
PRIVATE_IP: str | None = _sys.private_ip
EXTRA_METADATA: dict[str, Any] = dict(SETTINGS.extra_metadata)
FLOWCEPT_USER: str = SETTINGS.experiment.user
ADAPTERS: dict[str, dict[str, Any]] = {k: dict(v) for k, v in SETTINGS.adapters.items()}


def __getattr__(name: str) -> Any:
    if name == "HOSTNAME":
        from flowcept._runtime import hostname

        value = globals()["HOSTNAME"] = hostname()
        return value
    raise AttributeError(
        f"flowcept.configs has no constant {name!r}; read it from flowcept.settings.get_settings() instead"
    )
