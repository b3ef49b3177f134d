"""MLflow adapter against real MLflow tracking stores (SQLite and PostgreSQL) written with the mlflow client."""

from __future__ import annotations

import logging
import os
import shutil
import uuid

import pytest

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from flowcept import Flowcept  # noqa: E402
from flowcept.errors import ConfigError  # noqa: E402
from tests.conftest import write_settings  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(name="template_db", scope="module")
def fixture_template_db(tmp_path_factory) -> str:
    """An empty MLflow SQLite store, made once (creating the schema takes seconds) and copied per test."""
    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return str(path)


@pytest.fixture(name="mlflow_db")
def fixture_mlflow_db(template_db, tmp_path) -> str:
    path = tmp_path / "mlflow.db"
    shutil.copy(template_db, path)
    return str(path)


def use_mlflow(tmp_path, monkeypatch, uri_or_path: str, extra: str = "", key: str = "mlflow") -> None:
    write_settings(tmp_path, f"adapters:\n  {key}:\n    kind: mlflow\n    file_path: '{uri_or_path}'\n"
                             f"    watch_interval_sec: 0.2\n{extra}", monkeypatch)


def log_run(client: MlflowClient, exp_id: str, name: str, params=None, metrics=None, tags=None,
            status: str = "FINISHED") -> str:
    run = client.create_run(exp_id, run_name=name, tags=tags or {})
    rid = run.info.run_id
    for k, v in (params or {}).items():
        client.log_param(rid, k, v)
    for k, values in (metrics or {}).items():
        for step, v in enumerate(values):
            client.log_metric(rid, k, v, step=step)
    client.set_terminated(rid, status=status)
    return rid


def mlflow_tasks(workflow_id: str) -> dict:
    return {t["task_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id, "type": "task"})}


class TestMLflowSqlite:
    def test_runs_become_tasks(self, mlflow_db, tmp_path, monkeypatch):
        """Runs with and without params or metrics, and a failed run, each become one task with the run's fields."""
        use_mlflow(tmp_path, monkeypatch, mlflow_db)
        client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
        exp = client.create_experiment("exp-a")
        with Flowcept(interceptors=["mlflow"]) as f:
            full = log_run(client, exp, "full", {"lr": 0.1, "bs": 8}, {"loss": [0.9, 0.5, 0.25]}, {"team": "x"})
            no_params = log_run(client, exp, "no-params", metrics={"acc": [0.7]})
            no_metrics = log_run(client, exp, "no-metrics", params={"seed": 3})
            bare = log_run(client, exp, "bare")
            failed = log_run(client, exp, "failed", params={"lr": 1}, status="FAILED")
            running = client.create_run(exp, run_name="still-running").info.run_id
        tasks = mlflow_tasks(f.workflow_id)
        assert set(tasks) == {full, no_params, no_metrics, bare, failed}
        t = tasks[full]
        run = client.get_run(full).info
        assert t["activity_id"] == "full" and t["used"] == {"lr": "0.1", "bs": "8"}
        assert t["generated"] == {"loss": 0.25, "step": {"loss": 2}} and t["status"] == "FINISHED"
        assert (t["started_at"], t["ended_at"]) == (run.start_time / 1000, run.end_time / 1000)
        assert t["custom_metadata"]["tags"]["team"] == "x" and t["custom_metadata"]["experiment_name"] == "exp-a"
        assert t["workflow_id"] == f.workflow_id and t["adapter_id"] == "mlflow"
        assert tasks[no_params]["used"] == {} and tasks[no_params]["generated"] == {"acc": 0.7, "step": {"acc": 0}}
        assert tasks[no_metrics]["used"] == {"seed": "3"} and tasks[no_metrics]["generated"] == {}
        assert tasks[bare]["activity_id"] == "bare"
        assert tasks[failed]["status"] == "ERROR" and tasks[failed]["custom_metadata"]["mlflow_status"] == "FAILED"
        assert running not in tasks
        assert f.report.adapters["mlflow"] == {"captured": 5, "errors": 0, "rejected": 0}

    def test_fifty_runs_between_two_polls_and_just_before_stop(self, mlflow_db, tmp_path, monkeypatch):
        """50 runs finishing between two polls, right before stop(), are each captured exactly once."""
        # No poll runs while the workflow does: the 50 runs are all new to the last poll, at stop().
        write_settings(tmp_path, f"adapters:\n  mlflow:\n    kind: mlflow\n    file_path: '{mlflow_db}'\n"
                                 f"    watch_interval_sec: 3600\n", monkeypatch)
        client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
        exp = client.create_experiment("many")
        with Flowcept(interceptors=["mlflow"]) as f:
            ids = [log_run(client, exp, f"r{i}", params={"i": i}, metrics={"m": [i]}) for i in range(50)]
        tasks = mlflow_tasks(f.workflow_id)
        assert set(tasks) == set(ids)
        assert all(t["used"] == {"i": t["activity_id"][1:]} for t in tasks.values())
        assert f.report.adapters["mlflow"]["captured"] == 50

    def test_restarted_observer_captures_each_run_once(self, mlflow_db, tmp_path, monkeypatch):
        """A second observer of the same store skips the first one's runs and picks up runs ended in between."""
        use_mlflow(tmp_path, monkeypatch, mlflow_db)
        client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
        exp = client.create_experiment("restart")
        with Flowcept(interceptors=["mlflow"]) as first:
            early = [log_run(client, exp, f"early{i}") for i in range(3)]
        between = log_run(client, exp, "between")
        with Flowcept(interceptors=["mlflow"]) as second:
            late = log_run(client, exp, "late")
        assert set(mlflow_tasks(first.workflow_id)) == set(early)
        assert set(mlflow_tasks(second.workflow_id)) == {between, late}
        assert second.report.adapters["mlflow"]["captured"] == 2

    def test_log_params_and_metrics_filters(self, mlflow_db, tmp_path, monkeypatch):
        """log_params / log_metrics keep only the named params and metrics."""
        use_mlflow(tmp_path, monkeypatch, mlflow_db, extra="    log_params: [lr]\n    log_metrics: [loss]\n")
        client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
        exp = client.create_experiment("filters")
        with Flowcept(interceptors=["mlflow"]) as f:
            rid = log_run(client, exp, "r", {"lr": 0.5, "seed": 1}, {"loss": [2.0, 1.0], "acc": [0.5]})
        t = mlflow_tasks(f.workflow_id)[rid]
        assert t["used"] == {"lr": "0.5"} and t["generated"] == {"loss": 1.0, "step": {"loss": 1}}

    def test_two_instances_of_one_kind(self, template_db, tmp_path, monkeypatch):
        """Two adapters of kind mlflow (mlflow1, mlflow2) each observe their own store."""
        paths = []
        for name in ("one.db", "two.db"):
            shutil.copy(template_db, tmp_path / name)
            paths.append(str(tmp_path / name))
        write_settings(tmp_path, "adapters:\n" + "".join(
            f"  mlflow{i + 1}:\n    kind: mlflow\n    file_path: '{p}'\n    watch_interval_sec: 0.2\n"
            for i, p in enumerate(paths)), monkeypatch)
        clients = [MlflowClient(tracking_uri=f"sqlite:///{p}") for p in paths]
        with Flowcept(interceptors=["mlflow"]) as f:
            ids = [log_run(c, c.create_experiment("e"), f"run{i}") for i, c in enumerate(clients)]
        tasks = mlflow_tasks(f.workflow_id)
        assert {tid: t["adapter_id"] for tid, t in tasks.items()} == {ids[0]: "mlflow1", ids[1]: "mlflow2"}

    def test_unreadable_store_is_a_config_error(self, tmp_path, monkeypatch):
        """A file that is not an MLflow store fails start() with a ConfigError naming the key; no pipeline opens."""
        bad = tmp_path / "garbage.db"
        bad.write_bytes(b"this is not a database" * 100)
        use_mlflow(tmp_path, monkeypatch, str(bad))
        f = Flowcept(interceptors=["mlflow"])
        with pytest.raises(ConfigError) as err:
            f.start()
        assert err.value.key == "adapters.mlflow.file_path" and not f.is_started
        assert not os.path.exists(tmp_path / "flowcept_buffer.jsonl")

    def test_unrelated_sqlite_file_is_refused_and_left_unchanged(self, tmp_path, monkeypatch):
        """A SQLite file without MLflow's tables is a ConfigError naming the key; the file is not migrated."""
        import sqlite3

        other = tmp_path / "other.db"
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        conn.close()
        before = other.read_bytes()
        use_mlflow(tmp_path, monkeypatch, str(other))
        f = Flowcept(interceptors=["mlflow"])
        with pytest.raises(ConfigError) as err:
            f.start()
        assert err.value.key == "adapters.mlflow.file_path" and not f.is_started
        assert "MLflow tracking database" in str(err.value) and "set_tracking_uri" in str(err.value)
        assert other.read_bytes() == before
        conn = sqlite3.connect(other)
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]
        conn.close()

    @pytest.mark.parametrize("as_uri", [False, True])
    def test_missing_file_is_awaited_and_never_created(self, tmp_path, monkeypatch, caplog, as_uri):
        """A file not there yet (plain path or sqlite:/// URI) is awaited, never created by flowcept: a typo
        captures nothing, and stop() says the file never appeared; a missing folder is a ConfigError."""
        missing = tmp_path / "typo_mlflow.db"
        use_mlflow(tmp_path, monkeypatch, f"sqlite:///{missing}" if as_uri else str(missing))
        with caplog.at_level(logging.WARNING, logger="flowcept"):
            with Flowcept(interceptors=["mlflow"]) as f:
                pass
        assert not missing.exists() and mlflow_tasks(f.workflow_id) == {}
        assert f"the MLflow tracking file {missing} (adapters.mlflow.file_path) never appeared" in caplog.text
        use_mlflow(tmp_path, monkeypatch, str(tmp_path / "no_such_folder" / "mlflow.db"))
        with pytest.raises(ConfigError) as err:
            Flowcept(interceptors=["mlflow"]).start()
        assert err.value.key == "adapters.mlflow.file_path" and "no such file" in str(err.value)

    def test_database_made_by_mlflow_after_start_is_captured(self, tmp_path, monkeypatch):
        """The usual order: Flowcept starts, then the program's first MLflow call creates the database; its runs
        are captured."""
        path = tmp_path / "later.db"
        use_mlflow(tmp_path, monkeypatch, str(path))
        with Flowcept(interceptors=["mlflow"]) as f:
            client = MlflowClient(tracking_uri=f"sqlite:///{path}")
            exp = client.create_experiment("later")
            rid = log_run(client, exp, "r", {"lr": 0.1})
        assert set(mlflow_tasks(f.workflow_id)) == {rid}

    def test_mlflow_database_missing_tables_is_not_migrated(self, mlflow_db, tmp_path, monkeypatch):
        """An MLflow database lacking tables this MLflow needs (an older schema) is refused, not migrated."""
        import sqlite3

        conn = sqlite3.connect(mlflow_db)
        conn.execute("DROP TABLE params")
        conn.commit()
        conn.close()
        before = open(mlflow_db, "rb").read()
        use_mlflow(tmp_path, monkeypatch, mlflow_db)
        with pytest.raises(ConfigError) as err:
            Flowcept(interceptors=["mlflow"]).start()
        assert err.value.key == "adapters.mlflow.file_path" and "mlflow db upgrade" in str(err.value)
        assert open(mlflow_db, "rb").read() == before

    def test_real_database_given_as_sqlite_uri_still_works(self, mlflow_db, tmp_path, monkeypatch):
        """The check accepts an MLflow database given as a sqlite:/// URI, and its runs are captured."""
        use_mlflow(tmp_path, monkeypatch, f"sqlite:///{mlflow_db}")
        client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
        exp = client.create_experiment("uri")
        with Flowcept(interceptors=["mlflow"]) as f:
            rid = log_run(client, exp, "r", {"lr": 0.1})
        assert set(mlflow_tasks(f.workflow_id)) == {rid}


@pytest.mark.postgres
@pytest.mark.slow
class TestMLflowPostgres:
    def test_runs_on_a_postgres_backend(self, tmp_path, monkeypatch, pg_dsn):
        """The same capture works with MLflow on PostgreSQL, runs without params and metrics included."""
        import psycopg

        base = pg_dsn.rsplit("/", 1)[0]
        db = "fc_mlflow_" + uuid.uuid4().hex[:12]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        try:
            uri = base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + db
            write_settings(tmp_path, f"adapters:\n  mlpg:\n    kind: mlflow\n    tracking_uri: '{uri}'\n"
                                     f"    watch_interval_sec: 0.2\n", monkeypatch)
            client = MlflowClient(tracking_uri=uri)
            exp = client.create_experiment("pg")
            with Flowcept(interceptors=["mlpg"]) as f:
                full = log_run(client, exp, "full", {"lr": 0.1}, {"loss": [1.0, 0.5]})
                bare = log_run(client, exp, "bare")
            tasks = mlflow_tasks(f.workflow_id)
            assert set(tasks) == {full, bare}
            assert tasks[full]["used"] == {"lr": "0.1"} and tasks[full]["generated"] == {"loss": 0.5,
                                                                                       "step": {"loss": 1}}
            assert tasks[bare]["used"] == {} and tasks[bare]["generated"] == {}
            assert tasks[full]["custom_metadata"]["mlflow_tracking_uri"] == uri
        finally:  # MLflow's engine keeps connections open: drop with FORCE
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
