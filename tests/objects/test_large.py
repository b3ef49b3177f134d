"""Big objects in bounded memory, and writers killed mid-write, on both stores (each in a child process)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowcept.errors import ObjectNotFoundError

SRC = str(Path(__file__).resolve().parents[2] / "src")
MIB = 1024 * 1024

_STREAM_SCRIPT = """
import json, resource, sys
from pathlib import Path
from flowcept import Flowcept

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

db = Flowcept.db
db.insert_or_update_object(b"warm-up" * 100_000, object_id="warm")  # imports and connections, then measure
db.download_object("warm", Path(sys.argv[2]).with_name("warm.bin"))
base = peak_kib()
db.insert_or_update_object(Path(sys.argv[1]), object_id="big")
after_save = peak_kib()
blob = db.download_object("big", sys.argv[2])
with db.open_blob_object("big") as stream:
    streamed = sum(len(piece) for piece in iter(lambda: stream.read(1 << 20), b""))
print(json.dumps({"base": base, "after_save": after_save, "peak": peak_kib(), "streamed": streamed,
                  "sha": blob.data_sha256, "storage": blob.storage_type}))
"""

_KILLED_SCRIPT = """
import io, os, sys, time
from flowcept import Flowcept

class SlowSource(io.RawIOBase):
    # Hands out 12 MiB, says so on stdout, then hangs: the parent kills the process mid-write.
    sent = 0
    def readable(self):
        return True
    def read(self, n=-1):
        if self.sent >= 12 * 1024 * 1024:
            print("WRITING", flush=True)
            time.sleep(600)
        self.sent += n
        return os.urandom(n)

Flowcept.db.insert_or_update_object(SlowSource(), object_id=sys.argv[1], control_version=True)
print("FINISHED", flush=True)
"""


def _child(script: str, *args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_256_mib_object_streams_with_bounded_memory(db, tmp_path):
    """A 256 MiB file saves, downloads and streams with peak RSS growing by far less than its size."""
    source = tmp_path / "source.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as f:
        for _ in range(64):
            chunk = os.urandom(4 * MIB)
            digest.update(chunk)
            f.write(chunk)
    db.object_store  # create the tables here, so the child only writes
    out = tmp_path / "out.bin"
    proc = _child(_STREAM_SCRIPT, str(source), str(out))
    stdout, stderr = proc.communicate(timeout=540)
    assert proc.returncode == 0, stderr
    got = json.loads(stdout.strip().splitlines()[-1])
    assert got["streamed"] == 256 * MIB
    assert got["sha"] == digest.hexdigest()
    assert got["storage"] in ("file", "chunks")
    assert out.stat().st_size == 256 * MIB
    with open(out, "rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == digest.hexdigest()
    grown_mib = (got["peak"] - got["base"]) / 1024
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB while moving a 256 MiB object ({got})"
    source.unlink()
    out.unlink()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_write_leaves_no_visible_object(db, kind):
    """A writer killed while streaming content leaves no object, no version and no blob; the old version stays."""
    db.insert_or_update_object(b"version zero", object_id="kept", control_version=True)
    for object_id in ("fresh", "kept"):
        proc = _child(_KILLED_SCRIPT, object_id)
        line = proc.stdout.readline().strip()
        assert line == "WRITING", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    with pytest.raises(ObjectNotFoundError):
        db.get_blob_object("fresh")
    assert [d["object_id"] for d in db.blob_object_query({})] == ["kept"]
    assert [h["version"] for h in db.get_object_history("kept")] == [0]
    assert db.get_blob_object("kept").data == b"version zero"
    assert db.object_store.blob_count() == 0
    if kind == "postgres":
        # The killed session's transaction is rolled back by the server: no chunk survives it.
        with db.object_store._reading() as ex:
            assert ex("SELECT count(*) FROM object_chunks", ()).fetchone()[0] == 0
    # The next writer succeeds where the killed one failed.
    db.insert_or_update_object(b"x" * (2 * MIB), object_id="fresh")
    assert db.get_blob_object("fresh").data == b"x" * (2 * MIB)
    assert db.object_store.blob_count() == 1
