"""MQTT broker adapter against the real Mosquitto broker (127.0.0.1:1883)."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid

import pytest

pytest.importorskip("paho.mqtt")

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from flowcept import Flowcept  # noqa: E402
from flowcept.errors import ConfigError  # noqa: E402
from tests.conftest import write_settings  # noqa: E402
from tests.fix_proxy import TcpProxy  # noqa: E402

pytestmark = pytest.mark.timeout(180)
BROKER = ("127.0.0.1", 1883)
TRACKED = {"task_id": "id", "used": "payload", "generated": "result", "activity_id": "operationId",
           "started_at": "t0", "ended_at": "t1", "custom_metadata": ["headers.msgId", "source"]}


@pytest.fixture(name="topic")
def fixture_topic() -> str:
    return f"flowcept-tests/{uuid.uuid4().hex}"


@pytest.fixture(name="publisher")
def fixture_publisher():
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.connect(*BROKER)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def use_mqtt(tmp_path, monkeypatch, topic: str, port: int = BROKER[1], qos: int = 1,
             protocol: str = "mqtt3.1.1") -> str:
    client_id = f"flowcept-test-{uuid.uuid4().hex}"
    settings = {"adapters": {"mq": {"kind": "broker", "host": BROKER[0], "port": port, "queues": [topic + "/#"],
                                    "qos": qos, "client_id": client_id, "tracked_keys": TRACKED,
                                    "protocol": protocol}}}
    write_settings(tmp_path, json.dumps(settings), monkeypatch)
    return client_id


def message(i: int) -> bytes:
    return json.dumps({"id": f"m{i}", "payload": {"i": i}, "result": i * 2, "operationId": "measure",
                       "t0": 100.0 + i, "t1": 101.0 + i, "headers": {"msgId": i}, "source": "sensor"}).encode()


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def mqtt_tasks(workflow_id: str) -> dict:
    return {t["task_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id, "type": "task"})}


class TestMQTTAdapter:
    def test_messages_become_mapped_tasks(self, tmp_path, monkeypatch, topic, publisher):
        """Each JSON message becomes a task with the tracked_keys mapping, the subtype and the topic."""
        use_mqtt(tmp_path, monkeypatch, topic)
        with Flowcept(interceptors=["mq"]) as f:
            adapter = f._adapters[0]
            assert adapter.connected.wait(10)
            for i in range(3):
                publisher.publish(f"{topic}/dev{i}", message(i), qos=1).wait_for_publish(10)
            publisher.publish(f"{topic}/plain", json.dumps({"payload": "just text"}), qos=1).wait_for_publish(10)
            wait_for(lambda: adapter.received == 4)
        tasks = mqtt_tasks(f.workflow_id)
        assert len(tasks) == 4
        t = tasks["m1"]
        assert t["used"] == {"i": 1} and t["generated"] == {"result": 2} and t["activity_id"] == "measure"
        assert (t["started_at"], t["ended_at"]) == (101.0, 102.0) and t["subtype"] == "intersect_msg"
        assert t["custom_metadata"] == {"topic": f"{topic}/dev1", "headers.msgId": 1, "source": "sensor"}
        assert t["adapter_id"] == "mq" and t["workflow_id"] == f.workflow_id and t["campaign_id"] == f.campaign_id
        (plain,) = [t for tid, t in tasks.items() if not tid.startswith("m")]
        assert plain["used"] == {"payload": "just text"} and plain["custom_metadata"] == {"topic": f"{topic}/plain"}
        assert f.report.adapters["mq"] == {"captured": 4, "errors": 0, "rejected": 0, "received": 4}

    def test_malformed_messages_land_in_the_rejects_file(self, tmp_path, monkeypatch, topic, publisher):
        """Non-JSON and unmappable messages are counted and kept in a 0600 rejects file; valid ones still go on."""
        use_mqtt(tmp_path, monkeypatch, topic)
        with Flowcept(interceptors=["mq"]) as f:
            adapter = f._adapters[0]
            assert adapter.connected.wait(10)
            for payload in (b"not json {", b"[1, 2, 3]", json.dumps({"unrelated": 1}).encode(),
                            json.dumps({"id": "x", "t0": "yesterday"}).encode(), b"\xff\xfe", message(1)):
                publisher.publish(f"{topic}/in", payload, qos=1).wait_for_publish(10)
            wait_for(lambda: adapter.received == 6)
        assert set(mqtt_tasks(f.workflow_id)) == {"m1"}
        assert f.report.adapters["mq"]["rejected"] == 5
        path = tmp_path / "flowcept_mq_rejects.jsonl"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        rejects = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r.get("payload") for r in rejects[:4]] == ["not json {", "[1, 2, 3]", '{"unrelated": 1}',
                                                           '{"id": "x", "t0": "yesterday"}']
        assert rejects[4]["payload_base64"] == "//4=" and rejects[0]["reason"].startswith("not JSON")
        assert "started_at" in rejects[3]["reason"] and all(r["topic"] == f"{topic}/in" for r in rejects)

    @pytest.mark.slow
    def test_ten_thousand_qos1_messages_counted_exactly(self, tmp_path, monkeypatch, topic, publisher):
        """10,000 QoS 1 messages become exactly 10,000 task records."""
        use_mqtt(tmp_path, monkeypatch, topic)
        total = 10_000
        with Flowcept(interceptors=["mq"]) as f:
            adapter = f._adapters[0]
            assert adapter.connected.wait(10)
            for start in range(0, total, 500):
                for i in range(start, start + 500):
                    info = publisher.publish(f"{topic}/bulk", message(i), qos=1)
                info.wait_for_publish(30)
                # Stay inside the broker's per-client queue (mosquitto's max_queued_messages, 1000 by default).
                wait_for(lambda: adapter.received >= start)
            wait_for(lambda: adapter.received == total)
        tasks = mqtt_tasks(f.workflow_id)
        assert set(tasks) == {f"m{i}" for i in range(total)}
        assert tasks["m9999"]["used"] == {"i": 9999} and f.report.adapters["mq"]["captured"] == total

    @pytest.mark.slow
    @pytest.mark.parametrize("protocol", ["mqtt3.1.1", "mqtt5"])
    def test_connection_cut_for_five_seconds_loses_nothing(self, tmp_path, monkeypatch, topic, publisher, protocol):
        """Messages published at QoS 1 while the adapter's connection is cut arrive after it reconnects."""
        proxy = TcpProxy(BROKER)
        proxy.start()
        use_mqtt(tmp_path, monkeypatch, topic, port=proxy.port, protocol=protocol)
        with Flowcept(interceptors=["mq"]) as f:
            adapter = f._adapters[0]
            assert adapter.connected.wait(10)
            for i in range(100):
                publisher.publish(f"{topic}/a", message(i), qos=1)
            wait_for(lambda: adapter.received == 100)
            proxy.cut()
            wait_for(lambda: not adapter.connected.is_set(), timeout=10)
            cut_at = time.monotonic()
            for i in range(100, 400):
                info = publisher.publish(f"{topic}/a", message(i), qos=1)
            info.wait_for_publish(10)
            time.sleep(max(0.0, 5.0 - (time.monotonic() - cut_at)))
            proxy.start()
            # Not `received >= 400`: QoS 1 redelivers what was in flight at the cut, and those duplicates count
            # there. The messages still missing would stay with the broker when the adapter stops.
            wait_for(lambda: len(mqtt_tasks(f.workflow_id)) >= 400)
        tasks = mqtt_tasks(f.workflow_id)
        assert set(tasks) == {f"m{i}" for i in range(400)}
        # The reconnect attempts made while the proxy was down are counted, not raised. Messages in flight at the
        # cut are delivered again (QoS 1 is at-least-once): the mapped ids make those merges, not new records.
        assert f.report.adapter_errors["mq"] >= 1 and f.report.adapters["mq"]["captured"] >= 400


    def test_unreachable_broker_never_breaks_the_program(self, tmp_path, monkeypatch, topic):
        """A broker that does not answer: the workflow runs and stops normally, the failures are counted."""
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there
        use_mqtt(tmp_path, monkeypatch, topic, port=port)
        with Flowcept(interceptors=["mq"]) as f:
            wait_for(lambda: f._adapters[0].errors >= 1, timeout=30)
        assert f.report.adapter_errors["mq"] >= 1 and f.report.adapters["mq"]["captured"] == 0


class TestMQTTConfig:
    def test_bad_qos_and_tracked_field(self, tmp_path, monkeypatch):
        """A QoS outside 0-2 and a tracked key that is not a task field fail when the settings load."""
        with pytest.raises(ConfigError) as err:
            write_settings(tmp_path, "adapters:\n  mq:\n    kind: broker\n    qos: 3\n", monkeypatch)
        assert err.value.key == "adapters.mq.qos"
        with pytest.raises(ConfigError) as err:
            write_settings(tmp_path, "adapters:\n  mq:\n    kind: broker\n    tracked_keys: {colour: c}\n",
                           monkeypatch)
        assert err.value.key == "adapters.mq.tracked_keys.colour"
