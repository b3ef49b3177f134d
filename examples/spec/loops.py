"""Spec: Loop Instrumentation (the section's snippets, with the imports they assume)."""
import itertools as it
import random
from time import sleep

from flowcept import Flowcept, FlowceptLightweightLoop, FlowceptLoop

with Flowcept():
    loop = FlowceptLoop(range(5))  # See also: FlowceptLightweightLoop
    for item in loop:
        loss = random.random()
        sleep(0.05)
        print(item, loss)
        # The following is optional, in case you want to capture values generated inside the loop.
        loop.end_iter({"item": item, "loss": loss})

with Flowcept(workflow_name="telemetry_stream"):
    loop = FlowceptLoop(range(5), loop_name="train_loop", item_name="epoch")
    for epoch in loop:
        loss = 0.1 * (5 - epoch)
        sleep(0.02)
        # Attach values produced inside this iteration
        loop.end_iter({"loss": loss})

data = [0, 1, 2, 3, 4]
with Flowcept(workflow_name="batched_publish"):
    loop = FlowceptLightweightLoop(data, loop_name="eval_loop", item_name="batch")
    for batch in loop:
        metric = batch * 2
        loop.end_iter({"metric": metric})

stream = it.islice(it.count(), 0, 100)  # iterator without __len__
with Flowcept(workflow_name="iterators"):
    loop_a = FlowceptLoop(stream, loop_name="loop_a", item_name="i", items_length=100)
    for i in loop_a:
        loop_a.end_iter({"v": i * i})
    stream2 = it.islice(it.count(), 0, 100)
    loop_b = FlowceptLightweightLoop(stream2, loop_name="loop_b", item_name="i", items_length=100)
    for i in loop_b:
        loop_b.end_iter({"v": i * i})

counts = {name: Flowcept.db.count("tasks", {"activity_id": f"{name}_iteration"})
          for name in ("loop", "train_loop", "eval_loop", "loop_a", "loop_b")}
print(counts)
