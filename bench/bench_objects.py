"""Save and load throughput of objects (Flowcept.db object API) for 1 MiB and 256 MiB objects, SQLite and PostgreSQL.

Run: PYTHONPATH=src python bench/bench_objects.py [--pg-dsn DSN] [--big-reps 2] [--small-reps 20]

Each save stores fresh random bytes (so deduplication never skips the work) from memory (1 MiB) or from a file
(256 MiB, streamed); each load reads the latest version back, checksum verified: ``get_blob_object`` (bytes in
memory) for 1 MiB, ``download_object`` to a file for 256 MiB. Figures are MiB/s, median over the repetitions.
"bare" is the same data movement without flowcept, in the same run: copy the content into a file with sha256 and
fsync (save), read it back with sha256 into memory or into a file (load): the floor any checked store pays.
PostgreSQL runs in a private schema dropped at the end. On a shared 2-core machine the figures are noisy: compare
columns of one run.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import hashlib
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

MIB = 1024 * 1024


def _median_rate(samples: list[float], size: int) -> float:
    return size / MIB / statistics.median(samples)


def _make_source(work: Path, size: int):
    """Fresh random content: bytes up to 16 MiB, else a file written in 4 MiB pieces."""
    if size <= 16 * MIB:
        return os.urandom(size)
    source = work / "source.bin"
    with open(source, "wb") as f:
        for _ in range(size // (4 * MIB)):
            f.write(os.urandom(4 * MIB))
    return source


def _copy_hashed(source, dest: Path, sync: bool) -> None:
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        if isinstance(source, bytes):
            out.write(source)
            digest.update(source)
        else:
            with open(source, "rb") as f:
                while piece := f.read(4 * MIB):
                    out.write(piece)
                    digest.update(piece)
        if sync:
            out.flush()
            os.fsync(out.fileno())


def bare(work: Path, size: int, reps: int) -> tuple[float, float]:
    """(save, load) MiB/s of the same moves without flowcept: copy in with sha256 and fsync, read back with
    sha256 (into memory for small content, into a file for big content)."""
    saves, loads = [], []
    for _ in range(reps):
        source = _make_source(work, size)
        t0 = time.perf_counter()
        _copy_hashed(source, work / "stored.bin", sync=True)
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if isinstance(source, bytes):
            with open(work / "stored.bin", "rb") as f:
                hashlib.sha256(f.read())
        else:
            _copy_hashed(work / "stored.bin", work / "out.bin", sync=False)
        loads.append(time.perf_counter() - t0)
        for leftover in ("source.bin", "out.bin", "stored.bin"):
            (work / leftover).unlink(missing_ok=True)
    return _median_rate(saves, size), _median_rate(loads, size)


def measure(db, work: Path, size: int, reps: int) -> tuple[float, float]:
    """(save, load) MiB/s through the object API."""
    saves, loads = [], []
    for i in range(reps):
        source = _make_source(work, size)
        oid = f"bench-{size}-{i}"
        t0 = time.perf_counter()
        db.insert_or_update_object(source, object_id=oid)
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if size <= 16 * MIB:
            assert len(db.get_blob_object(oid).data) == size
        else:
            db.download_object(oid, work / "out.bin")
        loads.append(time.perf_counter() - t0)
        for leftover in ("source.bin", "out.bin"):
            (work / leftover).unlink(missing_ok=True)
    return _median_rate(saves, size), _median_rate(loads, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default=os.environ.get("FLOWCEPT_TEST_PG_DSN",
                                                          "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--small-reps", type=int, default=20)
    parser.add_argument("--big-reps", type=int, default=2)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    from flowcept.query.api import DBAPI
    from flowcept.store.sqlite import SqliteStore

    work = Path(tempfile.mkdtemp(prefix="flowcept-bench-objects-"))

    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    cases = [("1 MiB", MIB, args.small_reps), ("256 MiB", 256 * MIB, args.big_reps)]
    rows = []
    for label, size, reps in cases:
        rows.append(("bare file", label, *bare(work, size, reps)))
    sqlite = SqliteStore(work / "bench.sqlite")
    db = DBAPI(sqlite)
    for label, size, reps in cases:
        rows.append(("sqlite", label, *measure(db, work, size, reps)))
    db.object_store.close()
    sqlite.close()
    if not args.skip_postgres:
        import psycopg
        from psycopg.conninfo import make_conninfo

        from flowcept.store.postgres import PostgresStore

        schema = f"flowcept_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            pg = PostgresStore(make_conninfo(args.pg_dsn, options=f"-csearch_path={schema}"))
            db = DBAPI(pg)
            for label, size, reps in cases:
                rows.append(("postgres", label, *measure(db, work, size, reps)))
            db.object_store.close()
            pg.close()
        finally:
            with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    print(f"{'store':<10} {'object':>8} {'save MiB/s':>11} {'load MiB/s':>11}")
    for store, label, save, load in rows:
        print(f"{store:<10} {label:>8} {save:>11.0f} {load:>11.0f}")


if __name__ == "__main__":
    main()
