"""The `flowcept` command: help, version, status, query, ingest, settings, keeper; output and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import orjson
import pytest
import yaml

from flowcept import Flowcept, flowcept_task
from flowcept.cli import app
from tests.conftest import killed_at_exit, sqlite_path

PY = sys.executable


@flowcept_task
def add(x, y):
    return x + y


def _fill_default_store(n: int = 5) -> str:
    with Flowcept(workflow_name="cli") as fc:
        for i in range(n):
            add(i, 10)
        return fc.current_workflow_id


def _json_lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


class TestBasics:
    def test_help_lists_commands(self, runner):
        """--help lists every subcommand and exits 0."""
        result = runner.invoke(app, ["--help"])
        assert result.exit_code == 0
        for name in ("keeper", "status", "query", "ingest", "settings"):
            assert name in result.output

    def test_version(self, runner):
        """--version prints the package version."""
        import flowcept

        result = runner.invoke(app, ["--version"])
        assert result.exit_code == 0 and result.output.strip() == f"flowcept, version {flowcept.__version__}"

    def test_help_imports_nothing_heavy(self):
        """`flowcept --help` in a fresh process loads no redis, psycopg, yaml or store module."""
        code = ("import sys\nfrom flowcept.cli import app\ntry:\n    app(['--help'], prog_name='flowcept')\n"
                "except SystemExit:\n    pass\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'psycopg', 'yaml', 'sqlite3')"
                " or m.startswith('flowcept.store')), file=sys.stderr)")
        out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0
        assert out.stderr.strip() == "[]"

    def test_unknown_command_is_usage_error(self, runner):
        """An unknown subcommand exits 2 with an error on stderr."""
        result = runner.invoke(app, ["nope"])
        assert result.exit_code == 2 and "Error:" in result.stderr

    def test_bad_settings_file_exits_2(self, runner, tmp_path):
        """A settings file with an unknown key exits 2 and names the key on stderr."""
        path = tmp_path / "bad.yaml"
        path.write_text("project:\n  no_such_key: 1\n")
        result = runner.invoke(app, ["--settings", str(path), "status"])
        assert result.exit_code == 2
        assert result.stderr.startswith("Error:") and "no_such_key" in result.stderr


class TestStatus:
    def test_default_sqlite_ok(self, runner):
        """With defaults the SQLite store is checked and reported ok; exit 0."""
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0, result.output
        assert f"store: sqlite {sqlite_path()}: ok" in result.stdout

    def test_sqlite_counts_records(self, runner):
        """An existing SQLite store reports its record counts."""
        _fill_default_store(3)
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0
        assert "ok (3 tasks, 1 workflows)" in result.stdout

    def test_unwritable_sqlite(self, runner, setenv):
        """A SQLite path that cannot be created is unreachable with the fix; exit 1."""
        setenv(FLOWCEPT_SQLITE_PATH="/proc/flowcept-no/x.sqlite")
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 1
        assert "unreachable:" in result.stdout and "fix: point databases.sqlite.path" in result.stdout
        assert result.stderr.startswith("Error: 1 service(s) unreachable")

    @pytest.mark.postgres
    def test_postgres_ok(self, runner, setenv, cli_pg_dsn):
        """An enabled PostgreSQL store is connected to and reported ok with its version."""
        setenv(FLOWCEPT_POSTGRES_ENABLED="true", FLOWCEPT_POSTGRES_URI=cli_pg_dsn)
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0, result.output
        assert "store: postgres" in result.stdout and ": ok (PostgreSQL " in result.stdout

    def test_postgres_unreachable_password_redacted(self, runner, setenv):
        """A PostgreSQL server that does not answer is unreachable with the fix; the password is not shown."""
        setenv(FLOWCEPT_POSTGRES_ENABLED="true",
               FLOWCEPT_POSTGRES_URI="postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2")
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 1
        assert "unreachable:" in result.stdout and "127.0.0.1:1" in result.stdout
        assert "fix: start PostgreSQL" in result.stdout
        assert "hunter2" not in result.output

    @pytest.mark.redis
    def test_redis_ok(self, runner, setenv, redis_url):
        """With mq enabled, Redis is pinged and reported ok with its version."""
        setenv(MQ_ENABLED="true", MQ_URI=redis_url, MQ_CHANNEL=f"cli-{uuid.uuid4().hex}")
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0, result.output
        assert "mq: redis" in result.stdout and "ok (Redis " in result.stdout and "holds 0 entries" in result.stdout

    def test_redis_unreachable(self, runner, setenv):
        """A Redis that does not answer is unreachable with the fix; exit 1."""
        setenv(MQ_ENABLED="true", MQ_HOST="127.0.0.1", MQ_PORT="1")
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 1
        assert "mq: redis 127.0.0.1:1: unreachable:" in result.stdout and "fix: start Redis" in result.stdout
        assert "store: sqlite" in result.stdout and ": ok" in result.stdout

    def test_offline_mode_has_no_store(self, runner, setenv):
        """In offline mode no store is checked."""
        setenv(DB_FLUSH_MODE="offline")
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0 and "store: off" in result.stdout


class TestQuery:
    def test_json_lines_from_a_real_run(self, runner):
        """--json prints every task a `with Flowcept()` run stored, one JSON object per line."""
        wf = _fill_default_store(5)
        result = runner.invoke(app, ["query", "--filter", orjson.dumps({"workflow_id": wf}).decode(), "--json",
                                     "--sort", '[["used.x", 1]]'])
        assert result.exit_code == 0, result.output
        docs = _json_lines(result.stdout)
        assert [d["used"] for d in docs] == [{"x": i, "y": 10} for i in range(5)]
        assert all(d["activity_id"] == "add" and d["status"] == "FINISHED" for d in docs)
        assert [d["generated"] for d in docs] == [{"arg_0": i + 10} for i in range(5)] or \
            [list(d["generated"].values()) for d in docs] == [[i + 10] for i in range(5)]

    def test_table(self, runner):
        """The default output is a table of a few task fields with a count line."""
        wf = _fill_default_store(3)
        result = runner.invoke(app, ["query", "-f", '{"activity_id": "add"}'])
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["task_id", "activity_id", "status", "started_at", "ended_at", "workflow_id"]
        assert len(lines) == 2 + 3 + 1 and lines[-1] == "(3 tasks)"
        assert all(" add " in line and "FINISHED" in line and wf in line for line in lines[2:5])

    def test_projection_sort_limit_collection(self, runner):
        """--projection picks the columns, --sort and --limit apply, --collection reads workflows."""
        _fill_default_store(4)
        result = runner.invoke(app, ["query", "-p", '["used.x"]', "--sort", '{"used.x": -1}', "-n", "2", "--json"])
        assert result.exit_code == 0
        assert _json_lines(result.stdout) == [{"used": {"x": 3}}, {"used": {"x": 2}}]
        result = runner.invoke(app, ["query", "-p", '["used.x", "status"]', "-n", "1"])
        assert result.stdout.splitlines()[0].split() == ["used.x", "status"]
        result = runner.invoke(app, ["query", "-c", "workflows", "--json"])
        (wf,) = _json_lines(result.stdout)
        assert wf["name"] == "cli"

    @pytest.mark.parametrize("args,word", [
        (["-f", "{bad"], "--filter"),
        (["-f", "[1]"], "--filter"),
        (["-f", '{"x": {"$where": 1}}'], "$where"),
        (["--sort", '[["x", 5]]'], "sort"),
        (["-c", "objects"], "objects"),
        (["-n", "-1"], "--limit"),
    ])
    def test_bad_arguments_exit_2(self, runner, args, word):
        """A malformed filter, sort, collection or limit is a usage error (exit 2) explained on stderr."""
        result = runner.invoke(app, ["query", *args])
        assert result.exit_code == 2
        assert "Error:" in result.stderr and word in result.stderr

    def test_no_store_is_config_error(self, runner, setenv):
        """With no database enabled, query exits 2 saying which keys to set."""
        setenv(DB_FLUSH_MODE="offline")
        result = runner.invoke(app, ["query"])
        assert result.exit_code == 2
        assert result.stderr.startswith("Error: databases:") and "databases.sqlite.enabled" in result.stderr

    @pytest.mark.postgres
    def test_postgres_store(self, runner, setenv, cli_pg_dsn, tmp_path):
        """Records ingested into PostgreSQL are queried back through the CLI."""
        setenv(FLOWCEPT_POSTGRES_ENABLED="true", FLOWCEPT_POSTGRES_URI=cli_pg_dsn)
        run = uuid.uuid4().hex
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(orjson.dumps({"type": "task", "task_id": f"{run}-{i}", "workflow_id": run,
                                                "activity_id": "'; DROP TABLE tasks; --", "n": i,
                                                "custom_metadata": {"note": "$5"}}).decode()
                                  for i in range(3)))
        assert runner.invoke(app, ["ingest", str(path)]).exit_code == 0
        result = runner.invoke(app, ["query", "-f", orjson.dumps({"workflow_id": run,
                                                                  "custom_metadata.note": "$5"}).decode(),
                                     "--sort", '[["n", -1]]', "--json", "-p", '["n"]'])
        assert result.exit_code == 0, result.output
        assert _json_lines(result.stdout) == [{"n": 2}, {"n": 1}, {"n": 0}]


class TestIngest:
    def _write(self, path, lines):
        path.write_text("\n".join(lines) + "\n")

    _LINES = [
        {"type": "task", "task_id": "a", "status": "RUNNING", "used": {"x": 1}},
        {"type": "task", "task_id": "b", "status": "FINISHED"},
        {"type": "task", "task_id": "a", "status": "FINISHED", "generated": {"y": 2}},
        {"type": "workflow", "workflow_id": "w", "name": "wf"},
    ]
    _EXPECTED = [
        {"type": "task", "task_id": "a", "status": "FINISHED", "used": {"x": 1}, "generated": {"y": 2}},
        {"type": "task", "task_id": "b", "status": "FINISHED"},
    ]

    def test_ingest_twice_is_idempotent(self, runner, tmp_path):
        """A JSONL file with repeated ids and a torn line loads merged records; loading it again changes nothing."""
        path = tmp_path / "spill.jsonl"
        self._write(path, [orjson.dumps(d).decode() for d in self._LINES] + ['{"type": "task", "task_id": "c", "st'])
        for _ in range(2):
            result = runner.invoke(app, ["ingest", str(path)])
            assert result.exit_code == 0, result.output
            assert "ingested 4 records" in result.stdout and "1 malformed lines skipped" in result.stdout
        result = runner.invoke(app, ["query", "--json", "--sort", '[["task_id", 1]]'])
        assert _json_lines(result.stdout) == self._EXPECTED
        result = runner.invoke(app, ["query", "--json", "-c", "workflows"])
        assert _json_lines(result.stdout) == [self._LINES[3]]

    def test_ingest_pretty_json(self, runner, tmp_path):
        """Lines written by other JSON writers (spaces after colons) load too."""
        path = tmp_path / "hand.jsonl"
        self._write(path, [json.dumps(d) for d in self._LINES])
        assert runner.invoke(app, ["ingest", str(path)]).exit_code == 0
        result = runner.invoke(app, ["query", "--json", "--sort", '[["task_id", 1]]'])
        assert _json_lines(result.stdout) == self._EXPECTED

    def test_ingest_buffer_file_of_a_run(self, runner, tmp_path, setenv):
        """The JSONL buffer file of an offline run loads into the store with every task."""
        setenv(DB_FLUSH_MODE="offline")
        _fill_default_store(4)
        buffer = tmp_path / "flowcept_buffer.jsonl"
        assert buffer.exists()
        setenv(DB_FLUSH_MODE="online")
        result = runner.invoke(app, ["ingest", str(buffer), "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["query", "-f", '{"activity_id": "add"}', "--json"])
        assert len(_json_lines(result.stdout)) == 4

    def test_line_nested_too_deeply_is_skipped(self, runner, tmp_path):
        """A line nested 300 levels deep (more than the store's encoder takes) is skipped, named and counted like a
        malformed line; every other line loads, in batches before and after it."""
        deep: object = "leaf"
        for i in range(300):
            deep = {f"k{i}": deep}
        path = tmp_path / "deep.jsonl"
        self._write(path, [orjson.dumps(d).decode() for d in self._LINES[:2]]
                    + [json.dumps({"type": "task", "task_id": "deep", "used": deep}), "not json"]
                    + [orjson.dumps(d).decode() for d in self._LINES[2:]])
        result = runner.invoke(app, ["ingest", str(path), "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        assert result.stdout == f"ingested 4 records from {path} (2 malformed lines skipped)\n"
        assert f"skipped line 3 of {path}: nested too deeply to store (Recursion limit reached)\n" in result.stderr
        result = runner.invoke(app, ["query", "--json", "--sort", '[["task_id", 1]]'])
        assert _json_lines(result.stdout) == self._EXPECTED
        result = runner.invoke(app, ["query", "--json", "-c", "workflows"])
        assert _json_lines(result.stdout) == [self._LINES[3]]

    def test_missing_file(self, runner, tmp_path):
        """A file that does not exist is a usage error."""
        result = runner.invoke(app, ["ingest", str(tmp_path / "none.jsonl")])
        assert result.exit_code == 2 and "does not exist" in result.stderr


class TestSettings:
    def test_init_writes_a_valid_minimal_file(self, runner):
        """init writes a commented file the settings loader accepts, and refuses to overwrite it without --force."""
        from flowcept.settings import load_settings

        target = os.path.expanduser("~/.flowcept/settings.yaml")
        result = runner.invoke(app, ["settings", "init"])
        assert result.exit_code == 0 and result.stdout.strip() == f"wrote {target}"
        text = open(target).read()
        assert text.startswith("# flowcept settings")
        loaded = load_settings(target)
        assert loaded.databases.store_kind == "sqlite" and loaded.mq.enabled is False
        result = runner.invoke(app, ["settings", "init"])
        assert result.exit_code == 2 and "--force" in result.stderr
        assert runner.invoke(app, ["settings", "init", "--force"]).exit_code == 0

    def test_init_custom_path(self, runner, tmp_path):
        """--path chooses where the file goes; parent folders are created."""
        target = tmp_path / "a" / "b" / "s.yaml"
        assert runner.invoke(app, ["settings", "init", "--path", str(target)]).exit_code == 0
        assert target.exists()

    def test_show_is_yaml_with_secrets_redacted(self, runner, setenv):
        """show prints the resolved settings as YAML with env overrides applied and passwords redacted."""
        setenv(FLOWCEPT_POSTGRES_PASSWORD="hunter2", MQ_URI="redis://:hunter2@h:6379/0", MQ_PORT="7001")
        result = runner.invoke(app, ["settings", "show"])
        assert result.exit_code == 0
        assert "hunter2" not in result.output
        shown = yaml.safe_load(result.stdout)
        assert shown["mq"]["port"] == 7001
        assert shown["databases"]["postgres"]["password"] == "REDACTED"
        assert shown["mq"]["uri"] == "redis://:REDACTED@h:6379/0"
        assert result.stdout.startswith("# settings from: built-in defaults")

    def test_show_names_the_file(self, runner, tmp_path):
        """show names the settings file it read (--settings)."""
        path = tmp_path / "s.yaml"
        path.write_text("mq:\n  port: 7002\n")
        result = runner.invoke(app, ["--settings", str(path), "settings", "show"])
        assert result.exit_code == 0
        assert result.stdout.startswith(f"# settings from: {path}")
        assert yaml.safe_load(result.stdout)["mq"]["port"] == 7002


class TestKeeper:
    def test_needs_mq_enabled(self, runner):
        """Without mq enabled the keeper exits 2 naming mq.enabled."""
        result = runner.invoke(app, ["keeper"])
        assert result.exit_code == 2
        assert result.stderr.startswith("Error: mq.enabled")

    @pytest.mark.redis
    def test_runs_until_sigterm(self, tmp_path, redis_url):
        """`flowcept keeper` runs as its own process and exits 0 on SIGTERM."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWCEPT_", "MQ_", "DB_FLUSH"))}
        env.update(MQ_ENABLED="true", MQ_URI=redis_url, MQ_CHANNEL=f"cli-keeper-{uuid.uuid4().hex}",
                   FLOWCEPT_SQLITE_PATH=str(tmp_path / "k.sqlite"))
        code = "import sys\nfrom flowcept.cli import main\nsys.argv = ['flowcept', 'keeper']\nmain()"
        proc = subprocess.Popen([PY, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
        with killed_at_exit(proc):
            first = proc.stderr.readline()
            assert "flowcept keeper: stream" in first
            # The keeper logs "reading stream" once its signal handlers are in place (no sleep-and-hope).
            while "reading stream" not in proc.stderr.readline():
                pass
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "keeper stopped: 0 records" in err
