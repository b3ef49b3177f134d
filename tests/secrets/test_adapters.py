"""Adapter records go through the pipeline, so their secret-looking params are redacted like any record's."""

from __future__ import annotations

import pytest

from flowcept import Flowcept
from flowcept.redact import REDACTED

pytestmark = pytest.mark.timeout(240)


def test_mlflow_param_named_api_token(tmp_path, monkeypatch):
    """A real MLflow run logging `api_token` and `db_password` params: both are REDACTED in the store and the JSONL
    file, the other params and the metrics are kept."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tests.adapters.test_mlflow import log_run, mlflow_tasks, use_mlflow

    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("secrets")
    use_mlflow(tmp_path, monkeypatch, str(db))
    with Flowcept(interceptors=["mlflow"]) as f:
        run_id = log_run(client, exp, "train", {"lr": 0.1, "api_token": "tok-9", "db_password": "p@ss"},
                         {"loss": [0.5]}, {"max_tokens": "256"})
    task = mlflow_tasks(f.workflow_id)[run_id]
    assert task["used"] == {"lr": "0.1", "api_token": REDACTED, "db_password": REDACTED}
    assert task["generated"]["loss"] == 0.5 and task["custom_metadata"]["tags"]["max_tokens"] == "256"
    assert task["redacted"] == 2
    data = open(f.report.buffer_file, "rb").read()
    assert b"tok-9" not in data and b"p@ss" not in data


def test_tensorboard_hparam_named_secret(tmp_path, monkeypatch):
    """TensorBoard hparams (`used`) named like secrets are REDACTED; the others and the metrics are kept."""
    pytest.importorskip("tbparse")
    torch_tb = pytest.importorskip("torch.utils.tensorboard")

    from tests.adapters.test_tensorboard import tb_tasks, use_tensorboard

    logdir = tmp_path / "logs"
    logdir.mkdir()
    use_tensorboard(tmp_path, monkeypatch, logdir, extra="    log_metrics: ['*']\n")
    with Flowcept(interceptors=["tensorboard"]) as f:
        with torch_tb.SummaryWriter(str(logdir / "hp")) as writer:
            writer.add_hparams({"lr": 0.01, "hf_token": "tok-9"}, {"hp/acc": 0.75}, run_name="trial")
    task = tb_tasks(f.workflow_id)["hp/trial"]
    assert task["used"] == {"lr": pytest.approx(0.01), "hf_token": REDACTED}
    assert task["generated"]["hp/acc"] == pytest.approx(0.75)
