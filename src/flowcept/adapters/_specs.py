"""The settings of each adapter kind: keys, types, defaults (``adapters.<key>`` in the settings file).

Pure Python, no third-party imports: :mod:`flowcept.settings` validates every ``adapters.<key>`` section with it
when the settings load, so a typo fails before any adapter or pipeline starts.
"""

from __future__ import annotations

from typing import Any

from flowcept.errors import ConfigError

# kind -> {key: (expected types, default, meaning)}; `kind` itself is implied.
_NUM = (int, float)
KINDS: dict[str, dict[str, tuple[tuple, Any, str]]] = {
    "dask": {
        "worker_should_get_input": ((bool,), True, "Record each Dask task's arguments as `used`."),
        "worker_should_get_output": ((bool,), True, "Record each Dask task's result as `generated`."),
        "worker_create_timestamps": ((bool,), False, "Take started_at/ended_at from the worker's own clock at "
                                                     "the transitions instead of Dask's compute start/stop."),
        "scheduler_should_get_input": ((bool,), True, "Reference only (not acted on)."),
        "scheduler_create_timestamps": ((bool,), True, "Reference only (not acted on)."),
        "watch_interval_sec": (_NUM, 1.0, "How often records are collected from the workers while running."),
    },
    "mlflow": {
        "file_path": ((str,), "mlflow.db", "The MLflow SQLite tracking file (or any tracking URI)."),
        "tracking_uri": ((str, type(None)), None, "A tracking URI (sqlite:///..., postgresql+psycopg://...); "
                                                  "wins over file_path."),
        "log_params": ((list,), ["*"], "Params to record as `used` ('*': all)."),
        "log_metrics": ((list,), ["*"], "Metrics to record as `generated` ('*': all)."),
        "watch_interval_sec": (_NUM, 1.0, "Seconds between two polls of the tracking store."),
        "redis_host": ((str, type(None)), None, "Reference only (not acted on)."),
        "redis_port": ((int, type(None)), None, "Reference only (not acted on)."),
    },
    "tensorboard": {
        "file_path": ((str,), "tensorboard_events", "The log directory to observe (must be a directory)."),
        "log_tags": ((list,), ["scalars", "hparams", "tensors"], "Event kinds to read: scalars, hparams, tensors."),
        "log_metrics": ((list,), ["*"], "Tags to record as `generated` ('*': all)."),
        "watch_interval_sec": (_NUM, 5.0, "Seconds between two scans of the log directory."),
        "redis_host": ((str, type(None)), None, "Reference only (not acted on)."),
        "redis_port": ((int, type(None)), None, "Reference only (not acted on)."),
    },
    "broker": {
        "host": ((str,), "127.0.0.1", "MQTT broker host."),
        "port": ((int,), 1883, "MQTT broker port."),
        "protocol": ((str,), "mqtt3.1.1", "MQTT protocol version: mqtt3.1.1 or mqtt5."),
        "queues": ((list,), ["#"], "Topic filters to subscribe to."),
        "username": ((str, type(None)), None, "Broker user name."),
        "password": ((str, type(None)), None, "Broker password."),
        "qos": ((int,), 2, "Subscription QoS (0, 1 or 2); 1 or 2 keeps messages sent during a reconnect."),
        "task_subtype": ((str, type(None)), "intersect_msg", "`subtype` of the task records."),
        "tracked_keys": ((dict,), {"used": "payload", "generated": None, "custom_metadata": ["headers", "msgId"],
                                   "activity_id": "operationId", "submitted_at": None, "started_at": None,
                                   "ended_at": None, "registered_at": None},
                         "Task field -> message key (dotted paths reach nested keys; null: not mapped)."),
        "client_id": ((str, type(None)), None, "MQTT client id of the persistent session (default: "
                                               "flowcept-<key>-<hostname>)."),
        "keepalive": ((int,), 30, "MQTT keepalive in seconds."),
        "rejects_file": ((str, type(None)), None, "Where unmappable messages are kept (default: "
                                                  "flowcept_<key>_rejects.jsonl in the working directory)."),
    },
}
#: Other names accepted for a kind.
KIND_ALIASES = {"mqtt": "broker", "broker_mqtt": "broker"}
#: The pip extra each kind needs.
EXTRAS = {"dask": "dask", "mlflow": "mlflow", "tensorboard": "tensorboard", "broker": "mqtt"}
_TASK_FIELDS = frozenset({"task_id", "activity_id", "used", "generated", "custom_metadata", "submitted_at",
                          "started_at", "ended_at", "registered_at", "status", "tags", "subtype", "agent_id",
                          "source_agent_id", "parent_task_id", "group_id", "stdout", "stderr"})


def canonical_kind(kind: str) -> str:
    """The registry name of ``kind`` (aliases resolved)."""
    return KIND_ALIASES.get(kind, kind)


def validate_adapter(key: str, spec: Any, path: str | None = None) -> dict:
    """Check one ``adapters.<key>`` section and return it with every default filled in.

    Raises:
        ConfigError: not a mapping, no or unknown ``kind``, an unknown key, or a value of the wrong type.
    """
    where = f"adapters.{key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a mapping with a 'kind', got {spec!r}", key=where, path=path)
    kind = spec.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ConfigError("every adapter needs a 'kind' (e.g. kind: mlflow)", key=where + ".kind", path=path)
    canonical = canonical_kind(kind)
    if canonical not in KINDS:
        raise ConfigError(f"unknown adapter kind {kind!r}; known: {', '.join(sorted(KINDS))}",
                          key=where + ".kind", path=path)
    keys = KINDS[canonical]
    out: dict = {"kind": canonical}
    for name, value in spec.items():
        if name == "kind":
            continue
        if name not in keys:
            raise ConfigError(f"unknown key for a {canonical!r} adapter; known: {', '.join(sorted(keys))}",
                              key=f"{where}.{name}", path=path)
        types = keys[name][0]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}",
                              key=f"{where}.{name}", path=path)
        out[name] = value
    for name, (_, default, _doc) in keys.items():
        out.setdefault(name, type(default)(default) if isinstance(default, (list, dict)) else default)
    _check_values(canonical, out, where, path)
    return out


def _check_values(kind: str, cfg: dict, where: str, path: str | None) -> None:
    if "watch_interval_sec" in cfg and cfg["watch_interval_sec"] <= 0:
        raise ConfigError("must be > 0", key=f"{where}.watch_interval_sec", path=path)
    if kind != "broker":
        return
    if cfg["qos"] not in (0, 1, 2):
        raise ConfigError(f"expected 0, 1 or 2, got {cfg['qos']!r}", key=f"{where}.qos", path=path)
    if cfg["protocol"] not in ("mqtt3.1.1", "mqtt5"):
        raise ConfigError(f"expected 'mqtt3.1.1' or 'mqtt5', got {cfg['protocol']!r}", key=f"{where}.protocol",
                          path=path)
    if not cfg["queues"] or not all(isinstance(q, str) and q for q in cfg["queues"]):
        raise ConfigError("expected a non-empty list of topic filters", key=f"{where}.queues", path=path)
    for field, source in cfg["tracked_keys"].items():
        if field not in _TASK_FIELDS:
            raise ConfigError(f"not a task field; known: {', '.join(sorted(_TASK_FIELDS))}",
                              key=f"{where}.tracked_keys.{field}", path=path)
        ok = source is None or isinstance(source, str) or (
            isinstance(source, list) and all(isinstance(s, str) for s in source))
        if not ok:
            raise ConfigError(f"expected a message key, a list of keys or null, got {source!r}",
                              key=f"{where}.tracked_keys.{field}", path=path)
