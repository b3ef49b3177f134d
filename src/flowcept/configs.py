"""Reference-compatible module constants, computed once at import from :func:`flowcept.settings.get_settings`."""

# New code should read ``flowcept.settings.get_settings()`` (or the settings of the running scope) instead: these
# constants are frozen at first import and do not follow reload_settings().

from __future__ import annotations

import getpass
import os
from typing import Any

from flowcept.settings import get_settings

SETTINGS = get_settings()
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
