"""MLflow adapter: each finished MLflow run becomes one task record, read through ``MlflowClient``'s public API.

Polls every ``watch_interval_sec`` for runs whose ``end_time`` is at or past a watermark (minus a look-back
window, for runs whose end is committed late by another process), oldest first and page by page, so any number
of runs finishing between two polls is read. Run ids already emitted inside the window are skipped: each run is
captured once. The watermark lives in our own store: at start it is the newest ``end_time`` among the runs this
adapter key stored for this tracking URI, so a restarted observer neither repeats a run nor misses one that ended
while no observer ran. Without a readable store, only runs that end after ``start()`` are captured.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.parse

try:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from flowcept.errors import BackendUnavailableError

    raise BackendUnavailableError("the MLflow adapter", "mlflow") from exc

from flowcept import context as _ctx
from flowcept.adapters._base import PollingAdapter
from flowcept.errors import ConfigError

#: Runs whose end is committed up to this long after a later run's end are still captured.
logger = logging.getLogger("flowcept")
LOOKBACK_MS = 60_000
_STATUS = {"FINISHED": "FINISHED", "FAILED": "ERROR", "KILLED": "ERROR"}
_PAGE = 1000
_SQLALCHEMY_SCHEMES = {"postgresql", "mysql", "mssql"}
_WHAT = ('give the path of an existing MLflow tracking database, e.g. the file given to '
         'mlflow.set_tracking_uri("sqlite:///...")')


def _sqlite_path(uri: str) -> str | None:
    """The file of a ``sqlite:///`` URI (relative after three slashes, absolute after four); None: in memory."""
    rest = uri[len("sqlite:"):]
    if not rest.startswith("///"):
        return None
    path = rest[3:].split("?", 1)[0]
    return os.path.abspath(os.path.expanduser(path)) if path and path != ":memory:" else None


def _expected_tables() -> set:
    """The tables this MLflow version's store needs; lacking any, ``MlflowClient`` would create or migrate them."""
    try:
        import mlflow.store.db.utils  # noqa: F401 - populates the metadata with every ORM model
        from mlflow.store.db.base_sql_model import Base

        return {t for t in Base.metadata.tables if not t.startswith("alembic_")}
    except Exception:  # noqa: BLE001 - an MLflow without these internals: check the core tables only
        return {"experiments", "runs"}


def tracking_uri_of(cfg: dict) -> str:
    """The tracking URI of the settings: ``tracking_uri``, else ``file_path`` (a URI, or a SQLite file)."""
    if cfg.get("tracking_uri"):
        return cfg["tracking_uri"]
    path = cfg["file_path"]
    if "://" in path:
        return path
    return "sqlite:///" + os.path.abspath(os.path.expanduser(path))


def _selected(values: dict, wanted: list) -> dict:
    if "*" in wanted:
        return dict(values)
    return {k: v for k, v in values.items() if k in wanted}


class MLflowAdapter(PollingAdapter):
    """The ``mlflow`` adapter (settings ``file_path`` or ``tracking_uri``, ``log_params``, ``log_metrics``,
    ``watch_interval_sec``)."""

    kind = "mlflow"

    def __init__(self, key: str, cfg: dict):
        super().__init__(key, cfg)
        self.uri = tracking_uri_of(cfg)
        self._setting = f"adapters.{key}." + ("tracking_uri" if cfg.get("tracking_uri") else "file_path")
        self.client: MlflowClient | None = None
        self._awaited: str | None = None  # a SQLite file not there yet at start (see check)
        self.watermark_ms = 0
        self._floor_ms = 0  # without a stored watermark: runs that ended before start() are not ours
        self._seen: dict[str, int] = {}  # run id -> end_time (ms), runs inside the look-back window

    def check(self) -> None:
        """Open the tracking store; an unreadable one is a ConfigError naming the setting.

        A SQLite file that exists must be an MLflow database: it is inspected read-only first, because
        ``MlflowClient`` creates a missing file and runs MLflow's schema migrations on any database lacking its
        tables. A file that does not exist yet (in a folder that does) is awaited: MLflow creates it on the program's
        first call, and the client is built once it holds MLflow's tables (a file that never appears is logged at
        stop). A database URI (PostgreSQL, MySQL, ...) is inspected the same way, without writing. Only then is the
        client built.
        """
        if self.uri.startswith("sqlite:"):
            path = _sqlite_path(self.uri)
            if path and not os.path.exists(path) and os.path.isdir(os.path.dirname(path)):
                self._awaited = path
                return
            self._check_sqlite(path)
        elif self.uri.split(":", 1)[0].split("+", 1)[0] in _SQLALCHEMY_SCHEMES:
            self._check_tables(self._db_tables(), self.uri)
        self._open_client()

    def _open_client(self) -> None:
        try:
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any failure here means the store cannot be read
            raise ConfigError(f"cannot read the MLflow tracking store {self.uri!r}: {exc}", key=self._setting) from None
        self.client = client

    def _check_sqlite(self, path: str | None) -> None:
        """Refuse a missing file, a non-SQLite file or a SQLite file without MLflow's tables; never writes."""
        if not path:
            raise ConfigError(f"{self.uri!r} names no SQLite file; {_WHAT}", key=self._setting)
        if not os.path.isfile(path):
            what = "a directory, not a file" if os.path.isdir(path) else "no such file"
            raise ConfigError(f"{what}: {path}; {_WHAT}", key=self._setting)
        try:
            conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"not a readable SQLite database ({exc}): {path}; {_WHAT}", key=self._setting) from None
        self._check_tables(tables, path)

    def _db_tables(self) -> set:
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(self.uri)
            try:
                return set(sqlalchemy.inspect(engine).get_table_names())
            finally:
                engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure here means the store cannot be read
            raise ConfigError(f"cannot read the MLflow tracking store {self.uri!r}: {exc}", key=self._setting) from None

    def _check_tables(self, tables: set, where: str) -> None:
        if not {"experiments", "runs"} <= tables:
            raise ConfigError(f"not an MLflow tracking database (no 'experiments'/'runs' tables): {where}; {_WHAT}",
                              key=self._setting)
        missing = sorted((_expected_tables() | {"alembic_version"}) - tables)
        if missing:  # MlflowClient would migrate it: flowcept only reads MLflow's database
            raise ConfigError(f"the MLflow database {where} lacks tables of this MLflow version "
                              f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); flowcept does not "
                              f"migrate it: upgrade it with 'mlflow db upgrade <uri>' (after a backup) or use the "
                              f"MLflow version that wrote it", key=self._setting)

    def start(self, scope: _ctx.Scope) -> None:
        if self.client is None and self._awaited is None:
            self.check()
        self._load_watermark(scope)
        super().start(scope)

    def _load_watermark(self, scope: _ctx.Scope) -> None:
        self.watermark_ms = self._floor_ms = int(time.time() * 1000)
        try:
            from flowcept.query.api import DBAPI

            db = DBAPI()
            try:
                mine = {"adapter_id": self.key, "custom_metadata.mlflow_tracking_uri": self.uri}
                newest = db.task_query(mine, projection=["custom_metadata"], limit=1,
                                       sort=[("custom_metadata.mlflow_end_time_ms", -1)])
                if newest:
                    self.watermark_ms = int(newest[0]["custom_metadata"]["mlflow_end_time_ms"])
                    self._floor_ms = 0
                    window = {**mine, "custom_metadata.mlflow_end_time_ms": {"$gte": self.watermark_ms -
                                                                                     LOOKBACK_MS}}
                    for doc in db.task_query(window, projection=["task_id", "custom_metadata"]):
                        self._seen[doc["task_id"]] = int(doc["custom_metadata"]["mlflow_end_time_ms"])
            finally:
                db.close()
        except ConfigError:
            pass  # no store: only runs ending from now on
        except Exception as exc:  # noqa: BLE001
            self.failed("reading the watermark from the store", exc)

    def _open_awaited(self, final: bool) -> bool:
        """Build the client once the awaited SQLite file exists (checked as at start); False while it does not."""
        path = self._awaited
        if not os.path.exists(path):
            if final:
                logger.warning("flowcept: the MLflow tracking file %s (%s) never appeared: no MLflow run was "
                               "captured", path, self._setting)
            return False
        try:
            self._check_sqlite(path)
        except ConfigError:
            if final:  # still no MLflow database at stop: counted by the polling loop
                raise
            return False  # MLflow may be creating its tables right now: look again at the next poll
        self._awaited = None
        self._open_client()
        return True

    def poll(self, final: bool) -> None:
        if self.client is None and (self._awaited is None or not self._open_awaited(final)):
            return
        client = self.client
        experiments = {}
        token = None
        while True:
            page = client.search_experiments(view_type=ViewType.ALL, max_results=_PAGE, page_token=token)
            experiments.update((e.experiment_id, e.name) for e in page)
            token = page.token
            if not token:
                break
        if not experiments:
            return
        since = self.watermark_ms - LOOKBACK_MS
        token = None
        while True:
            runs = client.search_runs(list(experiments), filter_string=f"attributes.end_time >= {since}",
                                      run_view_type=ViewType.ALL, max_results=_PAGE,
                                      order_by=["attributes.end_time ASC"], page_token=token)
            for run in runs:
                self._one(run, experiments)
            token = runs.token
            if not token:
                break
        horizon = self.watermark_ms - LOOKBACK_MS
        self._seen = {rid: end for rid, end in self._seen.items() if end >= horizon}

    def _one(self, run, experiments: dict) -> None:
        info = run.info
        if info.status not in _STATUS or info.end_time is None or info.run_id in self._seen \
                or info.end_time < self._floor_ms:
            return
        try:
            record = self._record(run, experiments)
        except Exception as exc:  # noqa: BLE001 - one bad run must not hide the others
            self.failed(f"reading run {info.run_id}", exc)
            return
        self.emit(record)
        self._seen[info.run_id] = info.end_time
        self.watermark_ms = max(self.watermark_ms, info.end_time)

    def _record(self, run, experiments: dict) -> dict:
        info, data = run.info, run.data
        metrics = _selected(data.metrics, self.cfg["log_metrics"])
        steps = {}
        for name in metrics:
            history = self.client.get_metric_history(info.run_id, name)
            if history:
                steps[name] = max(history, key=lambda m: (m.step, m.timestamp)).step
        generated = dict(metrics)
        if steps:
            generated["step"] = steps
        exp_name = experiments.get(info.experiment_id)
        return {
            "type": "task", "task_id": info.run_id, "activity_id": info.run_name or exp_name,
            "used": _selected(data.params, self.cfg["log_params"]), "generated": generated,
            "started_at": info.start_time / 1000 if info.start_time else None, "ended_at": info.end_time / 1000,
            "status": _STATUS[info.status],
            "custom_metadata": {"tags": dict(data.tags), "experiment_id": info.experiment_id,
                                "experiment_name": exp_name, "mlflow_status": info.status,
                                "mlflow_end_time_ms": info.end_time, "mlflow_tracking_uri": self.uri,
                                "artifact_uri": info.artifact_uri},
        }
