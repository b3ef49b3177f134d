"""Records streamed out of the store (:func:`iter_records`) and written to JSON, CSV or Parquet files with bounded
memory (reference 3.4's ``dump_to_file`` and ``dump_tasks_to_file_recursive``)."""

from __future__ import annotations

import datetime as _dt
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import orjson

from flowcept.errors import BackendUnavailableError, QueryError
from flowcept.store._filters import compile_find, normalize_projection, apply_projection

__all__ = ["FORMATS", "iter_records", "flatten", "write_records", "dump_to_file"]

FORMATS = ("json", "csv", "parquet")
_BATCH = 1_000


def iter_records(store, collection: str = "tasks", filter: Mapping | None = None, projection: Any = None,
                 sort: Any = None, batch_size: int = _BATCH) -> Iterator[dict]:
    """The matching records one by one, read from the store ``batch_size`` at a time (memory stays bounded).

    Raises:
        QueryError: a bad filter, sort, projection or collection.
    """
    doc_expr = "doc" if store.dialect.name == "sqlite" else "doc::text"
    sql, params = compile_find(collection, filter, sort, 0, store.dialect, doc_expr=doc_expr)
    proj = normalize_projection(projection)
    loads = orjson.loads
    for (text,) in store.run_sql([(sql, params)], batch_size=batch_size):
        doc = loads(text)
        yield doc if proj is None else apply_projection(doc, proj)


def flatten(doc: Mapping, prefix: str = "") -> dict:
    """Nested dicts as dotted keys (``{"used": {"x": 1}}`` -> ``{"used.x": 1}``); lists stay values."""
    out: dict = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _cell(value: Any) -> Any:
    """A scalar for CSV and Parquet: containers as JSON text."""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return value


def _write_json(path: Path, records: Callable[[], Iterable[dict]]) -> int:
    n = 0
    with open(path, "wb") as out:
        out.write(b"[")
        for doc in records():
            out.write((b",\n" if n else b"\n") + orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
            n += 1
        out.write(b"\n]\n" if n else b"]\n")
    return n


def _columns(records: Callable[[], Iterable[dict]]) -> dict[str, set]:
    """First pass: every dotted column and the Python types found in it."""
    columns: dict[str, set] = {}
    for doc in records():
        for key, value in flatten(doc).items():
            columns.setdefault(key, set()).add(type(_cell(value)))
    return columns


def _write_csv(path: Path, records: Callable[[], Iterable[dict]]) -> int:
    import csv

    names = list(_columns(records))
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
        for doc in records():
            writer.writerow({k: _cell(v) for k, v in flatten(doc).items()})
            n += 1
    return n


def _arrow_type(pa, kinds: set):
    kinds = kinds - {type(None)}
    if kinds <= {bool} and kinds:
        return pa.bool_()
    if kinds <= {int} and kinds:
        return pa.int64()
    if kinds <= {int, float} and kinds:
        return pa.float64()
    return pa.string()  # strings, and columns of mixed types (their values written as text)


def _write_parquet(path: Path, records: Callable[[], Iterable[dict]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise BackendUnavailableError("Parquet files", "parquet") from exc
    columns = _columns(records)
    schema = pa.schema([(name, _arrow_type(pa, kinds)) for name, kinds in columns.items()])
    as_text = {name for name, kinds in columns.items() if pa.types.is_string(schema.field(name).type)}
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict] = []
        for doc in records():
            row = {k: _cell(v) for k, v in flatten(doc).items()}
            for name in as_text & row.keys():
                if row[name] is not None and not isinstance(row[name], str):
                    row[name] = orjson.dumps(row[name]).decode()
            batch.append(row)
            n += 1
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch or not n:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return n


_WRITERS = {"json": _write_json, "csv": _write_csv, "parquet": _write_parquet}


def write_records(records: Callable[[], Iterable[dict]], path: str | os.PathLike, export_format: str) -> int:
    """Write records to ``path`` as ``json`` (an array), ``csv`` or ``parquet`` (dotted columns); returns the count.

    ``records`` is called once per pass (CSV and Parquet read twice: columns first, so memory stays bounded).

    Raises:
        QueryError: an unknown format.
        BackendUnavailableError: Parquet without pyarrow.
    """
    writer = _WRITERS.get(export_format)
    if writer is None:
        raise QueryError(f"unknown export_format {export_format!r}; formats: {', '.join(FORMATS)}")
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return writer(path, records)


def dump_to_file(store, collection: str = "tasks", filter: Mapping | None = None, output_file: str | None = None,
                 export_format: str = "json", should_zip: bool = False) -> str:
    """Write the matching records of ``collection`` to a file, streamed from the store.

    Args:
        collection: ``tasks``, ``workflows`` or ``agents``.
        filter: which records; a dump of everything (no filter) must be zipped (``should_zip=True``).
        output_file: the path; default ``docs_dump_<collection>_<UTC time>.<format>`` (``.zip`` when zipped) in
            the working directory.
        export_format: ``json`` (one JSON array), ``csv`` or ``parquet`` (dotted columns for nested fields).
        should_zip: put the file in a zip archive at ``output_file``.

    Returns:
        The path written.

    Raises:
        QueryError: a bad filter, collection or format, or a full dump without ``should_zip``.
    """
    if export_format not in FORMATS:
        raise QueryError(f"unknown export_format {export_format!r}; formats: {', '.join(FORMATS)}")
    if not filter and not should_zip:
        raise QueryError("dump_to_file without a filter would dump the whole collection; pass a filter, or "
                         "should_zip=True to write everything into a zip archive")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"docs_dump_{collection}_{stamp}.{export_format}"
    target = Path(output_file) if output_file else Path(name if not should_zip else name.rsplit(".", 1)[0] + ".zip")
    compile_find(collection, filter, None, 0, store.dialect)  # a bad filter or collection fails before any file

    def records() -> Iterator[dict]:
        return iter_records(store, collection, filter)

    if not should_zip:
        write_records(records, target, export_format)
        return str(target)
    inner = target.with_suffix(f".{export_format}").name
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write_records(records, tmp, export_format)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(tmp, inner)
    finally:
        tmp.unlink(missing_ok=True)
    return str(target)
