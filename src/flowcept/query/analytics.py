"""Summaries over stored records, computed by SQL aggregates in the store (reference 3.4): task summaries,
telemetry time series, campaigns and agents derived from the records, and deleting a campaign's data."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from flowcept.errors import QueryError
from flowcept.store._filters import check_limit, compile_filter, plain_number, split_path

__all__ = ["task_summary", "telemetry_timeseries", "derive_campaigns", "derive_agents", "delete_campaign_data"]


def _expr(store, field: str, kind: str) -> tuple[str, list]:
    d = store.dialect
    o = d.field(split_path(field))
    return d.number_value(o) if kind == "number" else d.text_value(o)


def _duration(count: int, total: Any, low: Any, high: Any) -> dict:
    total = plain_number(total) if count else None
    return {"count": count, "total": total, "min": plain_number(low), "max": plain_number(high),
            "avg": (total / count) if count else None}


def task_summary(store, filter: Mapping | None = None) -> dict:
    """Counts, statuses and durations (``ended_at - started_at``) of the matching tasks, overall and per activity.

    Returns:
        ``{"n_tasks", "status_counts": {status: n}, "started_at": first start, "ended_at": last end,
        "duration": {"count", "total", "min", "max", "avg"}, "activities": [{"activity_id", "n_tasks",
        "status_counts", "started_at", "ended_at", "duration"}, ...]}`` with activities ordered by id (tasks without
        one under None, first). Durations count tasks with both times; no match gives ``n_tasks == 0``.
    """
    where, wparams = compile_filter(filter, store.dialect)
    (act, pa), (status, ps), (started, pst), (ended, pe) = (
        _expr(store, field, kind) for field, kind in (("activity_id", "text"), ("status", "text"),
                                                      ("started_at", "number"), ("ended_at", "number")))
    sql = (f"SELECT act, status, COUNT(*), COUNT(dur), SUM(dur), MIN(dur), MAX(dur), MIN(s), MAX(e) FROM "
           f"(SELECT {act} AS act, {status} AS status, {ended} - {started} AS dur, {started} AS s, {ended} AS e "
           f"FROM tasks WHERE {where}) AS x GROUP BY act, status")
    # Parameters (PostgreSQL binds JSON paths) in the order their expressions appear in the SQL.
    sparams = pa + ps + pe + pst + pst + pe
    rows = list(store.run_sql([(sql, sparams + wparams)]))
    activities: dict[Any, dict] = {}
    acc = {"n": 0, "status": {}, "dn": 0, "dsum": 0, "dmin": None, "dmax": None, "s": None, "e": None}
    per_act: dict[Any, dict] = {}
    for act_id, st, n, dn, dsum, dmin, dmax, smin, emax in rows:
        for target in (acc, per_act.setdefault(act_id, {"n": 0, "status": {}, "dn": 0, "dsum": 0, "dmin": None,
                                                          "dmax": None, "s": None, "e": None})):
            target["n"] += n
            if st is not None:
                target["status"][st] = target["status"].get(st, 0) + n
            target["dn"] += dn
            target["dsum"] += plain_number(dsum) or 0
            target["dmin"] = _least(target["dmin"], plain_number(dmin))
            target["dmax"] = _most(target["dmax"], plain_number(dmax))
            target["s"] = _least(target["s"], plain_number(smin))
            target["e"] = _most(target["e"], plain_number(emax))
    for act_id in sorted(per_act, key=lambda a: (a is not None, a or "")):
        a = per_act[act_id]
        activities[act_id] = {"activity_id": act_id, "n_tasks": a["n"], "status_counts": dict(sorted(a["status"].items())),
                              "started_at": a["s"], "ended_at": a["e"],
                              "duration": _duration(a["dn"], a["dsum"], a["dmin"], a["dmax"])}
    return {"n_tasks": acc["n"], "status_counts": dict(sorted(acc["status"].items())), "started_at": acc["s"],
            "ended_at": acc["e"], "duration": _duration(acc["dn"], acc["dsum"], acc["dmin"], acc["dmax"]),
            "activities": list(activities.values())}


def _least(a, b):
    return b if a is None else a if b is None else min(a, b)


def _most(a, b):
    return b if a is None else a if b is None else max(a, b)


def telemetry_timeseries(store, filter: Mapping | None, fields: Sequence[str], x_field: str = "started_at",
                         limit: int = 1000) -> list[dict]:
    """Numeric fields of the matching tasks along a numeric x axis, for plotting.

    Args:
        filter: which tasks.
        fields: dotted numeric fields, e.g. ``["telemetry_at_end.cpu.percent_all"]``.
        x_field: the x axis (tasks without a number there are left out).
        limit: at most this many points (the first ones along x); 0 for all.

    Returns:
        ``[{"task_id", <x_field>: x, <field>: number or None, ...}]`` ordered by x, then task id.

    Raises:
        QueryError: no fields, a bad path or limit.
    """
    if isinstance(fields, str):
        fields = [fields]
    if not fields:
        raise QueryError("telemetry_timeseries needs at least one field, e.g. ['telemetry_at_end.cpu.percent_all']")
    limit = check_limit(limit)
    x_sql, params = _expr(store, x_field, "number")
    cols = []
    for field in fields:
        sql, p = _expr(store, field, "number")
        cols.append(sql)
        params += p
    where, wparams = compile_filter(filter, store.dialect)
    x2, x2p = _expr(store, x_field, "number")
    ph = "?" if store.dialect.name == "sqlite" else "%s"
    sql = (f"SELECT id, {x_sql}, {', '.join(cols)} FROM tasks WHERE ({where}) AND ({x2}) IS NOT NULL "
           f"ORDER BY 2, 1" + (f" LIMIT {ph}" if limit else ""))
    rows = store.run_sql([(sql, params + wparams + x2p + ([limit] if limit else []))])
    return [{"task_id": row[0], x_field: plain_number(row[1]),
             **{field: plain_number(v) for field, v in zip(fields, row[2:])}} for row in rows]


def _status_counts(rows: list[dict], key: str) -> dict[Any, dict]:
    out: dict[Any, dict] = {}
    for row in rows:
        counts = out.setdefault(row[key], {})
        if row.get("status") is not None:
            counts[row["status"]] = counts.get(row["status"], 0) + row["count"]
    return out


def derive_campaigns(store, campaign_id: str | None = None) -> list[dict]:
    """Campaigns as the workflow records group them (one campaign id, or all).

    Returns:
        ``[{"campaign_id", "workflow_ids" (by start), "n_workflows", "n_tasks", "status_counts", "started_at",
        "ended_at"}]`` ordered by campaign id; ``[]`` for an unknown id. Tasks count by their workflow.
    """
    flt: dict = {"campaign_id": campaign_id} if campaign_id is not None else {"campaign_id": {"$exists": True,
                                                                                            "$ne": None}}
    workflows = store.find("workflows", flt, projection=["workflow_id", "campaign_id", "started_at", "ended_at"],
                           sort=[("started_at", 1), ("workflow_id", 1)])
    if not workflows:
        return []
    by_wf = store.aggregate("tasks", {"workflow_id": {"$in": [w["workflow_id"] for w in workflows]}},
                            ["workflow_id", "status"], [("count", "*")])
    wf_counts = _status_counts(by_wf, "workflow_id")
    campaigns: dict[str, dict] = {}
    for wf in workflows:
        c = campaigns.setdefault(wf["campaign_id"], {"campaign_id": wf["campaign_id"], "workflow_ids": [],
                                                     "n_workflows": 0, "n_tasks": 0, "status_counts": {},
                                                     "started_at": None, "ended_at": None})
        c["workflow_ids"].append(wf["workflow_id"])
        c["n_workflows"] += 1
        for status, n in wf_counts.get(wf["workflow_id"], {}).items():
            c["status_counts"][status] = c["status_counts"].get(status, 0) + n
        c["started_at"] = _least(c["started_at"], _number(wf.get("started_at")))
        c["ended_at"] = _most(c["ended_at"], _number(wf.get("ended_at")))
    for c in campaigns.values():
        c["n_tasks"] = sum(row["count"] for row in by_wf if row["workflow_id"] in set(c["workflow_ids"]))
        c["status_counts"] = dict(sorted(c["status_counts"].items()))
    return [campaigns[k] for k in sorted(campaigns, key=str)]


def _number(v: Any) -> Any:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def derive_agents(store, filter: Mapping | None = None) -> list[dict]:
    """Agents as the matching tasks name them (``agent_id``), with their agent records' names.

    Returns:
        ``[{"agent_id", "name", "n_tasks", "status_counts", "workflow_ids", "started_at", "ended_at"}]`` ordered by
        agent id. Without a filter, stored agent records with no task are listed too (``n_tasks`` 0).
    """
    flt: dict = {"agent_id": {"$exists": True, "$ne": None}}
    if filter:
        flt = {"$and": [dict(filter), flt]}
    rows = store.aggregate("tasks", flt, ["agent_id", "workflow_id", "status"],
                           [("count", "*"), ("min", "started_at"), ("max", "ended_at")])
    agents: dict[Any, dict] = {}
    for row in rows:
        a = agents.setdefault(row["agent_id"], {"agent_id": row["agent_id"], "name": None, "n_tasks": 0,
                                                "status_counts": {}, "workflow_ids": [], "started_at": None,
                                                "ended_at": None})
        a["n_tasks"] += row["count"]
        if row["status"] is not None:
            a["status_counts"][row["status"]] = a["status_counts"].get(row["status"], 0) + row["count"]
        if row["workflow_id"] is not None and row["workflow_id"] not in a["workflow_ids"]:
            a["workflow_ids"].append(row["workflow_id"])
        a["started_at"] = _least(a["started_at"], row["min_started_at"])
        a["ended_at"] = _most(a["ended_at"], row["max_ended_at"])
    records = store.find("agents", None if not filter else {"agent_id": {"$in": list(agents)}},
                         projection=["agent_id", "name", "workflow_id"])
    for rec in records:
        a = agents.setdefault(rec.get("agent_id"), {"agent_id": rec.get("agent_id"), "name": None, "n_tasks": 0,
                                                    "status_counts": {}, "workflow_ids": [], "started_at": None,
                                                    "ended_at": None})
        a["name"] = rec.get("name")
        if rec.get("workflow_id") is not None and rec["workflow_id"] not in a["workflow_ids"]:
            a["workflow_ids"].append(rec["workflow_id"])
    for a in agents.values():
        a["status_counts"] = dict(sorted(a["status_counts"].items()))
        a["workflow_ids"].sort(key=str)
    return [agents[k] for k in sorted(agents, key=str)]


def delete_campaign_data(store, campaign_id: str, objects: Any = None) -> dict[str, int]:
    """Delete a campaign: its workflows, their objects, tasks and agents, objects, tasks and agents carrying the
    campaign id, and agents that only the deleted tasks referred to.

    Args:
        objects: the :class:`flowcept.store.objects.ObjectStore` beside ``store``; None leaves objects alone.

    Returns:
        Deleted counts ``{"objects": n, "tasks": n, "agents": n, "workflows": n}`` (all 0 for an unknown campaign;
        no ``objects`` without ``objects``).

    Raises:
        QueryError: ``campaign_id`` is not a non-empty string.
    """
    if not isinstance(campaign_id, str) or not campaign_id:
        raise QueryError(f"campaign_id must be a non-empty string, got {campaign_id!r}")
    wf_ids = [w["workflow_id"] for w in store.find("workflows", {"campaign_id": campaign_id},
                                                   projection=["workflow_id"])]
    owned = {"$or": [{"campaign_id": campaign_id}, {"workflow_id": {"$in": wf_ids}}]}
    return _delete_owned(store, objects, owned, [("workflow_id", wf_ids), ("campaign_id", [campaign_id])],
                         {"campaign_id": campaign_id})


def delete_workflow_data(store, workflow_id: str, objects: Any = None) -> dict[str, int]:
    """Delete a workflow: its objects (every version), tasks, agents and record, and agents that only its tasks
    referred to.

    Args:
        objects: the :class:`flowcept.store.objects.ObjectStore` beside ``store``; None leaves objects alone.

    Returns:
        Deleted counts ``{"objects": n, "tasks": n, "agents": n, "workflows": n}`` (all 0 for an unknown id; no
        ``objects`` without ``objects``).

    Raises:
        QueryError: ``workflow_id`` is not a non-empty string.
    """
    if not isinstance(workflow_id, str) or not workflow_id:
        raise QueryError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
    owned = {"workflow_id": workflow_id}
    return _delete_owned(store, objects, owned, [("workflow_id", [workflow_id])], owned)


def _delete_owned(store, objects: Any, owned: Mapping, object_keys: list, workflows: Mapping) -> dict[str, int]:
    """Delete the objects ``object_keys`` name (``[(key_name, values)]``), the tasks and agents ``owned`` matches,
    agents only those tasks named, and the workflow records ``workflows`` matches."""
    task_agents = {row["agent_id"] for row in store.aggregate("tasks", {"$and": [owned, {"agent_id": {"$ne": None}}]},
                                                              "agent_id", [("count", "*")])}
    deleted = {}
    if objects is not None:
        deleted["objects"] = sum(objects.delete(key, values) for key, values in object_keys)
    deleted["tasks"] = store.delete("tasks", owned)
    # Agents the deleted tasks named, unless a remaining task still names them.
    still_used = {row["agent_id"] for row in store.aggregate("tasks", {"agent_id": {"$in": sorted(task_agents)}},
                                                             "agent_id", [("count", "*")])} if task_agents else set()
    orphans = sorted(task_agents - still_used)
    deleted["agents"] = store.delete("agents", {"$or": [owned, {"agent_id": {"$in": orphans}}]})
    deleted["workflows"] = store.delete("workflows", workflows)
    return deleted
