"""Code written for the reference implementation runs unchanged: its documented names, with asserted results."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import killed_at_exit, write_settings

PY = sys.executable

# reference-facts 3.1 / 3.2: every public path and the names it must provide.
PATHS = {
    "flowcept": ["Flowcept", "flowcept_task", "telemetry_flowcept_task", "lightweight_flowcept_task", "FlowceptTask",
                 "FlowceptLoop", "FlowceptLightweightLoop", "flowcept_torch", "WorkflowObject", "TaskObject",
                 "AgentObject", "BlobObject", "FlowceptDaskWorkerAdapter", "SETTINGS_PATH", "__version__"],
    "flowcept.flowceptor.adapters.dask.dask_plugins": ["FlowceptDaskWorkerAdapter", "get_flowcept_task"],
    "flowcept.instrumentation.flowcept_loop": ["FlowceptLoop", "FlowceptLightweightLoop"],
    "flowcept.instrumentation.loop": ["FlowceptLoop", "FlowceptLightweightLoop"],
    "flowcept.instrumentation.task_capture": ["FlowceptTask"],
    "flowcept.instrumentation.task": ["FlowceptTask"],
    "flowcept.instrumentation.flowcept_task": ["flowcept_task", "telemetry_flowcept_task",
                                               "lightweight_flowcept_task", "default_args_handler",
                                               "get_current_context_task_id"],
    "flowcept.instrumentation.flowcept_decorator": ["flowcept"],
    "flowcept.instrumentation.flowcept_torch": ["flowcept_torch", "FlowceptEpochLoop", "FlowceptBatchLoop",
                                                "get_torch_model_profile"],
    "flowcept.instrumentation.flowcept_agent_task": ["agent_flowcept_task", "FlowceptLLM",
                                                     "get_current_context_task"],
    "flowcept.flowceptor.consumers.agent.base_agent_context_manager": ["BaseAgentContextManager", "BaseAppContext"],
    "flowcept.flowceptor.consumers.base_consumer": ["BaseConsumer"],
    "flowcept.flowceptor.consumers.document_inserter": ["DocumentInserter"],
    "flowcept.flowcept_api.db_api": ["DBAPI"],
    "flowcept.flowcept_api.flowcept_controller": ["Flowcept"],
    "flowcept.commons.vocabulary": ["Status", "PROV_AGENT", "ML_Types"],
    "flowcept.commons.flowcept_dataclasses.task_object": ["TaskObject"],
    "flowcept.commons.flowcept_dataclasses.workflow_object": ["WorkflowObject"],
    "flowcept.commons.flowcept_dataclasses.agent_object": ["AgentObject"],
    "flowcept.commons.utils": ["replace_non_serializable", "replace_non_serializable_times", "get_utc_now",
                               "get_utc_now_str", "get_status_from_str", "evaluate_until",
                               "assert_by_querying_tasks_until"],
    "flowcept.commons.flowcept_logger": ["FlowceptLogger"],
    "flowcept.commons.daos.mq_dao.mq_dao_base": ["MQDao"],
    "flowcept.agents.mcp.mcp_client": ["run_tool"],
    "flowcept.configs": ["settings", "SETTINGS_PATH", "AGENT", "INSERTION_BUFFER_TIME", "APPEND_ID_TO_PATH",
                         "APPEND_WORKFLOW_ID_TO_PATH", "HOSTNAME", "MQ_ENABLED", "DB_FLUSH_MODE"],
}


@pytest.mark.parametrize("module", sorted(PATHS))
def test_public_paths_import(module):
    mod = importlib.import_module(module)
    missing = [name for name in PATHS[module] if not hasattr(mod, name)]
    assert missing == []


def test_configs_show_the_loaded_settings_file(tmp_path):
    settings = tmp_path / "s.yaml"
    settings.write_text(textwrap.dedent("""\
        project:
          dump_buffer:
            append_id_to_path: true
            append_workflow_id_to_path: true
        mq:
          insertion_buffer_time_secs: 7
        agent:
          mcp_port: 8123
        adapters:
          mlflow:
            kind: mlflow
            file_path: /data/mlflow.db
    """))
    code = ("from flowcept import configs as c\n"
            "print(c.settings['adapters']['mlflow']['file_path'], c.AGENT['mcp_port'], c.INSERTION_BUFFER_TIME,"
            " c.APPEND_ID_TO_PATH, c.APPEND_WORKFLOW_ID_TO_PATH, c.SETTINGS_PATH == c.settings and 0 or 1)")
    env = {**os.environ, "FLOWCEPT_SETTINGS_PATH": str(settings)}
    out = subprocess.run([PY, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["/data/mlflow.db", "8123", "7.0", "True", "True", "1"]


class TestCommons:
    def test_replace_non_serializable(self):
        from flowcept.commons.utils import replace_non_serializable

        class Thing:
            pass

        thing = Thing()
        out = replace_non_serializable({"a": 1, "s": {1, 2}, "t": (1, "x"), "o": thing, "b": b"hi"})
        assert out == {"a": 1, "s": [1, 2], "t": [1, "x"], "o": f"Thing_instance_id_{id(thing)}", "b": "aGk="}

    def test_times_and_status(self):
        from flowcept.commons.utils import get_status_from_str, replace_non_serializable_times
        from flowcept.commons.vocabulary import Status

        out = replace_non_serializable_times({"started_at": 0.0, "ended_at": 1.5, "task_id": "t"})
        assert out == {"started_at": "1970-01-01T00:00:00+00:00", "ended_at": "1970-01-01T00:00:01.500000+00:00",
                       "task_id": "t"}
        assert get_status_from_str("finished") is Status.FINISHED
        assert get_status_from_str("nonsense") is Status.UNKNOWN
        assert Status.FINISHED == "FINISHED" and f"{Status.ERROR}" == "ERROR"
        assert Status.get_finished_statuses() == [Status.FINISHED, Status.ERROR]

    def test_logger(self):
        from flowcept.commons.flowcept_logger import FlowceptLogger

        log = FlowceptLogger()
        assert isinstance(log, logging.Logger) and log.name == "flowcept"
        assert FlowceptLogger() is log

    def test_evaluate_until(self):
        from flowcept.commons.utils import evaluate_until

        calls = []
        assert evaluate_until(lambda: calls.append(1) or len(calls) == 3, max_trials=5, max_time=0.05)
        assert len(calls) == 3
        assert not evaluate_until(lambda: False, max_trials=2, max_time=0.01)


class TestRecordObjects:
    def test_workflow_object_round_trip(self):
        from flowcept.commons.flowcept_dataclasses.workflow_object import WorkflowObject
        from flowcept.commons.vocabulary import Status

        wf = WorkflowObject.from_dict({"workflow_id": "w1", "name": "n", "status": "RUNNING", "unknown_key": 1})
        assert wf.status is Status.RUNNING
        assert wf.to_dict() == {"workflow_id": "w1", "name": "n", "status": "RUNNING", "type": "workflow"}

    def test_agent_enrich(self, monkeypatch, tmp_path):
        from flowcept.commons.flowcept_dataclasses.agent_object import AgentObject

        write_settings(tmp_path, "extra_metadata:\n  lab: L1\n", monkeypatch)
        before = time.time()
        agent = AgentObject(agent_id="a1", name="bot").enrich()
        import getpass

        registered = agent.registered_at  # set at construction, as the reference's
        assert before <= registered <= time.time()
        assert agent.to_dict() == {"agent_id": "a1", "name": "bot", "user": getpass.getuser(),
                                   "extra_metadata": {"lab": "L1"}, "registered_at": registered, "type": "agent"}
        assert AgentObject(agent_id="a2", registered_at=5.0).registered_at == 5.0

    def test_vocabulary_and_mime_types(self):
        from flowcept.commons.vocabulary import MimeType, Vocabulary

        assert MimeType.JSONL.value == "application/x-ndjson" and MimeType.PNG == "image/png"
        assert (Vocabulary.Settings.ADAPTERS, Vocabulary.Settings.KIND, Vocabulary.Settings.MLFLOW_KIND) == (
            "adapters", "kind", "mlflow")

    def test_task_object_enrich_and_serialize(self, monkeypatch, tmp_path):
        import msgpack

        from flowcept._runtime import hostname
        from flowcept.commons.flowcept_dataclasses.task_object import TaskObject

        write_settings(tmp_path, "sys_metadata:\n  node_name: n1\n  login_name: u1\n  private_ip: 10.0.0.1\n",
                       monkeypatch)
        task = TaskObject(task_id="t1", hostname="given")
        task.enrich("dask")
        out = task.to_dict()
        assert out.pop("utc_timestamp") > 0
        assert out == {"task_id": "t1", "adapter_id": "dask", "hostname": "given", "node_name": "n1",
                       "login_name": "u1", "private_ip": "10.0.0.1", "type": "task"}
        assert msgpack.unpackb(task.serialize()) == task.to_dict()
        assert TaskObject.enrich_task_dict({"task_id": "t2"}) == {
            "task_id": "t2", "hostname": hostname(), "node_name": "n1", "login_name": "u1", "private_ip": "10.0.0.1"}

    def test_workflow_object_enrich(self, monkeypatch, tmp_path):
        from flowcept import __version__
        from flowcept.commons.flowcept_dataclasses.workflow_object import WorkflowObject

        write_settings(tmp_path, "project:\n  enrich_messages: false\n", monkeypatch)
        plain = WorkflowObject(workflow_id="w1").enrich("mlflow").to_dict()
        assert plain.pop("utc_timestamp") > 0
        assert plain == {"workflow_id": "w1", "adapter_id": "mlflow", "type": "workflow"}
        write_settings(tmp_path, "project:\n  enrich_messages: true\nsys_metadata:\n  sys_name: S\n", monkeypatch)
        rich = WorkflowObject(workflow_id="w2").enrich().to_dict()
        assert rich["flowcept_version"] == __version__ and rich["sys_name"] == "S"
        assert "flowcept_settings" in rich and rich["conf"]["settings_path"]


def _redis_pg_settings(tmp_path, monkeypatch, dsn):
    from tests.transport.redis_env import redis_settings

    return redis_settings(tmp_path, monkeypatch, store="postgres", pg_dsn=dsn)


@pytest.fixture(name="backend", params=["embedded", "redis_postgres"])
def fixture_backend(request, tmp_path, monkeypatch):
    """The embedded default, or Redis Streams + an in-process keeper + PostgreSQL (a private schema)."""
    if request.param == "embedded":
        yield "embedded"
        return
    from tests.store._pg import private_schema
    from tests.transport.redis_env import cleanup_stream

    with private_schema(request.getfixturevalue("pg_dsn")) as dsn:
        env = _redis_pg_settings(tmp_path, monkeypatch, dsn)
        try:
            yield "redis_postgres"
        finally:
            from flowcept.testing import reset

            reset()
            cleanup_stream(env["stream"])


class TestController:
    def test_quickstart_with_flowcept_decorator_reads_two_records(self):
        from flowcept import Flowcept, flowcept_task
        from flowcept.instrumentation.flowcept_decorator import flowcept

        @flowcept_task
        def sum_one(n):
            return n + 1

        @flowcept_task
        def mult_two(n):
            return n * 2

        @flowcept
        def main():
            return mult_two(sum_one(3))

        assert main() == 8
        records = Flowcept.read_buffer_file()
        assert len(records) == 2
        assert [(r["activity_id"], r["used"], r["generated"]) for r in records] == [
            ("sum_one", {"n": 3}, {"arg_0": 4}), ("mult_two", {"n": 4}, {"arg_0": 8})]
        assert records[0]["workflow_id"] == records[1]["workflow_id"] == Flowcept.current_workflow_id

    def test_flowcept_decorator_can_still_save_the_workflow(self):
        from flowcept import Flowcept
        from flowcept.instrumentation.flowcept_decorator import flowcept

        @flowcept(save_workflow=True)
        def main():
            return 1

        main()
        assert [r["type"] for r in Flowcept.read_buffer_file()] == ["workflow"]

    def test_campaign_id_readable_after_stop(self):
        from flowcept import Flowcept

        with Flowcept(campaign_id="camp-7") as fc:
            assert Flowcept.campaign_id == "camp-7"
            assert Flowcept.is_started is True
        assert Flowcept.campaign_id == "camp-7"
        assert Flowcept.current_workflow_id == fc.workflow_id
        assert Flowcept.is_started is False

    def test_buffer_save_workflow_save_agent(self, backend):
        from flowcept import Flowcept, flowcept_task

        @flowcept_task
        def step(x):
            return x * 3

        assert Flowcept.buffer is None
        with Flowcept(workflow_name="wf", save_workflow=False) as fc:
            step(2)
            if backend == "embedded":
                # Read back from the JSONL buffer file (with Redis and no file: once a keeper stored them).
                assert [r["type"] for r in Flowcept.buffer] == ["task"]
            assert fc.save_workflow() == fc.workflow_id
            agent_id = fc.save_agent(name="helper")
            if backend == "embedded":
                assert sorted(r["type"] for r in Flowcept.buffer) == ["agent", "task", "workflow"]
        assert Flowcept.buffer is None
        db = Flowcept.db
        [wf] = db.workflow_query({"workflow_id": fc.workflow_id})
        assert (wf["name"], wf["status"]) == ("wf", "RUNNING")
        agent = db.get_agent_object(agent_id)
        assert (agent.name, agent.workflow_id, agent.campaign_id) == ("helper", fc.workflow_id, fc.campaign_id)

    def test_agent_name_alone_registers_an_agent(self, backend):
        from flowcept import Flowcept

        with Flowcept(agent_name="planner") as fc:
            pass
        assert isinstance(fc.agent_id, str) and len(fc.agent_id) == 36
        [agent] = Flowcept.db.agent_query({"agent_id": fc.agent_id})
        assert (agent["name"], agent["workflow_id"], agent["campaign_id"]) == ("planner", fc.workflow_id,
                                                                               fc.campaign_id)
        [wf] = Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})
        assert wf["agent_id"] == fc.agent_id

    def test_agent_round_trip_and_domain_schema(self, backend):
        from flowcept import Flowcept
        from flowcept.commons.flowcept_dataclasses.agent_object import AgentObject

        db = Flowcept.db
        agent = AgentObject(agent_id="ag-1", name="n", workflow_id="w-1", registered_at=12.5)
        assert db.insert_or_update_agent(agent) is True
        assert db.get_agent_object("ag-1") == agent
        assert db.get_agent_object("missing") is None
        assert db.save_workflow_domain_data_schema("w-1", {"fields": {"x": "float"}}) is True
        assert db.get_workflow_domain_data_schema("w-1") == {"fields": {"x": "float"}}
        assert db.get_workflow_domain_data_schema("nope") is None
        assert db.save_node_positions("w-1", {"t1": {"x": 1, "y": 2}}) is True
        assert db.get_node_positions("w-1") == {"t1": {"x": 1, "y": 2}}
        assert db.liveness_test() is True
        assert db.delete_agents_with_filter({"agent_id": "ag-1"}) == 1

    def test_services(self, backend):
        from flowcept import Flowcept

        expected = {"store": "ok"} if backend == "embedded" else {"store": "ok", "mq": "ok"}
        assert Flowcept.services_status() == expected
        assert Flowcept.services_alive() is True

    def test_services_unavailable(self, tmp_path, monkeypatch):
        from flowcept import Flowcept

        port = _free_port()
        write_settings(tmp_path, f"mq:\n  enabled: true\n  host: 127.0.0.1\n  port: {port}\n", monkeypatch)
        assert Flowcept.services_status() == {"store": "ok", "mq": "unavailable"}
        assert Flowcept.services_alive() is False

    def test_mq_dao_sends_through_the_configured_transport(self, backend):
        from flowcept import Flowcept
        from flowcept.commons.daos.mq_dao.mq_dao_base import MQDao

        dao = MQDao.build()
        if backend == "embedded":
            dao.send_message({"type": "task", "task_id": "dao-1", "activity_id": "a", "workflow_id": "w"})
            assert Flowcept.db.task_query({"task_id": "dao-1"}) == [
                {"type": "task", "task_id": "dao-1", "activity_id": "a", "workflow_id": "w"}]
        with Flowcept(save_workflow=False) as fc:
            dao.bulk_publish([{"type": "task", "task_id": "dao-2", "activity_id": "b"}])
        [doc] = Flowcept.db.task_query({"task_id": "dao-2"})
        assert (doc["activity_id"], doc["workflow_id"], doc["campaign_id"]) == ("b", fc.workflow_id, fc.campaign_id)

    def test_start_consumption_services_rejects_custom_consumers(self):
        from flowcept import Flowcept

        with pytest.raises(NotImplementedError, match="BaseConsumer"):
            Flowcept.start_consumption_services(consumers=["x"])


@contextlib.contextmanager
def _stream_without_keeper(tmp_path, monkeypatch, pg_dsn, workflow_id: str, n: int):
    """Redis + PostgreSQL settings, and a producer process (no keeper) that put ``n`` tasks of ``workflow_id`` on
    the stream; cleaned up afterwards."""
    from tests.store._pg import private_schema
    from tests.transport.redis_env import cleanup_stream, run_script

    with private_schema(pg_dsn) as dsn:
        env = _redis_pg_settings(tmp_path, monkeypatch, dsn)
        try:
            produced = run_script(tmp_path, "producer.py", f"""
                from flowcept import Flowcept, flowcept_task

                @flowcept_task
                def f(x):
                    return x

                with Flowcept(workflow_id={workflow_id!r}, start_persistence=False):
                    for i in range({n}):
                        f(i)
            """)
            assert produced.returncode == 0, produced.stderr
            yield
        finally:
            from flowcept.testing import reset

            reset()
            cleanup_stream(env["stream"])


@pytest.mark.redis
@pytest.mark.postgres
def test_start_consumption_services_runs_a_keeper(tmp_path, monkeypatch, pg_dsn):
    """A producer with no keeper writes to the stream; start_consumption_services() stores it, SIGTERM ends it."""
    from tests.transport.redis_env import run_script, wait_for

    from flowcept import Flowcept

    with _stream_without_keeper(tmp_path, monkeypatch, pg_dsn, "wf-consume", 50):
        consumer = run_script(tmp_path, "consumer.py", """
            from flowcept import Flowcept
            Flowcept.start_consumption_services()
            print("returned")
        """, wait=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with killed_at_exit(consumer):
            wait_for(lambda: Flowcept.db.count("tasks", {"workflow_id": "wf-consume"}) == 50, 60,
                     "the keeper to store 50 tasks")
            consumer.send_signal(signal.SIGTERM)
            out, err = consumer.communicate(timeout=60)
        assert consumer.returncode == 0, err
        assert out.strip() == "returned"
        docs = Flowcept.db.task_query({"workflow_id": "wf-consume"}, sort=[("used.x", 1)])
        assert [d["used"]["x"] for d in docs] == list(range(50))


class TestFlowceptTaskData:
    def test_end_with_bytes_keeps_data_in_memory_not_in_the_file(self):
        from flowcept import Flowcept, FlowceptTask

        with Flowcept(save_workflow=False):
            task = FlowceptTask(activity_id="blob", used={"x": 1})
            task.end(generated={"y": 2}, data=b"\x00raw")
            task.send()  # after end(): adds nothing
            assert task._task.data == b"\x00raw"
        [record] = Flowcept.read_buffer_file()
        assert "data" not in record
        assert (record["activity_id"], record["used"], record["generated"], record["status"]) == (
            "blob", {"x": 1}, {"y": 2}, "FINISHED")
        assert len(Flowcept.read_buffer_file(raw=True)) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_run_tool_calls_a_real_mcp_server(tmp_path):
    pytest.importorskip("mcp")
    from flowcept.agents.mcp.mcp_client import run_tool

    port = _free_port()
    server = tmp_path / "server.py"
    server.write_text(textwrap.dedent(f"""
        try:
            from mcp.server.mcpserver import MCPServer as Server
        except ImportError:  # mcp 1.x
            from mcp.server.fastmcp import FastMCP as Server
        import anyio

        mcp = Server("calc")

        @mcp.tool()
        def add(a: int, b: int) -> str:
            return str(a + b)

        @mcp.tool()
        def boom() -> str:
            raise ValueError("nope")

        try:
            anyio.run(lambda: mcp.run_streamable_http_async(host="127.0.0.1", port={port}))
        except TypeError:  # mcp 1.x takes host/port in the constructor settings
            mcp.settings.host, mcp.settings.port = "127.0.0.1", {port}
            anyio.run(mcp.run_streamable_http_async)
    """))
    proc = subprocess.Popen([PY, str(server)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not start"
                time.sleep(0.2)
        assert run_tool("add", {"a": 2, "b": 40}, host="127.0.0.1", port=port) == ["42"]
        with pytest.raises(RuntimeError, match="tool .boom. failed"):
            run_tool("boom", url=f"http://127.0.0.1:{port}/mcp")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_migration_example_runs_unchanged(tmp_path):
    """examples/migration/reference_idioms.py (reference module paths, configs, Flowcept.buffer, agents) runs."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "migration" / "reference_idioms.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "MQ_", "DB_FLUSH"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([PY, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "{'status': 'FINISHED', 'tasks': 1, 'services': {'store': 'ok'}}"


def test_document_inserter_stores_the_stream(tmp_path, monkeypatch, pg_dsn):
    """The reference's DB writer class runs our keeper: what producers put on the stream reaches PostgreSQL."""
    from tests.transport.redis_env import wait_for

    from flowcept import Flowcept
    from flowcept.flowceptor.consumers.document_inserter import DocumentInserter

    with _stream_without_keeper(tmp_path, monkeypatch, pg_dsn, "wf-inserter", 20):
        inserter = DocumentInserter(check_safe_stops=False).start()
        try:
            wait_for(lambda: Flowcept.db.count("tasks", {"workflow_id": "wf-inserter"}) == 20, 60,
                     "the inserter to store 20 tasks")
        finally:
            inserter.stop()
        docs = Flowcept.db.task_query({"workflow_id": "wf-inserter"}, sort=[("used.x", 1)])
        assert [(d["activity_id"], d["used"]["x"], d["status"]) for d in docs] == [
            ("f", i, "FINISHED") for i in range(20)]


def test_context_task_helpers():
    from flowcept import Flowcept
    from flowcept.instrumentation.flowcept_agent_task import get_current_context_task
    from flowcept.instrumentation.flowcept_task import flowcept_task, get_current_context_task_id

    seen = []

    @flowcept_task
    def inner():
        seen.append(get_current_context_task_id())

    with Flowcept(save_workflow=False):
        assert get_current_context_task_id() is None and get_current_context_task() is None
        inner()
    [task] = Flowcept.db.task_query({"activity_id": "inner"})
    assert seen == [task["task_id"]]


def test_workflow_object_to_dict_redacts_secrets():
    from flowcept.commons.flowcept_dataclasses.workflow_object import WorkflowObject

    wf = WorkflowObject(workflow_id="w", name="n", used={"user": "alice", "api_key": "AKIA1", "db": {"password": "p"}},
                        flowcept_settings={"mq": {"password": "pw", "uri": "redis://u:secretpw@h:6379", "host": "h"},
                                           "agent": {"api_key": "k", "model": "m"}})
    out = wf.to_dict()
    assert out == {"workflow_id": "w", "name": "n", "type": "workflow",
                   "used": {"user": "alice", "api_key": "REDACTED", "db": {"password": "REDACTED"}},
                   "flowcept_settings": {"mq": {"password": "REDACTED", "uri": "redis://u:REDACTED@h:6379",
                                                "host": "h"},
                                         "agent": {"api_key": "REDACTED", "model": "m"}},
                   "redacted": 2}
    assert wf.used["api_key"] == "AKIA1"  # the object itself is not changed


def test_generate_report_from_the_store_and_the_buffer_file(tmp_path):
    from flowcept import Flowcept, flowcept_task

    @flowcept_task
    def step(x):
        return x

    with Flowcept(workflow_name="carded") as fc:
        step(1)
        step(2)
    stats = Flowcept.generate_report(workflow_id=fc.workflow_id)
    assert (stats["report_type"], stats["format"], stats["input_mode"], stats["tasks"], stats["status_counts"]) == (
        "workflow_card", "markdown", "db", 2, {"FINISHED": 2})
    assert stats["markdown"].startswith("# Workflow Card: carded")
    out = tmp_path / "card.md"
    stats = Flowcept.generate_report(input_jsonl_path="flowcept_buffer.jsonl", output_path=str(out))
    assert (stats["input_mode"], stats["tasks"], stats["output"]) == ("jsonl", 2, str(out))
    assert out.read_text().startswith("# Workflow Card: carded")
    with pytest.raises(ValueError):
        Flowcept.generate_report(workflow_id=fc.workflow_id, input_jsonl_path="flowcept_buffer.jsonl")
