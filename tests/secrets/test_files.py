"""Every file and folder flowcept creates is private (0600 / 0700) whatever the umask; shared stores are named."""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from flowcept import Flowcept, flowcept_task
from flowcept._files import create_private_file, make_private_dir, open_private_file, warn_if_shared
from flowcept.redact import REDACTED
from tests.conftest import sqlite_path, write_settings


@flowcept_task
def login(user, password, api_key=None):
    return f"welcome {user}"


@pytest.fixture(name="wide_umask")
def fixture_wide_umask():
    """The widest umask: anything not made private explicitly would come out world-writable."""
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _modes_under(root: Path, skip: set) -> dict:
    """{path relative to root: mode} of every file and folder under root, except the ``skip`` names."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            if name not in skip:
                path = Path(folder) / name
                found[str(path.relative_to(root))] = _mode(path)
    return found


class TestHelpers:
    def test_folders_and_files_are_private_whatever_the_umask(self, tmp_path, wide_umask):
        """Missing parents become 0700 folders, new files 0600, even under umask 000 and 777."""
        make_private_dir(tmp_path / "a" / "b")
        assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
        os.umask(0o777)
        create_private_file(tmp_path / "c" / "f.db")
        with open_private_file(tmp_path / "c" / "g.jsonl", "ab") as f:
            f.write(b"x\n")
        os.umask(0)
        assert _mode(tmp_path / "c") == 0o700
        assert _mode(tmp_path / "c" / "f.db") == _mode(tmp_path / "c" / "g.jsonl") == 0o600

    def test_existing_files_keep_their_mode(self, tmp_path):
        """A file that exists is opened as it is (the user may have shared it on purpose)."""
        path = tmp_path / "shared.jsonl"
        path.write_bytes(b"")
        path.chmod(0o644)
        with open_private_file(path, "ab") as f:
            f.write(b"x\n")
        assert _mode(path) == 0o644 and path.read_bytes() == b"x\n"

    def test_shared_store_is_named_with_the_chmod_to_run(self, caplog):
        """An existing store readable by others gets a warning naming its path and `chmod 600 <path>`."""
        path = Path(sqlite_path())
        make_private_dir(path.parent)
        path.write_bytes(b"")
        path.chmod(0o644)
        caplog.set_level(logging.WARNING, logger="flowcept")
        with Flowcept() as f:
            login("alice", "s3cr3t")
        assert f"chmod 600 {path}" in caplog.text
        assert _mode(path) == 0o644  # warned, not changed
        assert warn_if_shared(path) is True
        path.chmod(0o600)
        assert warn_if_shared(path) is False


def test_embedded_run_creates_only_private_files(fc_env, tmp_path, monkeypatch, wide_umask):
    """Default pipeline (SQLite store under ~/.flowcept, JSONL buffer file, an object in the blob area) plus a
    log file, under umask 000: every folder flowcept made is 0700 and every file 0600, SQLite's -wal and -shm
    included; the object's metadata is redacted like a record's."""
    write_settings(tmp_path, f"log:\n  log_file_level: info\n  log_path: {tmp_path}/logs/flowcept.log\n",
                   monkeypatch)
    home = tmp_path / "home"
    with Flowcept() as f:
        login("alice", "s3cr3t", api_key="AKIA123")
        object_id = Flowcept.db.insert_or_update_object(b"x" * (512 * 1024), object_type="artifact",
                                                        custom_metadata={"source": {"api_key": "AKIA123"}})
        f._buffer.flush(30)
        logging.getLogger("flowcept").info("a line for the log file")
        during = _modes_under(tmp_path, skip={"settings.yaml"})
    after = _modes_under(tmp_path, skip={"settings.yaml"})
    assert {"home/.flowcept/flowcept.sqlite-wal", "home/.flowcept/flowcept.sqlite-shm"} <= set(during)
    expected_files = {"home/.flowcept/flowcept.sqlite", "flowcept_buffer.jsonl", "logs/flowcept.log"}
    assert expected_files <= set(after)
    blobs = [rel for rel in after if rel.startswith("home/.flowcept/flowcept.sqlite.blobs/")]
    assert any(not (tmp_path / rel).is_dir() for rel in blobs), blobs  # the content went to the blob area
    meta = Flowcept.db.get_object_history(object_id)[0]
    assert meta["custom_metadata"] == {"source": {"api_key": REDACTED}}
    for rel, mode in {**during, **after}.items():
        if rel == "home":
            continue  # made by the test fixture
        want = 0o700 if (tmp_path / rel).is_dir() or rel in ("home/.flowcept", "logs") else 0o600
        assert mode == want, (rel, oct(mode))
    assert _mode(home / ".flowcept") == 0o700
    assert Flowcept.db.task_query({"workflow_id": f.workflow_id})[0]["used"]["password"] == REDACTED


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_redis_and_postgres_run_redacts_and_keeps_files_private(fc_env, tmp_path, monkeypatch, pg_dsn,
                                                                 wide_umask):
    """login() through Redis Streams to PostgreSQL: the stream entries and the rows hold REDACTED, never the
    secrets; the spill file (broker cut through a proxy), the retained copies, the keeper's rejects file, the
    JSONL buffer and the log file are all 0600 in 0700 folders, under umask 000."""
    pytest.importorskip("psycopg")
    import glob

    import orjson

    from flowcept.keeper import Keeper
    from flowcept.settings import get_settings
    from flowcept.store.postgres import PostgresStore
    from flowcept.transport.redis import retained as redis_retained
    from tests.distributed.test_distributed import pg_schema_uri
    from tests.fix_proxy import TcpProxy
    from tests.transport.redis_env import cleanup_stream, redis_client, wait_for

    stream = f"fc_test_secrets_{uuid.uuid4().hex[:10]}"
    proxy = TcpProxy(("127.0.0.1", 6379))
    proxy.start()
    out = tmp_path / "run"
    monkeypatch.setattr(redis_retained, "RETAIN_MAX_BYTES", 1)  # every unacknowledged batch past one goes to disk
    try:
        with pg_schema_uri(pg_dsn) as uri:
            write_settings(tmp_path, (
                f"mq:\n  enabled: true\n  host: 127.0.0.1\n  port: {proxy.port}\n  channel: {stream}\n"
                f"  spill_path: {out}/spill/spill.jsonl\n  reconnect_deadline_secs: 0.3\n"
                f"databases:\n  postgres:\n    enabled: true\n    uri: '{uri}'\n"
                f"project:\n  dump_buffer:\n    path: {out}/buffer/flowcept_buffer.jsonl\n"
                f"log:\n  log_file_level: info\n  log_path: {out}/logs/flowcept.log\n"), monkeypatch)
            modes = {}
            with Flowcept(start_persistence=False, check_safe_stops=False) as f:
                for i in range(3):  # no keeper yet: sent batches stay unacknowledged, copies go to disk
                    login("alice", "s3cr3t", api_key="AKIA123")
                    f._buffer.flush(30)
                retained = glob.glob(f"{out}/spill/*.retained.*")
                assert retained
                modes.update({p: _mode(p) for p in retained})
                proxy.cut()
                login("bob", "s3cr3t", api_key="AKIA123")
                f._buffer.flush(30)
                spills = [p for p in glob.glob(f"{out}/spill/spill_*.jsonl")]
                assert spills and all(b"s3cr3t" not in open(p, "rb").read() for p in spills)
                modes.update({p: _mode(p) for p in spills})
                proxy.start()
                wait_for(lambda: f._buffer.flush(5) and not glob.glob(f"{out}/spill/spill_*.jsonl"), 60,
                         "the spill file to be replayed")
            client = redis_client()
            client.xadd(stream, {"b": b'[{"type":"task","task_id":"bad",', "n": 1, "e": "json", "p": "t", "s": 1})
            store = PostgresStore(uri)
            keeper = Keeper(get_settings(), store=PostgresStore(uri)).start()
            try:
                wait_for(lambda: store.count("tasks", {"workflow_id": f.workflow_id}) == 4, 60, "4 tasks in PG")
                wait_for(lambda: keeper.stats.rejected == 1, 30, "the bad entry to be set aside")
                rows = store.find("tasks", {"workflow_id": f.workflow_id})
            finally:
                keeper.close()
                store.close()
            assert sorted(r["used"]["user"] for r in rows) == ["alice"] * 3 + ["bob"]
            assert all(r["used"]["password"] == r["used"]["api_key"] == REDACTED and r["redacted"] == 2
                       for r in rows)
            entries = b"".join(fields[b"b"] for _, fields in client.xrange(stream))
            assert entries.count(b'"password":"REDACTED"') == 4 and b"s3cr3t" not in entries
            assert b"AKIA123" not in entries
            rejects = os.path.splitext(f"{out}/spill/spill.jsonl")[0] + "_rejected.jsonl"
            assert orjson.loads(open(rejects, "rb").readline())["body"].startswith('[{"type":"task","task_id":"bad"')
            modes.update(_modes_under(out, skip=set()))
            modes = {str(p): m for p, m in modes.items()}
            assert {"spill", "buffer", "logs", "buffer/flowcept_buffer.jsonl", "logs/flowcept.log",
                    "spill/spill_rejected.jsonl"} <= set(modes)
            for path, mode in modes.items():
                is_dir = (out / path).is_dir() if not os.path.isabs(path) else False
                assert mode == (0o700 if is_dir else 0o600), (path, oct(mode))
            assert _mode(out) == 0o700
    finally:
        proxy.cut()
        cleanup_stream(stream)


def test_settings_init_and_status_make_private_paths(tmp_path, wide_umask):
    """`flowcept settings init` writes its file 0600 (it may hold passwords) and `flowcept status` makes the store's
    folder 0700, under umask 000."""
    from click.testing import CliRunner

    from flowcept.cli import app

    target = tmp_path / "conf" / "settings.yaml"
    assert CliRunner().invoke(app, ["settings", "init", "--path", str(target)]).exit_code == 0
    assert _mode(target) == 0o600 and _mode(target.parent) == 0o700
    CliRunner().invoke(app, ["status"])
    assert _mode(Path(sqlite_path()).parent) == 0o700
