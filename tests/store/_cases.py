"""Shared records and filter cases for the store contract suite and the PostgreSQL dialect test."""

TASKS = [
    {"type": "task", "task_id": "t1", "workflow_id": "w1", "activity_id": "train", "status": "FINISHED",
     "started_at": 1.0, "ended_at": 2.0, "tags": ["math", "demo"], "used": {"x": 1, "lr": 0.1, "name": "alpha"},
     "generated": {"loss": 0.5}, "n": 5, "opt": "here"},
    {"type": "task", "task_id": "t2", "workflow_id": "w1", "activity_id": "train", "status": "RUNNING",
     "started_at": 2.0, "tags": ["demo"], "used": {"x": 2, "name": "Beta"}, "generated": {"loss": 0.25}, "n": "7"},
    {"type": "task", "task_id": "t3", "workflow_id": "w2", "activity_id": "eval", "status": "ERROR",
     "started_at": 3.0, "tags": "math", "used": {"x": 3}, "n": 7.5, "flag": True, "arr": [1, 2, 3]},
    {"type": "task", "task_id": "t4", "workflow_id": "w2", "activity_id": "eval", "status": "FINISHED",
     "started_at": 4.0, "custom_metadata": {"note": "$5"}, "n": None, "flag": False, "used": {"x": None}},
    {"type": "task", "task_id": "t5", "workflow_id": "w3", "activity_id": "'; DROP TABLE tasks; --",
     "status": "FINISHED", "n": [5, 10], "obj": {"a": 1, "b": [1, 2]}},
]

ALL = {"t1", "t2", "t3", "t4", "t5"}

# (filter, expected task ids)
FILTER_CASES = [
    ({}, ALL),
    (None, ALL),
    ({"task_id": "t1"}, {"t1"}),
    ({"workflow_id": {"$eq": "w2"}}, {"t3", "t4"}),
    ({"status": {"$ne": "FINISHED"}}, {"t2", "t3"}),
    # Type bracketing: numbers compare with numbers only; arrays match by any element.
    ({"n": {"$gt": 5}}, {"t3", "t5"}),
    ({"n": {"$gte": 5}}, {"t1", "t3", "t5"}),
    ({"n": {"$lt": 7}}, {"t1", "t5"}),
    ({"n": {"$lte": 7.5}}, {"t1", "t3", "t5"}),
    ({"n": {"$gt": "5"}}, {"t2"}),
    ({"n": 7}, set()),
    ({"n": "7"}, {"t2"}),
    ({"n": True}, set()),
    ({"n": None}, {"t4"}),
    ({"opt": None}, ALL - {"t1"}),
    ({"n": {"$exists": True}}, ALL),
    ({"opt": {"$exists": False}}, ALL - {"t1"}),
    ({"n": {"$in": [5, "7"]}}, {"t1", "t2", "t5"}),
    ({"n": {"$nin": [5, "7"]}}, {"t3", "t4"}),
    ({"n": {"$in": []}}, set()),
    ({"n": {"$not": {"$gt": 5}}}, {"t1", "t2", "t4"}),
    # Arrays.
    ({"tags": "math"}, {"t1", "t3"}),
    ({"tags": {"$in": ["demo"]}}, {"t1", "t2"}),
    ({"tags": ["demo"]}, {"t2"}),
    ({"tags": {"$ne": "math"}}, {"t2", "t4", "t5"}),
    ({"tags": {"$nin": ["demo", "math"]}}, {"t4", "t5"}),
    ({"arr.1": 2}, {"t3"}),
    ({"obj.b": 2}, {"t5"}),
    # Dotted paths, dicts, booleans.
    ({"used.x": {"$gte": 2}}, {"t2", "t3"}),
    ({"used.x": None}, {"t4", "t5"}),
    ({"generated.loss": {"$lt": 0.3}}, {"t2"}),
    ({"obj": {"a": 1, "b": [1, 2]}}, {"t5"}),
    ({"used": {"x": 1, "lr": 0.1, "name": "alpha"}}, {"t1"}),
    ({"flag": True}, {"t3"}),
    ({"flag": False}, {"t4"}),
    ({"flag": 1}, set()),
    ({"flag": {"$gte": False}}, {"t3", "t4"}),
    ({"flag": {"$gt": True}}, set()),
    ({"started_at": {"$gt": 1.5, "$lt": 3.5}}, {"t2", "t3"}),
    # Regular expressions.
    ({"used.name": {"$regex": "ph"}}, {"t1"}),
    ({"used.name": {"$regex": "^b"}}, set()),
    ({"used.name": {"$regex": "^b", "$options": "i"}}, {"t2"}),
    ({"tags": {"$regex": "^ma"}}, {"t1", "t3"}),
    ({"used.name": {"$not": {"$regex": "^a"}}}, ALL - {"t1"}),
    # Logical operators.
    ({"$or": [{"activity_id": "eval"}, {"generated.loss": {"$lt": 0.3}}]}, {"t2", "t3", "t4"}),
    ({"$and": [{"workflow_id": "w1"}, {"status": "FINISHED"}]}, {"t1"}),
    ({"$nor": [{"workflow_id": "w1"}, {"workflow_id": "w2"}]}, {"t5"}),
    ({"workflow_id": "w1", "status": {"$in": ["RUNNING", "ERROR"]}}, {"t2"}),
    # Values that look like SQL or operators are data.
    ({"custom_metadata.note": "$5"}, {"t4"}),
    ({"activity_id": "'; DROP TABLE tasks; --"}, {"t5"}),
    ({"activity_id": {"$regex": "DROP"}}, {"t5"}),
]

# (sort, expected order of ids) over all TASKS
SORT_CASES = [
    ([("started_at", -1)], ["t4", "t3", "t2", "t1", "t5"]),
    ([("started_at", 1)], ["t5", "t1", "t2", "t3", "t4"]),
    (("started_at", -1), ["t4", "t3", "t2", "t1", "t5"]),
    ({"workflow_id": 1, "started_at": -1}, ["t2", "t1", "t4", "t3", "t5"]),
    ([("used.x", -1), ("task_id", 1)], ["t3", "t2", "t1", "t4", "t5"]),
]
