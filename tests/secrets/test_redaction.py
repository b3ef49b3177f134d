"""Secrets never reach the embedded store or the JSONL buffer file; the opt-outs store them on request."""

from __future__ import annotations

import asyncio
import os

import pytest

from flowcept import Flowcept, FlowceptTask, flowcept_task
from flowcept.redact import REDACTED
from tests.conftest import sqlite_path, write_settings

SECRETS = ("s3cr3t", "AKIA123", "p@ss", "tok-9", "sess-1")


@flowcept_task
def login(user, password, api_key=None):
    return f"welcome {user}"


def _tasks(workflow_id: str) -> dict:
    return {t["activity_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id})}


def _files_hold_no_secret(*paths: str) -> None:
    for path in paths:
        data = open(path, "rb").read()
        assert REDACTED.encode() in data, path
        for secret in SECRETS:
            assert secret.encode() not in data, (path, secret)


class TestDefaults:
    def test_login_example_in_store_and_buffer_file(self):
        """The issue's login(user, password, api_key) stores REDACTED for both secrets, in the SQLite store and in
        the JSONL buffer file; the record and the stop report count them; no byte of either secret is on disk."""
        with Flowcept() as f:
            assert login("alice", "s3cr3t", api_key="AKIA123") == "welcome alice"
        task = _tasks(f.workflow_id)["login"]
        assert task["used"] == {"user": "alice", "password": REDACTED, "api_key": REDACTED}
        assert task["redacted"] == 2 and f.report.redacted == 2
        buffered = [r for r in Flowcept.read_buffer_file() if r.get("task_id") == task["task_id"]]
        assert buffered[0]["used"] == task["used"]
        _files_hold_no_secret(sqlite_path(), f.report.buffer_file)

    def test_nested_keys_in_every_field(self):
        """Keys at any depth of used, generated, custom_metadata and workflow_args are redacted."""
        @flowcept_task(custom_metadata={"service": {"cookie": "sess-1", "host": "h"}})
        def connect(config):
            return {"session": {"access_token": "tok-9", "expires": 60}}

        with Flowcept(workflow_args={"db": {"password": "p@ss", "host": "db1"}}) as f:
            connect({"db": {"password": "s3cr3t", "port": 5432}, "items": [{"apiKey": "AKIA123"}]})
        task = _tasks(f.workflow_id)["connect"]
        assert task["used"] == {"config": {"db": {"password": REDACTED, "port": 5432},
                                           "items": [{"apiKey": REDACTED}]}}
        assert task["generated"] == {"session": {"access_token": REDACTED, "expires": 60}}
        assert task["custom_metadata"] == {"service": {"cookie": REDACTED, "host": "h"}}
        assert task["redacted"] == 4
        workflow = Flowcept.db.workflow_query({"workflow_id": f.workflow_id})[0]
        assert workflow["used"] == {"db": {"password": REDACTED, "host": "db1"}} and workflow["redacted"] == 1
        assert f.report.redacted == 5
        _files_hold_no_secret(sqlite_path(), f.report.buffer_file)

    def test_adapter_params_emitted_through_the_pipeline(self):
        """An MLflow-style run record (params in used, metrics in generated) emitted by an adapter is redacted."""
        from flowcept.capture.emit import emit

        with Flowcept() as f:
            emit({"type": "task", "task_id": "mlflow-run-1", "subtype": "mlflow_run", "activity_id": "train",
                  "used": {"api_token": "tok-9", "lr": 0.1, "hparams": {"wandb_api_key": "AKIA123"}},
                  "generated": {"loss": 0.5, "max_tokens": 256}, "status": "FINISHED"})
        run = Flowcept.db.task_query({"task_id": "mlflow-run-1"})[0]
        assert run["used"] == {"api_token": REDACTED, "lr": 0.1, "hparams": {"wandb_api_key": REDACTED}}
        assert run["generated"] == {"loss": 0.5, "max_tokens": 256} and run["redacted"] == 2
        assert f.report.redacted == 2

    def test_flowcept_task_loops_and_async(self):
        """FlowceptTask, loops and async tasks are redacted too; the caller's own dicts are never modified."""
        from flowcept import FlowceptLoop

        cfg = {"password": "s3cr3t"}

        @flowcept_task
        async def fetch(token, url):
            return 1

        with Flowcept() as f:
            FlowceptTask(activity_id="manual", used={"cfg": cfg}).end(generated={"secret": "p@ss"})
            for _ in FlowceptLoop([{"token": "tok-9"}], item_name="item"):
                pass
            asyncio.run(fetch("AKIA123", "http://x"))
        tasks = _tasks(f.workflow_id)
        assert cfg == {"password": "s3cr3t"}
        assert tasks["manual"]["used"] == {"cfg": {"password": REDACTED}}
        assert tasks["manual"]["generated"] == {"secret": REDACTED}
        assert tasks["fetch"]["used"] == {"token": REDACTED, "url": "http://x"}
        loop_items = [t for t in tasks.values() if t.get("used", {}).get("item") is not None]
        assert [t["used"]["item"] for t in loop_items] == [{"token": REDACTED}]
        _files_hold_no_secret(sqlite_path(), f.report.buffer_file)

    def test_llm_counters_are_not_secrets(self):
        """max_tokens, token_count and friends are stored as they are."""
        @flowcept_task
        def generate(prompt, max_tokens=16, token_count=3, tokenizer="bpe"):
            return {"total_tokens": 19}

        with Flowcept() as f:
            generate("hi")
        task = _tasks(f.workflow_id)["generate"]
        assert task["used"] == {"prompt": "hi", "max_tokens": 16, "token_count": 3, "tokenizer": "bpe"}
        assert task["generated"] == {"total_tokens": 19} and "redacted" not in task
        assert f.report.redacted == 0


class TestOptOut:
    def test_decorator_and_task_options(self):
        """redact=False stores the values; redact=[...] adds names; redact_allow=[...] exempts names."""
        @flowcept_task(redact=False)
        def keep(user, password):
            return {"token": "tok-9"}

        @flowcept_task(redact=["user"], redact_allow=["api_key"])
        def custom(user, password, api_key):
            return None

        with Flowcept() as f:
            keep("bob", "s3cr3t")
            custom("carol", "p@ss", "AKIA123")
            FlowceptTask(activity_id="manual", used={"password": "s3cr3t"}, redact=False).send()
        tasks = _tasks(f.workflow_id)
        assert tasks["keep"]["used"] == {"user": "bob", "password": "s3cr3t"}
        assert tasks["keep"]["generated"] == {"token": "tok-9"} and "redacted" not in tasks["keep"]
        assert tasks["custom"]["used"] == {"user": REDACTED, "password": REDACTED, "api_key": "AKIA123"}
        assert tasks["manual"]["used"] == {"password": "s3cr3t"}
        assert f.report.redacted == 2
        assert all("_fc_redact" not in t for t in tasks.values())

    def test_global_switch(self, tmp_path, monkeypatch):
        """project.redact: false stores values as they are, except names a decorator listed itself."""
        write_settings(tmp_path, "project:\n  redact: false\n", monkeypatch)

        @flowcept_task(redact=["ssn"])
        def listed(ssn, password):
            return None

        with Flowcept() as f:
            login("alice", "s3cr3t", api_key="AKIA123")
            listed("123", "p@ss")
        tasks = _tasks(f.workflow_id)
        assert tasks["login"]["used"] == {"user": "alice", "password": "s3cr3t", "api_key": "AKIA123"}
        assert tasks["listed"]["used"] == {"ssn": REDACTED, "password": "p@ss"}
        assert f.report.redacted == 1

    def test_settings_extend_and_allow(self, tmp_path, monkeypatch):
        """project.redact_keys replaces the list (globs allowed); project.redact_allow exempts keys."""
        write_settings(tmp_path, "project:\n  redact_keys: [password, 'conn*']\n  redact_allow: [db_password]\n",
                       monkeypatch)

        @flowcept_task
        def open_db(connection_string, db_password, password, api_key):
            return None

        with Flowcept() as f:
            open_db("postgresql://u:p@h/db", "p@ss", "s3cr3t", "AKIA123")
        assert _tasks(f.workflow_id)["open_db"]["used"] == {
            "connection_string": REDACTED, "db_password": "p@ss", "password": REDACTED, "api_key": "AKIA123"}

    def test_env_switch(self, monkeypatch):
        """FLOWCEPT_REDACT=false is the environment form of the switch."""
        from flowcept.settings import reload_settings

        monkeypatch.setenv("FLOWCEPT_REDACT", "false")
        reload_settings()
        with Flowcept() as f:
            login("alice", "s3cr3t")
        assert _tasks(f.workflow_id)["login"]["used"]["password"] == "s3cr3t"


def test_agent_tool_arguments(tmp_path):
    """Agent tool arguments are redacted in the store and in the agent's own task history."""
    pytest.importorskip("mcp")
    from flowcept.flowceptor.consumers.agent.base_agent_context_manager import BaseAgentContextManager
    from flowcept.instrumentation.flowcept_agent_task import agent_flowcept_task

    agent = BaseAgentContextManager(agent_name="secret_agent")

    @agent_flowcept_task
    def call_api(endpoint: str, api_key: str) -> dict:
        return {"status": 200}

    async def run():
        async with agent.lifespan(None):
            call_api("/v1", api_key="AKIA123")
    asyncio.run(run())
    history = [t for t in agent.context.tasks if t.get("activity_id") == "call_api"]
    assert history[0]["used"] == {"endpoint": "/v1", "api_key": REDACTED}
    stored = Flowcept.db.task_query({"task_id": history[0]["task_id"]})
    assert stored[0]["used"] == {"endpoint": "/v1", "api_key": REDACTED} and stored[0]["redacted"] == 1
    assert not os.path.exists(tmp_path / "flowcept_buffer.jsonl") or \
        b"AKIA123" not in open(tmp_path / "flowcept_buffer.jsonl", "rb").read()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_redacted_placeholders_link_no_tasks(kind, tmp_path, pg_dsn):
    """Lineage by equal values ignores "REDACTED": two tasks whose secrets were redacted are not linked by them
    (a real shared value still links them)."""
    from flowcept.query.lineage import edges
    from tests.store._pg import private_schema

    records = [
        {"type": "task", "task_id": "g", "workflow_id": "w", "started_at": 1.0,
         "generated": {"access_token": REDACTED, "path": "/data/out.csv"}},
        {"type": "task", "task_id": "u", "workflow_id": "w", "started_at": 2.0, "used": {"password": REDACTED}},
        {"type": "task", "task_id": "v", "workflow_id": "w", "started_at": 3.0,
         "used": {"password": REDACTED, "src": "/data/out.csv"}},
    ]
    if kind == "sqlite":
        from flowcept.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "lineage.sqlite")
        store.upsert(records)
        assert list(edges(store, "w", match_values=True)) == [("g", "v", "value")]
        store.close()
        return
    pytest.importorskip("psycopg")
    from flowcept.store.postgres import PostgresStore

    with private_schema(pg_dsn) as dsn:
        store = PostgresStore(dsn)
        store.upsert(records)
        assert list(edges(store, "w", match_values=True)) == [("g", "v", "value")]
        store.close()
