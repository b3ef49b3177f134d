"""MLflow adapter: every finished MLflow run becomes a task record (params -> used, metrics -> generated).

Run: python mlflow_example.py   (needs: pip install 'flowcept[mlflow]')
"""
import os

# Usually in ~/.flowcept/settings.yaml; written here so the example runs as is.
with open("mlflow_settings.yaml", "w") as fh:
    fh.write("""
adapters:
  mlflow:
    kind: mlflow
    file_path: mlflow.db      # the MLflow SQLite tracking file (or tracking_uri: postgresql+psycopg://...)
    log_params: ['*']
    log_metrics: ['*']
    watch_interval_sec: 1
""")
os.environ["FLOWCEPT_SETTINGS_PATH"] = os.path.abspath("mlflow_settings.yaml")

import mlflow  # noqa: E402

from flowcept import Flowcept  # noqa: E402

mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))

with Flowcept(interceptors=["mlflow"], workflow_name="mlflow-example") as fc:
    for lr in (0.1, 0.01):
        with mlflow.start_run(run_name=f"lr={lr}"):
            mlflow.log_param("lr", lr)
            for epoch in range(3):
                mlflow.log_metric("loss", lr / (epoch + 1), step=epoch)
    with mlflow.start_run(run_name="baseline"):  # no params, no metrics: captured too
        pass

runs = Flowcept.db.task_query({"workflow_id": fc.workflow_id, "adapter_id": "mlflow"})
for run in sorted(runs, key=lambda r: r["started_at"]):
    print(run["activity_id"], run["used"], run["generated"])
print(f"{len(runs)} mlflow runs captured")
