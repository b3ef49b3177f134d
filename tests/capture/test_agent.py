"""Agent capture through a real MCP server and client session: tool tasks, errors, nested model invocations."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")
# The isolation fixture points FLOWCEPT_SETTINGS_PATH at a missing file on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:FLOWCEPT_SETTINGS_PATH")

import anyio  # noqa: E402  (a dependency of mcp)
from mcp import ClientSession  # noqa: E402
from mcp.shared.memory import create_client_server_memory_streams  # noqa: E402

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

from flowcept import Flowcept  # noqa: E402
from flowcept.flowceptor.consumers.agent.base_agent_context_manager import (  # noqa: E402
    BaseAgentContextManager,
    BaseAppContext,
)
from flowcept.instrumentation.flowcept_agent_task import (  # noqa: E402
    FlowceptLLM,
    agent_flowcept_task,
    get_current_context_task,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents" / "agent_mock.py"


@pytest.fixture(name="agent_env", autouse=True)
def fixture_agent_env(monkeypatch, tmp_path):
    """Default settings (no settings file), a SQLite store in tmp_path, fresh query API."""
    from flowcept.testing import reset

    monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", str(tmp_path / "no-such-settings.yaml"))
    monkeypatch.setenv("FLOWCEPT_SQLITE_PATH", str(tmp_path / "fc.sqlite"))
    monkeypatch.chdir(tmp_path)
    reset()
    yield tmp_path
    reset()


def stand_in_model(prompt):
    """A deterministic local model: a canned answer with provider usage counts."""
    return {"model": "stand-in-1", "content": "forty-two",
            "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}


def _lowlevel(server):
    return getattr(server, "_lowlevel_server", None) or server._mcp_server


async def _session_calls(server, calls):
    """Serve ``server`` in-process over memory streams and make ``calls`` through a real ClientSession."""
    low = _lowlevel(server)
    results = []
    with anyio.fail_after(30):
        await _serve(low, calls, results)
    return results


async def _serve(low, calls, results):
    async with create_client_server_memory_streams() as (client_streams, server_streams), \
            anyio.create_task_group() as tg:
        tg.start_soon(lambda: low.run(server_streams[0], server_streams[1], low.create_initialization_options()))
        async with ClientSession(client_streams[0], client_streams[1]) as session:
            await session.initialize()
            listed = await session.list_tools()
            for name, args in calls:
                results.append(await session.call_tool(name, args))
        # Closing the client side ends the server's read loop, so its lifespan exits normally.
        await client_streams[1].aclose()
    results.insert(0, listed)


def _is_error(result) -> bool:
    # mcp 2.x: is_error (and an unexpected exception's text is withheld from the client); 1.x: isError
    flag = getattr(result, "is_error", None)
    return bool(result.isError if flag is None else flag)


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _make_server(order_above: bool):
    agent = BaseAgentContextManager(agent_name="test_agent")
    server = Server("test_agent", lifespan=agent.lifespan)

    def register(fn):
        if order_above:
            return agent_flowcept_task(server.tool()(fn))
        return server.tool()(agent_flowcept_task(fn))

    seen = {}

    def add(x: int, y: int = 1) -> int:
        """Add."""
        seen["current"] = get_current_context_task()
        return x + y

    def as_dict(name: str) -> dict:
        """Dict result."""
        return {"greeting": f"hi {name}"}

    def boom(reason: str) -> str:
        """Fail."""
        raise ValueError(reason)

    async def ask(question: str) -> dict:
        """Model call inside."""
        llm = FlowceptLLM(stand_in_model)
        return {"answer": llm.invoke([{"role": "user", "content": question}])}

    for fn in (add, as_dict, boom, ask):
        register(fn)
    return agent, server, seen


def _stored_tasks(workflow_id):
    return {t["activity_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id})}


class TestAgentTools:
    @pytest.mark.parametrize("order_above", [False, True], ids=["below_tool", "above_tool"])
    def test_tool_calls_are_stored_as_agent_tool_tasks(self, order_above):
        """Each call through a real MCP session becomes one agent_tool task with inputs, result, timing, agent."""
        agent, server, seen = _make_server(order_above)
        listed, *results = asyncio.run(_session_calls(server, [
            ("add", {"x": 2, "y": 3}), ("as_dict", {"name": "bo"}), ("boom", {"reason": "nope"}),
            ("ask", {"question": "answer?"})]))
        # mcp 2.x names the field input_schema, 1.x inputSchema
        schema = {t.name: getattr(t, "input_schema", None) or t.inputSchema for t in listed.tools}
        assert schema["add"]["required"] == ["x"]
        assert set(schema["add"]["properties"]) == {"x", "y"}
        assert _text(results[0]) == "5" and not _is_error(results[0])
        assert _is_error(results[2]) and not _is_error(results[3])

        wf = agent.context.tasks[0]["workflow_id"]
        tasks = _stored_tasks(wf)
        assert set(tasks) == {"add", "as_dict", "boom", "ask", "llm_interaction"}
        add = tasks["add"]
        assert add["subtype"] == "agent_tool"
        assert add["agent_id"] == agent.agent_id
        assert add["used"] == {"x": 2, "y": 3}
        assert add["generated"] == {"result": 5}
        assert add["status"] == "FINISHED"
        assert add["started_at"] <= add["ended_at"]
        assert seen["current"]["task_id"] == add["task_id"]
        assert seen["current"]["agent_id"] == agent.agent_id
        assert tasks["as_dict"]["generated"] == {"greeting": "hi bo"}
        boom = tasks["boom"]
        assert boom["status"] == "ERROR" and boom["stderr"] == "nope" and "generated" not in boom

        ask, llm = tasks["ask"], tasks["llm_interaction"]
        assert ask["generated"] == {"answer": "forty-two"}
        assert llm["subtype"] == "ai_model_invocation"
        assert llm["parent_task_id"] == ask["task_id"]
        assert llm["agent_id"] == agent.agent_id
        assert llm["used"] == {"prompt": "User: answer?"}
        assert llm["generated"] == {"response": "forty-two"}
        assert llm["custom_metadata"]["llm_usage"] == {
            "input_chars": 13, "output_chars": 9, "input_tokens": 11, "output_tokens": 2, "total_tokens": 13,
            "token_count_source": "provider", "model": "stand-in-1"}

        assert [t["activity_id"] for t in agent.context.tasks] == ["add", "as_dict", "boom", "ask"]
        assert agent.context.history is agent.context.tasks
        wfs = Flowcept.db.workflow_query({"workflow_id": wf})
        assert wfs[0]["name"] == "flowcept_agent_workflow" and wfs[0]["status"] == "FINISHED"
        agents = Flowcept.db.agent_query({"agent_id": agent.agent_id})
        assert agents[0]["name"] == "test_agent" and agents[0]["workflow_id"] == wf


class TestModelInvocation:
    def test_estimated_tokens_without_usage(self):
        """A plain-string model gets chars/4 token estimates marked as such."""
        with Flowcept(workflow_name="llm") as fc:
            out = FlowceptLLM(lambda p: "abcdefgh")("12345")
        assert out == "abcdefgh"
        (task,) = Flowcept.db.task_query({"workflow_id": fc.workflow_id})
        assert task["custom_metadata"]["llm_usage"] == {
            "input_chars": 5, "output_chars": 8, "input_tokens": 2, "output_tokens": 2, "total_tokens": 4,
            "token_count_source": "estimated_from_chars"}
        assert "parent_task_id" not in task

    def test_model_error_recorded_and_reraised(self):
        """A failing model call is an ERROR task and the same exception reaches the caller."""
        err = RuntimeError("quota")

        def bad(prompt):
            raise err
        with Flowcept(workflow_name="llm") as fc:
            with pytest.raises(RuntimeError) as info:
                FlowceptLLM(bad).invoke("x")
        assert info.value is err
        (task,) = Flowcept.db.task_query({"workflow_id": fc.workflow_id})
        assert task["status"] == "ERROR" and task["stderr"] == "quota"

    def test_invoke_object_and_openai_shape(self):
        """Objects with invoke() and OpenAI-shaped responses are understood; return_response_object returns it."""
        response = {"id": "r1", "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

        class Client:
            def invoke(self, prompt):
                return response
        with Flowcept(workflow_name="llm") as fc:
            assert FlowceptLLM(Client(), return_response_object=True).invoke("p") is response
        (task,) = Flowcept.db.task_query({"workflow_id": fc.workflow_id})
        assert task["custom_metadata"]["llm_usage"]["total_tokens"] == 2
        assert task["custom_metadata"]["llm_usage"]["finish_reason"] == "stop"
        assert task["custom_metadata"]["class_name"] == "Client"


class TestOutsideServer:
    def test_decorated_tool_without_flowcept_calls_through(self):
        """With no Flowcept running the tool just runs."""
        @agent_flowcept_task
        def f(x):
            return x * 2
        assert f(4) == 8
        assert get_current_context_task() is None

    def test_lifespan_is_reentrant(self):
        """Two overlapping lifespans share one capture, stopped by the last exit."""
        agent = BaseAgentContextManager()

        async def run():
            async with agent.lifespan(None) as c1:
                async with agent.lifespan(None) as c2:
                    assert c1 is c2 and isinstance(c1, BaseAppContext)
                assert agent.flowcept is not None
            assert agent.flowcept is None
        asyncio.run(run())


class TestStdioServer:
    def test_example_server_over_stdio(self, tmp_path):
        """The example agent, run as a subprocess MCP server, stores its tool and model tasks."""
        from mcp.client.stdio import StdioServerParameters, stdio_client

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                             env.get("PYTHONPATH", "")])
        params = StdioServerParameters(command=sys.executable, args=[str(EXAMPLE)], env=env, cwd=str(tmp_path))

        async def run():
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    r1 = await session.call_tool("add", {"x": 1, "y": 2})
                    r2 = await session.call_tool("ask", {"question": "q"})
                    r3 = await session.call_tool("fail", {"reason": "bad"})
                    return r1, r2, r3
        r1, r2, r3 = asyncio.run(run())
        assert _text(r1) == "3" and not _is_error(r2) and _is_error(r3)
        tasks = Flowcept.db.task_query({"subtype": {"$in": ["agent_tool", "ai_model_invocation"]}})
        by_name = {t["activity_id"]: t for t in tasks}
        assert set(by_name) == {"add", "ask", "fail", "llm_interaction"}
        assert by_name["add"]["generated"] == {"result": 3}
        assert by_name["fail"]["status"] == "ERROR"
        assert by_name["llm_interaction"]["parent_task_id"] == by_name["ask"]["task_id"]
        agents = Flowcept.db.agent_query({"agent_id": by_name["add"]["agent_id"]})
        assert agents[0]["name"] == "AnC_Agent_mock"
