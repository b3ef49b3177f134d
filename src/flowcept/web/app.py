"""The FastAPI application: the reference's ``/api/v1`` routes we have data for, over the configured store.

Every list endpoint pages in the store (keyset cursors, :mod:`.paging`); filters go through the store's own
validation (a bad one is a 400 with the reason); nothing writes unless ``web_server.allow_delete`` is set.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

import orjson
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from flowcept import __version__
from flowcept.errors import ConfigError, FlowceptError, ObjectNotFoundError, QueryError
from flowcept.web import paging
from flowcept.web.security import TOKEN_COOKIE, presented_token, token_matches

API = "/api/v1"
_TIMELINE_FIELDS = ["task_id", "activity_id", "status", "started_at", "ended_at", "parent_task_id", "hostname",
                    "subtype"]


def create_app(settings=None, db=None) -> FastAPI:
    """The web application.

    Args:
        settings: default :func:`flowcept.settings.get_settings` (``web_server`` and the store come from it).
        db: a :class:`flowcept.query.api.DBAPI` to read; default one over the store the settings enable.

    Raises:
        ConfigError: no store is enabled.
    """
    from flowcept.settings import get_settings

    settings = settings or get_settings()
    if db is None:
        from flowcept.query.api import DBAPI
        from flowcept.store import make_store

        store = make_store(settings, for_reading=True)
        if store is None:
            raise ConfigError("the web service reads a store: enable databases.sqlite or databases.postgres (and "
                              "keep project.db_flush_mode: online)", key="databases")
        db = DBAPI(store=store)
    web = settings.web_server
    app = FastAPI(title="flowcept", version=__version__, docs_url="/docs", redoc_url="/redoc")
    app.state.db = db
    app.state.settings = settings
    _install_security(app, web.token)
    _install_errors(app)
    router = APIRouter(prefix=API)
    _health_routes(router, settings)
    _workflow_routes(router, web)
    _task_routes(router)
    _other_routes(router, web)
    _stream_routes(router, web)
    app.include_router(router)
    _page_routes(app)
    return app


# ---------------------------------------------------------------------------------------------- cross-cutting
def _install_security(app: FastAPI, token: str | None) -> None:
    if not token:
        return

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if request.url.path == f"{API}/health/live":
            return await call_next(request)
        presented = presented_token(request.headers, request.query_params, request.cookies)
        if not token_matches(token, presented):
            return JSONResponse({"detail": "missing or wrong token: send Authorization: Bearer <token> (or open "
                                           "the page once with ?token=<token>)"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            # The page was opened with ?token=: later requests from it (fetch, EventSource) carry the cookie.
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


#: Exceptions and the HTTP status they become (the first match in this order wins); the body is ``{detail}``.
_ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (QueryError, 400), (ObjectNotFoundError, 404), (ValueError, 400), (NotImplementedError, 501),
    (FlowceptError, 503),
)


def _install_errors(app: FastAPI) -> None:
    async def as_json(request: Request, exc: BaseException):
        status = next(code for kind, code in _ERROR_STATUS if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    for kind, _ in _ERROR_STATUS:
        app.add_exception_handler(kind, as_json)


def _db(request: Request):
    return request.app.state.db


def _json_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"{name} is not valid JSON: {exc}") from None


def _page(db, collection: str, flt: dict, limit: int, cursor: str | None, sort_field: str | None,
          descending: bool, id_field: str, projection: Any = None) -> dict:
    """One keyset page of ``collection``: ``{items, count, limit, next_cursor}``.

    Without ``sort_field`` the page is the store's own key order (:meth:`flowcept.store.Store.find_page`: one
    index range scan, however deep the page); with it, the order (sort_field [desc], id_field).
    """
    paging.check_limit(limit)
    if cursor:
        # The total was counted once, on the first page; the cursor carries it (a count is a scan).
        *position, total = paging.decode_cursor(cursor, 3 if sort_field else 2)
    else:
        position, total = None, db.store.count(collection, flt or None)
    if sort_field is None:
        items, key = db.store.find_page(collection, flt or None, after=position[0] if position else None,
                                        page_size=limit)
        return {"items": items, "count": total, "limit": limit,
                "next_cursor": paging.encode_cursor([key, total]) if key is not None else None}
    query = paging.and_filters(flt, paging.after(sort_field, descending, id_field, position))
    items = db.store.find(collection, query, projection=projection,
                          sort=paging.order(sort_field, descending, id_field), limit=limit)
    return {"items": items, "count": total, "limit": limit,
            "next_cursor": paging.next_cursor(items, limit, sort_field, id_field, total)}


def _one(db, collection: str, key: str, value: str) -> dict:
    docs = db.store.find(collection, {key: value}, limit=1)
    if not docs:
        raise HTTPException(404, f"no {collection[:-1]} with {key} {value!r}")
    return docs[0]


def _require_delete(web) -> None:
    if not web.allow_delete:
        raise HTTPException(403, "this service is read-only: set web_server.allow_delete: true to enable deletes")


# ---------------------------------------------------------------------------------------------- routes
def _health_routes(router: APIRouter, settings) -> None:
    @router.get("/health/live")
    def live() -> dict:
        return {"status": "ok"}

    @router.get("/health/ready")
    def ready(request: Request):
        from flowcept.services import services_status

        services = services_status(settings)
        ok = all(state == "ok" for state in services.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "services": services},
                            status_code=200 if ok else 503)

    @router.get("/info")
    def info() -> dict:
        return {"name": "flowcept", "version": __version__, "store": settings.databases.store_kind,
                "read_only": not settings.web_server.allow_delete}


def _workflow_routes(router: APIRouter, web) -> None:
    @router.get("/workflows")
    def workflows(request: Request, limit: int = 100, cursor: str | None = None, campaign_id: str | None = None,
                  filter_json: str | None = None) -> dict:
        db = _db(request)
        flt = paging.and_filters(_json_param(filter_json, "filter_json"),
                                 {"campaign_id": campaign_id} if campaign_id else None)
        page = _page(db, "workflows", flt, limit, cursor, "started_at", True, "workflow_id")
        ids = [w["workflow_id"] for w in page["items"]]
        counts = {row["workflow_id"]: row["count_task_id"] for row in db.store.aggregate(
            "tasks", {"workflow_id": {"$in": ids}}, group_by="workflow_id", aggregations=[("count", "task_id")])
        } if ids else {}
        for wf in page["items"]:
            wf["task_count"] = counts.get(wf["workflow_id"], 0)
        return page

    @router.post("/workflows/query")
    def query_workflows(request: Request, body: dict = Body(default={})) -> dict:
        return _query(_db(request), "workflows", body)

    @router.get("/workflows/{workflow_id}")
    def workflow(request: Request, workflow_id: str) -> dict:
        db = _db(request)
        wf = _one(db, "workflows", "workflow_id", workflow_id)
        rows = db.store.aggregate("tasks", {"workflow_id": workflow_id}, group_by="status",
                                  aggregations=[("count", "task_id")])
        wf["task_count"] = sum(r["count_task_id"] for r in rows)
        wf["status_counts"] = {r.get("status") or "UNKNOWN": r["count_task_id"] for r in rows}
        return wf

    @router.delete("/workflows/{workflow_id}")
    def delete_workflow(request: Request, workflow_id: str) -> dict:
        _require_delete(web)
        return {"deleted": _db(request).delete_workflow_data(workflow_id)}

    @router.get("/workflows/{workflow_id}/timeline")
    def timeline(request: Request, workflow_id: str, limit: int = 1000, cursor: str | None = None) -> dict:
        """Tasks in start order with only what a Gantt chart needs."""
        return _page(_db(request), "tasks", {"workflow_id": workflow_id}, limit, cursor, "started_at", False,
                     "task_id", projection=_TIMELINE_FIELDS)

    @router.get("/workflows/{workflow_id}/dataflow")
    def dataflow(request: Request, workflow_id: str, limit: int = 1000) -> dict:
        """The task graph: nodes (tasks, first ``limit`` by start) and edges between them."""
        from flowcept.web.graph import workflow_graph

        paging.check_limit(limit)
        return workflow_graph(_db(request), workflow_id, limit)

    @router.get("/workflows/{workflow_id}/workflow_card")
    def workflow_card(request: Request, workflow_id: str):
        from flowcept.web.graph import workflow_card_markdown

        _one(_db(request), "workflows", "workflow_id", workflow_id)
        return Response(workflow_card_markdown(workflow_id), media_type="text/markdown",
                        headers={"Content-Disposition": _attachment(f"workflow_card_{workflow_id}.md")})

    @router.get("/campaigns")
    def campaigns(request: Request, limit: int = 100, cursor: str | None = None) -> dict:
        """Campaigns by id, paged (the grouping reads every workflow with a campaign; the cursor is the last id)."""
        paging.check_limit(limit)
        after = paging.decode_cursor(cursor, 1)[0] if cursor else None
        rows = _db(request).store.aggregate("workflows", {"campaign_id": {"$exists": True}}, group_by="campaign_id",
                                            aggregations=[("count", "workflow_id"), ("min", "started_at")])
        rows = sorted((r for r in rows if isinstance(r["campaign_id"], str)), key=lambda r: r["campaign_id"])
        items = [{"campaign_id": r["campaign_id"], "workflow_count": r["count_workflow_id"],
                  "started_at": r["min_started_at"]}
                 for r in rows if after is None or r["campaign_id"] > after][:limit]
        more = len(items) == limit and items[-1]["campaign_id"] != rows[-1]["campaign_id"]
        return {"items": items, "count": len(rows), "limit": limit,
                "next_cursor": paging.encode_cursor([items[-1]["campaign_id"]]) if more else None}

    @router.get("/campaigns/{campaign_id}")
    def campaign(request: Request, campaign_id: str) -> dict:
        db = _db(request)
        wfs = db.store.find("workflows", {"campaign_id": campaign_id}, sort=[("started_at", 1)], limit=1000)
        if not wfs:
            raise HTTPException(404, f"no campaign with campaign_id {campaign_id!r}")
        return {"campaign_id": campaign_id, "workflows": wfs,
                "task_count": db.store.count("tasks", {"campaign_id": campaign_id})}

    @router.delete("/campaigns/{campaign_id}")
    def delete_campaign(request: Request, campaign_id: str) -> dict:
        _require_delete(web)
        return {"deleted": _db(request).delete_campaign_data(campaign_id)}


def _task_routes(router: APIRouter) -> None:
    @router.get("/tasks")
    def tasks(request: Request, limit: int = 100, cursor: str | None = None, workflow_id: str | None = None,
              parent_task_id: str | None = None, campaign_id: str | None = None, task_id: str | None = None,
              status: str | None = None, filter_json: str | None = None) -> dict:
        given = {"workflow_id": workflow_id, "parent_task_id": parent_task_id, "campaign_id": campaign_id,
                 "task_id": task_id, "status": status}
        flt = paging.and_filters({k: v for k, v in given.items() if v is not None},
                                 _json_param(filter_json, "filter_json"))
        return _page(_db(request), "tasks", flt, limit, cursor, None, False, "task_id")

    @router.post("/tasks/query")
    def query_tasks(request: Request, body: dict = Body(default={})) -> dict:
        return _query(_db(request), "tasks", body)

    @router.get("/tasks/by_workflow/{workflow_id}")
    def by_workflow(request: Request, workflow_id: str, limit: int = 100, cursor: str | None = None) -> dict:
        return _page(_db(request), "tasks", {"workflow_id": workflow_id}, limit, cursor, "started_at", False,
                     "task_id")

    @router.get("/tasks/{task_id}")
    def task(request: Request, task_id: str) -> dict:
        return _one(_db(request), "tasks", "task_id", task_id)

    @router.get("/tasks/{task_id}/upstream")
    def upstream(request: Request, task_id: str, depth: int | None = None) -> dict:
        """The tasks this one depends on, transitively (only that direction), computed in the store."""
        _one(_db(request), "tasks", "task_id", task_id)
        items = _db(request).upstream(task_id, depth=depth, projection=_TIMELINE_FIELDS)
        return {"items": items, "count": len(items), "limit": len(items)}

    @router.get("/tasks/{task_id}/downstream")
    def downstream(request: Request, task_id: str, depth: int | None = None) -> dict:
        """The tasks depending on this one, transitively (only that direction), computed in the store."""
        _one(_db(request), "tasks", "task_id", task_id)
        items = _db(request).downstream(task_id, depth=depth, projection=_TIMELINE_FIELDS)
        return {"items": items, "count": len(items), "limit": len(items)}

    @router.get("/tasks/{task_id}/children")
    def children(request: Request, task_id: str, limit: int = 100, cursor: str | None = None) -> dict:
        return _page(_db(request), "tasks", {"parent_task_id": task_id}, limit, cursor, None, False, "task_id")


def _other_routes(router: APIRouter, web) -> None:
    @router.get("/agents")
    def agents(request: Request, limit: int = 100, cursor: str | None = None) -> dict:
        return _page(_db(request), "agents", {}, limit, cursor, None, False, "agent_id")

    @router.get("/agents/{agent_id}")
    def agent(request: Request, agent_id: str) -> dict:
        return _one(_db(request), "agents", "agent_id", agent_id)

    @router.get("/agents/{agent_id}/tasks")
    def agent_tasks(request: Request, agent_id: str, limit: int = 100, cursor: str | None = None) -> dict:
        return _page(_db(request), "tasks", {"agent_id": agent_id}, limit, cursor, None, False, "task_id")

    @router.get("/objects")
    def objects(request: Request, limit: int = 100, cursor: str | None = None, object_type: str | None = None,
                workflow_id: str | None = None, task_id: str | None = None, filter_json: str | None = None) -> dict:
        """Latest versions of stored objects (models, datasets, artifacts), newest first."""
        given = {"object_type": object_type, "workflow_id": workflow_id, "task_id": task_id}
        flt = paging.and_filters({k: v for k, v in given.items() if v is not None},
                                 _json_param(filter_json, "filter_json"))
        db = _db(request)
        paging.check_limit(limit)
        if cursor:
            *position, total = paging.decode_cursor(cursor, 3)
        else:
            position, total = None, len(db.blob_object_query(flt or None, projection=["object_id"]))
        query = paging.and_filters(flt, paging.after("updated_at", True, "object_id", position))
        items = db.blob_object_query(query or None, limit=limit,
                                     sort=paging.order("updated_at", True, "object_id"))
        return {"items": items, "count": total, "limit": limit,
                "next_cursor": paging.next_cursor(items, limit, "updated_at", "object_id", total)}

    @router.get("/objects/{object_id}")
    def object_(request: Request, object_id: str) -> dict:
        return _db(request).get_blob_fingerprint(object_id) | _object_meta(_db(request), object_id)

    @router.delete("/objects/{object_id}")
    def delete_object(request: Request, object_id: str) -> dict:
        """The object with every version (``Flowcept.db.delete_object_keys``); 404 when there is none."""
        _require_delete(web)
        deleted = _db(request).delete_object_keys("object_id", [object_id])
        if not deleted:
            raise HTTPException(404, f"no object with object_id {object_id!r}")
        return {"deleted": {"objects": deleted}}

    @router.get("/objects/{object_id}/history")
    def object_history(request: Request, object_id: str) -> dict:
        items = _db(request).get_object_history(object_id)
        return {"items": items, "count": len(items), "limit": len(items)}

    @router.get("/objects/{object_id}/versions/{version}")
    def object_version(request: Request, object_id: str, version: int) -> dict:
        return _db(request).get_blob_fingerprint(object_id, version)

    @router.get("/objects/{object_id}/download")
    def object_download(request: Request, object_id: str):
        return _download(_db(request), object_id, None)

    @router.get("/objects/{object_id}/versions/{version}/download")
    def object_version_download(request: Request, object_id: str, version: int):
        return _download(_db(request), object_id, version)

    @router.get("/stats/tasks/summary")
    def summary(request: Request, workflow_id: str | None = None, filter_json: str | None = None) -> dict:
        flt = paging.and_filters({"workflow_id": workflow_id} if workflow_id else None,
                                 _json_param(filter_json, "filter_json"))
        rows = _db(request).store.aggregate(
            "tasks", flt or None, group_by=["activity_id", "status"],
            aggregations=[("count", "task_id"), ("min", "started_at"), ("max", "ended_at")])
        return {"items": rows, "count": len(rows), "limit": len(rows)}

    @router.post("/stats/chart_data")
    def chart_data(request: Request, body: dict = Body(default={})) -> dict:
        """``{data, context}`` -> ``{x_field, x, series}`` (``Flowcept.db.resolve_chart_data``: literal rows or
        columns, or a spec ``{collection, filter, x, y, limit}`` read from the store)."""
        if "data" not in body:
            raise QueryError("the body needs a 'data' key: literal rows or columns, or a spec such as "
                             "{'collection': 'tasks', 'filter': {...}, 'x': 'started_at', 'y': ['field']}")
        return _db(request).resolve_chart_data(body["data"], body.get("context"))

    @router.post("/stats/timeseries")
    def timeseries(request: Request, body: dict = Body(default={})) -> dict:
        """``{filter, fields: [dotted paths], x_field="started_at", limit<=1000}`` -> points sorted by x."""
        fields = body.get("fields") or []
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise QueryError("fields must be a list of dotted field names")
        x_field = body.get("x_field", "started_at")
        limit = _body_limit(body, 1000)
        flt = paging.and_filters(body.get("filter"), {x_field: {"$exists": True}})
        docs = _db(request).store.find("tasks", flt, projection=["task_id", x_field, *fields],
                                       sort=[(x_field, 1)], limit=limit)
        points = [{"task_id": d.get("task_id"), "x": _dig(d, x_field), **{f: _dig(d, f) for f in fields}}
                  for d in docs]
        return {"items": points, "count": len(points), "limit": limit}

    @router.post("/query/{scope}")
    def query(request: Request, scope: str, body: dict = Body(default={})) -> dict:
        if scope not in ("workflows", "tasks", "agents"):
            raise QueryError(f"unknown scope {scope!r}; use workflows, tasks or agents")
        return _query(_db(request), scope, body)


def _stream_routes(router: APIRouter, web) -> None:
    @router.get("/stream/tasks")
    async def stream_tasks(request: Request, workflow_id: str | None = None, campaign_id: str | None = None,
                           since: float | None = None):
        """Server-Sent Events: ``event: tasks`` with the tasks started or ended since the cursor, every
        ``web_server.sse_poll_interval_sec``; each event's ``id`` is the next cursor."""
        from anyio import to_thread

        base = {k: v for k, v in {"workflow_id": workflow_id, "campaign_id": campaign_id}.items() if v}
        db = _db(request)
        interval = max(0.2, float(web.sse_poll_interval_sec))
        batch = web.sse_max_batch

        async def events():
            # One keyset position (time, task_id) per time field; a poll reads the next ``batch`` after each.
            # Positions stay a second behind the server's clock (writers' clocks differ, records arrive late):
            # what is re-read there is sent again only when its status or end changed.
            start = (since if since is not None else time.time()) - 1.0
            positions = {"started_at": [start, ""], "ended_at": [start, ""]}
            sent: dict[str, tuple] = {}
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                lag = time.time() - 1.0
                fresh: dict[str, dict] = {}
                for field, position in positions.items():
                    flt = paging.and_filters(base, paging.after(field, False, "task_id", position))
                    docs = await to_thread.run_sync(lambda: db.store.find(
                        "tasks", flt, sort=paging.order(field, False, "task_id"), limit=batch))
                    for d in docs:
                        seen = sent.get(d["task_id"])  # (status, ended_at, time) when sent; never sent: None
                        if seen is None or seen[:2] != (d.get("status"), d.get("ended_at")):
                            fresh[d["task_id"]] = d
                    if docs:
                        last = [docs[-1][field], docs[-1]["task_id"]]
                        positions[field] = max(position, min(last, [lag, ""]))
                for d in fresh.values():
                    sent[d["task_id"]] = (d.get("status"), d.get("ended_at"),
                                          max(d.get("ended_at") or 0, d.get("started_at") or 0))
                low = min(p[0] for p in positions.values())
                if len(sent) > 50_000:  # keep only what the positions can read again
                    sent = {k: v for k, v in sent.items() if v[2] >= low}
                if fresh:
                    yield f"event: tasks\nid: {low}\ndata: {orjson.dumps(list(fresh.values())).decode()}\n\n"
                else:
                    yield ": keep-alive\n\n"
                await asyncio.sleep(interval)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _page_routes(app: FastAPI) -> None:
    static = resources.files("flowcept.web") / "static"

    def asset(name: str, media: str):
        async def serve() -> Response:
            return Response((static / name).read_bytes(), media_type=media)
        return serve

    app.add_api_route("/", asset("index.html", "text/html; charset=utf-8"), response_class=HTMLResponse,
                      include_in_schema=False)
    app.add_api_route("/static/app.js", asset("app.js", "text/javascript; charset=utf-8"), include_in_schema=False)
    app.add_api_route("/static/app.css", asset("app.css", "text/css; charset=utf-8"), include_in_schema=False)


# ---------------------------------------------------------------------------------------------- helpers
def _query(db, collection: str, body: dict) -> dict:
    """The reference's query body: ``{filter, projection, limit (<=1000, default 100), sort}``."""
    if not isinstance(body, dict):
        raise QueryError("the body must be a JSON object")
    limit = _body_limit(body, 100)
    items = db.store.find(collection, body.get("filter"), projection=body.get("projection"),
                          sort=_body_sort(body.get("sort")), limit=limit)
    return {"items": items, "count": len(items), "limit": limit}


def _body_limit(body: dict, default: int) -> int:
    """The body's ``limit`` (``default`` when absent).

    Raises:
        QueryError: not an integer between 1 and :data:`paging.MAX_LIMIT`.
    """
    limit = body.get("limit", default)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise QueryError(f"limit must be an integer between 1 and {paging.MAX_LIMIT}, got {limit!r}")
    return paging.check_limit(limit)


def _body_sort(sort: Any) -> Any:
    """The body's ``sort`` for the store: ``{field, order}`` entries become ``(field, order)``; the rest is the
    store's to check.

    Raises:
        QueryError: an entry that is a dict without a ``field``.
    """
    if not isinstance(sort, list):
        return sort
    out = []
    for entry in sort:
        if isinstance(entry, dict):
            if not isinstance(entry.get("field"), str):
                raise QueryError(f"sort entries must be {{'field': name, 'order': 1|-1}} or [name, 1|-1], "
                                 f"got {entry!r}")
            entry = (entry["field"], entry.get("order", 1))
        out.append(tuple(entry) if isinstance(entry, list) else entry)
    return out


def _object_meta(db, object_id: str) -> dict:
    docs = db.blob_object_query({"object_id": object_id}, limit=1)
    return docs[0] if docs else {}


def _download(db, object_id: str, version: int | None) -> StreamingResponse:
    """The object's bytes, streamed in chunks (a checksum mismatch ends the stream with an error, never silently)."""
    fingerprint = db.get_blob_fingerprint(object_id, version)
    stream = db.open_blob_object(object_id, version)

    def chunks():
        with stream:
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    return
                yield chunk

    name = f"{object_id}_v{fingerprint['version']}.bin"
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Disposition": _attachment(name),
                                      "Content-Length": str(fingerprint["object_size_bytes"]),
                                      "X-Content-SHA256": fingerprint["data_sha256"]})


def _attachment(filename: str) -> str:
    """A ``Content-Disposition`` for ``filename`` (RFC 6266/5987): an ASCII ``filename`` with anything unsafe in a
    quoted string replaced by ``_``, and the exact name percent-encoded as UTF-8 in ``filename*``."""
    from urllib.parse import quote

    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _dig(doc: dict, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
