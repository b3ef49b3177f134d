"""MLflow adapter: each finished MLflow run becomes one task record, read through ``MlflowClient``'s public API.

Polls every ``watch_interval_sec`` for runs whose ``end_time`` is at or past a watermark (minus a look-back
window, for runs whose end is committed late by another process), oldest first and page by page, so any number
of runs finishing between two polls is read. Run ids already emitted inside the window are skipped: each run is
captured once. The watermark lives in our own store: at start it is the newest ``end_time`` among the runs this
adapter key stored for this tracking URI, so a restarted observer neither repeats a run nor misses one that ended
while no observer ran. Without a readable store, only runs that end after ``start()`` are captured.
"""

from __future__ import annotations

import os
import time

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
LOOKBACK_MS = 60_000
_STATUS = {"FINISHED": "FINISHED", "FAILED": "ERROR", "KILLED": "ERROR"}
_PAGE = 1000


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
        self.watermark_ms = 0
        self._floor_ms = 0  # without a stored watermark: runs that ended before start() are not ours
        self._seen: dict[str, int] = {}  # run id -> end_time (ms), runs inside the look-back window

    def check(self) -> None:
        """Open the tracking store; an unreadable one is a ConfigError naming the setting."""
        if self.uri.startswith("sqlite:///"):
            path = self.uri[len("sqlite:///"):]
            if os.path.isdir(path) or not os.path.isdir(os.path.dirname(path) or "."):
                raise ConfigError(f"not an MLflow SQLite file (or its folder does not exist): {path}",
                                  key=self._setting)
        try:
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any failure here means the store cannot be read
            raise ConfigError(f"cannot read the MLflow tracking store {self.uri!r}: {exc}", key=self._setting) from None
        self.client = client

    def start(self, scope: _ctx.Scope) -> None:
        if self.client is None:
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

    def poll(self, final: bool) -> None:
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
