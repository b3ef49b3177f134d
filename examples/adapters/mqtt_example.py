"""MQTT broker adapter: each JSON message on the subscribed topics becomes a task record.

Run: python mqtt_example.py   (needs: pip install 'flowcept[mqtt]' and an MQTT broker on 127.0.0.1:1883)
"""
import json
import os
import time
import uuid

topic = f"flowcept-example/{uuid.uuid4().hex}"
# Usually in ~/.flowcept/settings.yaml; written here so the example runs as is.
with open("mqtt_settings.yaml", "w") as fh:
    fh.write(f"""
adapters:
  broker_mqtt:
    kind: broker
    host: 127.0.0.1
    port: 1883
    queues: ["{topic}/#"]
    qos: 1
    task_subtype: instrument_reading
    client_id: flowcept-example-{uuid.uuid4().hex[:8]}
    tracked_keys:
      task_id: msgId
      used: payload
      activity_id: operationId
      started_at: t
      custom_metadata: [device]
""")
os.environ["FLOWCEPT_SETTINGS_PATH"] = os.path.abspath("mqtt_settings.yaml")

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from flowcept import Flowcept  # noqa: E402

publisher = paho.Client(CallbackAPIVersion.VERSION2)
publisher.connect("127.0.0.1", 1883)
publisher.loop_start()
with Flowcept(interceptors=["broker_mqtt"], workflow_name="mqtt-example") as fc:
    adapter = fc._adapters[0]
    adapter.connected.wait(10)  # subscribed
    for i in range(5):
        reading = {"msgId": f"reading-{i}", "operationId": "measure", "t": time.time(), "device": "probe-1",
                   "payload": {"temperature": 20 + i}}
        publisher.publish(f"{topic}/probe-1", json.dumps(reading), qos=1).wait_for_publish(10)
    publisher.publish(f"{topic}/probe-1", b"garbled", qos=1).wait_for_publish(10)
    deadline = time.time() + 10
    while adapter.received < 6 and time.time() < deadline:
        time.sleep(0.05)
publisher.loop_stop()

tasks = Flowcept.db.task_query({"workflow_id": fc.workflow_id, "adapter_id": "broker_mqtt"})
print(sorted(t["used"]["temperature"] for t in tasks))
print(f"{len(tasks)} messages captured, {fc.report.adapters['broker_mqtt']['rejected']} rejected")
