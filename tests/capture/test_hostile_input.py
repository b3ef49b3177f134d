"""Hostile or unusual input is stored as data (documented encodings) and counted, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
import subprocess
import sys
import textwrap

import pytest

from flowcept import Flowcept, FlowceptLightweightLoop, FlowceptLoop, FlowceptTask, flowcept_task
from flowcept._internal_errors import capture_warning_count


@pytest.fixture(name="backend", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fixture_backend(request, monkeypatch):
    """The default SQLite store, or PostgreSQL in a private schema."""
    from flowcept.testing import reset

    if request.param == "sqlite":
        yield "sqlite"
        return
    from tests.store._pg import private_schema

    with private_schema(request.getfixturevalue("pg_dsn")) as dsn:
        monkeypatch.setenv("FLOWCEPT_POSTGRES_ENABLED", "true")
        monkeypatch.setenv("FLOWCEPT_POSTGRES_URI", dsn)
        reset()
        try:
            yield "postgres"
        finally:
            reset()


@dataclass(unsafe_hash=True)
class Point:
    """A key object whose hash follows its field: changed after insertion, it is no longer found by hashing."""

    x: int


def _stored(workflow_id: str) -> dict:
    """activity_id -> the stored task of ``workflow_id``."""
    return {t["activity_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id})}


class TestHostileInput:
    def test_colliding_keys_keep_both_values(self, backend):
        """{1: "int", "1": "str"} is stored as {"1": "str", "1 (int)": "int"}, one warning counted."""
        @flowcept_task
        def keys(d):
            return {True: "bool", "true": "str"}

        before = capture_warning_count()
        with Flowcept(workflow_name="keys") as fc:
            keys({1: "int", "1": "str", None: "none"})
        task = _stored(fc.workflow_id)["keys"]
        assert task["used"] == {"d": {"1": "str", "1 (int)": "int", "null": "none"}}
        assert task["generated"] == {"true": "str", "true (bool)": "bool"}
        assert capture_warning_count() - before == 2

    def test_nan_and_infinities_are_kept_as_strings(self, backend):
        """NaN, inf and -inf are stored as "NaN", "Infinity", "-Infinity" (not null), each counted."""
        @flowcept_task(output_names="y")
        def floats(x, xs, d):
            return -math.inf

        before = capture_warning_count()
        with Flowcept(workflow_name="floats") as fc:
            floats(math.nan, [1.5, math.inf], {"z": -math.inf})
            for _ in FlowceptLoop([math.nan], loop_name="lp"):
                pass
            for _ in FlowceptLightweightLoop([math.inf], loop_name="lw"):
                pass
            FlowceptTask(activity_id="manual", used={"v": math.nan}).end(generated={"w": 2.5})
        tasks = _stored(fc.workflow_id)
        assert tasks["floats"]["used"] == {"x": "NaN", "xs": [1.5, "Infinity"], "d": {"z": "-Infinity"}}
        assert tasks["floats"]["generated"] == {"y": "-Infinity"}
        assert tasks["lp_iteration"]["used"] == {"i": 0, "item": "NaN"}
        assert tasks["lw_iteration"]["used"] == {"i": 0, "item": "Infinity"}
        assert tasks["manual"]["used"] == {"v": "NaN"} and tasks["manual"]["generated"] == {"w": 2.5}
        assert capture_warning_count() - before == 7

    def test_a_cyclic_value_becomes_its_placeholder_alone(self, backend):
        """A value that cannot be copied (a list holding itself) is stored as its placeholder string; the other
        values of its dict are kept, the call returns its value, one capture error is counted."""
        from flowcept._internal_errors import capture_error_count

        @flowcept_task
        def cyclic(d):
            return d["a"]

        loop: list = [1]
        loop.append(loop)
        before = capture_error_count()
        with Flowcept(workflow_name="cyclic") as fc:
            assert cyclic({"a": 1, "loop": loop, "b": [2.5]}) == 1
            FlowceptTask(activity_id="manual", used={"loop": loop, "c": {"d": 3}}).send()
        tasks = _stored(fc.workflow_id)
        placeholder = f"list_instance_id_{id(loop)}"
        assert tasks["cyclic"]["used"] == {"d": {"a": 1, "loop": placeholder, "b": [2.5]}}
        assert tasks["cyclic"]["generated"] == {"arg_0": 1}
        assert tasks["manual"]["used"] == {"loop": placeholder, "c": {"d": 3}}
        assert capture_error_count() - before == 2

    def test_a_key_changed_after_insertion_is_stored_as_its_text(self, backend):
        """A dict key whose hash changed after it was inserted (a mutable key object changed later) never breaks the
        user's call, in any capture method: the dict is stored with the key as its text."""
        def moved() -> dict:
            key = Point(1)
            d = {key: "a", "b": [2]}
            key.x = 2
            return d

        @flowcept_task
        def keyed(d):
            return 1

        with Flowcept(workflow_name="moved") as fc:
            assert keyed(moved()) == 1
            FlowceptTask(activity_id="manual", used=moved()).send()
            for cls in (FlowceptLoop, FlowceptLightweightLoop):
                loop = cls([moved()], loop_name=cls.__name__)
                for _ in loop:
                    loop.end_iter(moved())
        tasks = _stored(fc.workflow_id)
        stored = {"Point(x=2)": "a", "b": [2]}
        assert tasks["keyed"]["used"] == {"d": stored}
        assert tasks["manual"]["used"] == stored
        for name in ("FlowceptLoop", "FlowceptLightweightLoop"):
            task = tasks[f"{name}_iteration"]
            assert (task["used"], task["generated"]) == ({"i": 0, "item": stored}, stored)

    def test_large_containers_are_summarized(self, backend, tmp_path, monkeypatch):
        """Past instrumentation.max_snapshot_items a container is stored as {type, length, head}, counted."""
        from tests.conftest import write_settings

        write_settings(tmp_path, "instrumentation:\n  max_snapshot_items: 5\n", monkeypatch)  # env overrides stay

        @flowcept_task
        def big(xs, d, small):
            return None

        before = capture_warning_count()
        with Flowcept(workflow_name="big") as fc:
            big(list(range(100)), {f"k{i}": i for i in range(12)}, (1, 2, 3))
        task = _stored(fc.workflow_id)["big"]
        assert task["used"] == {
            "xs": {"type": "list", "length": 100, "head": list(range(10))},
            "d": {"type": "dict", "length": 12, "head": {f"k{i}": i for i in range(10)}},
            "small": [1, 2, 3],
        }
        assert capture_warning_count() - before == 2

    def test_bad_max_snapshot_items_names_the_key(self, tmp_path, monkeypatch):
        """A max_snapshot_items below 1 fails at start naming the key."""
        from flowcept.errors import ConfigError
        from tests.conftest import write_settings

        with pytest.raises(ConfigError) as err:
            write_settings(tmp_path, "instrumentation:\n  max_snapshot_items: 0\n", monkeypatch)
        assert err.value.key == "instrumentation.max_snapshot_items"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_million_iteration_lightweight_loop_has_bounded_memory(tmp_path):
    """A 1,000,000-iteration FlowceptLightweightLoop stores every iteration with peak RSS under 100 MiB."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking process (here, pytest).
    code = textwrap.dedent("""
        from flowcept import Flowcept, FlowceptLightweightLoop
        with Flowcept(workflow_name="million") as fc:
            for i in FlowceptLightweightLoop(range(1_000_000), loop_name="m"):
                pass
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) // 1024
        print(peak, Flowcept.db.count("tasks", {"workflow_id": fc.workflow_id, "activity_id": "m_iteration"}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "MQ_", "DUMP_BUFFER"))}
    env.update(HOME=str(tmp_path), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=580)
    assert out.returncode == 0, out.stderr
    peak_mib, stored = map(int, out.stdout.split())
    assert stored == 1_000_000
    assert peak_mib < 100, f"peak RSS {peak_mib} MiB"
