"""MQTT broker adapter: each JSON message on the subscribed topics becomes one task record.

paho-mqtt 2 (``CallbackAPIVersion.VERSION2``) runs its network loop on its own thread and reconnects by itself.
The session is persistent (a stable client id, ``clean_session=False`` / ``clean_start=False`` with a session
that never expires): while the adapter is disconnected the broker keeps QoS 1/2 messages for it and delivers them
on reconnect, also to the next observer started with the same client id. A message is acknowledged after its
record is queued in the pipeline (paho acknowledges when the message callback returns).

Mapping (``tracked_keys``: task field -> message key, dotted paths reach nested keys, null = not mapped): a dict
``used``/``generated`` is taken as is, another value is kept under its key; ``custom_metadata`` takes a key or a
list of keys and always holds the ``topic``. A message that is not a JSON object, or from which no tracked key can
be read, is counted as rejected and appended to the rejects file (JSON Lines, mode 0600), never raised.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time

try:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from flowcept.errors import BackendUnavailableError

    raise BackendUnavailableError("the MQTT adapter", "mqtt") from exc

from flowcept import context as _ctx
from flowcept.adapters._base import Adapter
from flowcept.ids import new_id

_TIME_FIELDS = frozenset({"submitted_at", "started_at", "ended_at", "registered_at"})
_DICT_FIELDS = frozenset({"used", "generated"})
_MISSING = object()


class Unmappable(ValueError):
    """A message that cannot become a task record."""


def _lookup(message: dict, path: str):
    value = message
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def map_message(message, topic: str, tracked: dict, subtype: str | None) -> dict:
    """The task record of one decoded message.

    Raises:
        Unmappable: not a JSON object, a time field that is not a number, or no tracked key present.
    """
    if not isinstance(message, dict):
        raise Unmappable(f"expected a JSON object, got {type(message).__name__}")
    task: dict = {"type": "task", "subtype": subtype}
    metadata: dict = {"topic": topic}
    found = 0
    for field, source in tracked.items():
        if source is None:
            continue
        if field == "custom_metadata":
            for path in [source] if isinstance(source, str) else source:
                value = _lookup(message, path)
                if value is not _MISSING:
                    metadata[path] = value
                    found += 1
            continue
        if isinstance(source, list):
            value = {path: v for path in source if (v := _lookup(message, path)) is not _MISSING} or _MISSING
        else:
            value = _lookup(message, source)
        if value is _MISSING:
            continue
        found += 1
        if field in _TIME_FIELDS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise Unmappable(f"{field} ({source}) is not a number: {value!r}")
        if field in _DICT_FIELDS and not isinstance(value, dict):
            value = {source if isinstance(source, str) else field: value}
        elif field in ("task_id", "activity_id") and not isinstance(value, str):
            value = str(value)
        task[field] = value
    if not found:
        raise Unmappable(f"none of the tracked keys is in the message: {sorted(message)[:10]}")
    task["custom_metadata"] = metadata
    task.setdefault("task_id", new_id())
    return task


class MQTTAdapter(Adapter):
    """The ``broker`` adapter (settings ``host``, ``port``, ``queues``, ``qos``, ``username``, ``password``,
    ``task_subtype``, ``tracked_keys``, ``client_id``, ``keepalive``, ``rejects_file``)."""

    kind = "broker"

    def __init__(self, key: str, cfg: dict):
        super().__init__(key, cfg)
        self.client_id = cfg["client_id"] or f"flowcept-{key}-{socket.gethostname()}"
        self.rejects_path = os.path.abspath(cfg["rejects_file"] or f"flowcept_{key}_rejects.jsonl")
        self.received = 0
        self.connected = threading.Event()  # set once subscribed, cleared on disconnect
        self._rejects_lock = threading.Lock()
        self._client: paho.Client | None = None

    def start(self, scope: _ctx.Scope) -> None:
        super().start(scope)
        cfg = self.cfg
        v5 = cfg["protocol"] == "mqtt5"
        if v5:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        else:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                                 protocol=paho.MQTTv311)
        if cfg["username"]:
            client.username_pw_set(cfg["username"], cfg["password"])
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        if v5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0xFFFFFFFF  # the session outlives disconnects
            client.connect_async(cfg["host"], cfg["port"], cfg["keepalive"], clean_start=False, properties=props)
        else:
            client.connect_async(cfg["host"], cfg["port"], cfg["keepalive"])
        client.loop_start()

    # ---- paho callbacks (paho's network thread) -----------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.failed("connecting", ConnectionError(str(reason_code)))
            return
        client.subscribe([(topic, self.cfg["qos"]) for topic in self.cfg["queues"]])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self.failed("subscribing", ConnectionError(", ".join(failed)))
        self.connected.set()  # connected and subscribed: messages published from now on are ours

    def _on_connect_fail(self, client, userdata) -> None:
        # paho retries by itself; each failed attempt is counted (the log is rate-limited).
        self.failed(f"connecting to {self.cfg['host']}:{self.cfg['port']}", ConnectionError("broker unreachable"))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        self.received += 1
        try:
            message = json.loads(msg.payload)
        except ValueError as exc:
            self._reject(msg, f"not JSON: {exc}")
            return
        try:
            record = map_message(message, msg.topic, self.cfg["tracked_keys"], self.cfg["task_subtype"])
        except Unmappable as exc:
            self._reject(msg, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            self.failed("mapping a message", exc)
            self._reject(msg, f"mapping failed: {exc!r}")
            return
        self.emit(record)

    def _reject(self, msg, reason: str) -> None:
        self.rejected += 1
        try:
            payload = msg.payload.decode("utf-8")
            entry = {"topic": msg.topic, "payload": payload}
        except UnicodeDecodeError:
            entry = {"topic": msg.topic, "payload_base64": base64.b64encode(msg.payload).decode("ascii")}
        entry.update(reason=reason, received_at=time.time(), adapter_id=self.key)
        line = json.dumps(entry) + "\n"
        try:
            with self._rejects_lock:
                fd = os.open(self.rejects_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError as exc:
            self.failed(f"writing the rejects file {self.rejects_path}", exc)

    def stop(self) -> None:
        """Disconnect; the messages received so far are in the pipeline (the broker keeps the rest)."""
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        client.loop_stop()

    def counts(self) -> dict[str, int]:
        return {**super().counts(), "received": self.received}
