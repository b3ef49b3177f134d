"""Capture a small training workflow, then export it (W3C PROV, RO-Crate, OpenLineage) and report on it.

Run: python examples/exports/export_and_report.py [OUTPUT_DIR]   (needs: pip install 'flowcept[export,report]')
"""

import os
import sys

from flowcept import Flowcept, flowcept_task
from flowcept.export import export_workflow
from flowcept.instrumentation.flowcept_task import telemetry_flowcept_task


@flowcept_task(output_names="rows")
def load(path):
    return [[i, i * i % 7] for i in range(200)]


@telemetry_flowcept_task
def train(rows, lr, epochs):
    weights = [0.0, 0.0]
    for _ in range(epochs):
        for x, y in rows:
            err = weights[0] + weights[1] * x - y
            weights = [weights[0] - lr * err, weights[1] - lr * err * x / 200]
    return {"model": weights}


@flowcept_task(output_names="score")
def evaluate(model, rows):
    return sum(abs(model[0] + model[1] * x - y) for x, y in rows) / len(rows)


out = sys.argv[1] if len(sys.argv) > 1 else "flowcept_exports"
os.makedirs(out, exist_ok=True)
with Flowcept(workflow_name="train_demo", workflow_args={"lr": 0.001, "api_token": "never-stored"}) as fc:
    rows = load("points.csv")
    for epochs in (20, 40, 80):
        model = train(rows, lr=0.001, epochs=epochs)["model"]
        evaluate(model, rows)

wf = fc.workflow_id
for fmt, name in (("prov-json", "run.prov.json"), ("prov-n", "run.provn"), ("prov-o", "run.ttl"),
                  ("ro-crate", "crate"), ("openlineage", "events.jsonl")):
    export_workflow(wf, fmt, os.path.join(out, name))
card = Flowcept.generate_report(workflow_id=wf, output_path=os.path.join(out, "WORKFLOW_CARD.md"))
Flowcept.generate_report("provenance_report", "pdf", output_path=os.path.join(out, "report.pdf"), workflow_id=wf)
Flowcept.generate_report("provenance_report", "html", output_path=os.path.join(out, "report.html"), workflow_id=wf)
print(f"{card['tasks']} tasks, {card['activities']} activities exported to {out}")
