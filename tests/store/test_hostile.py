"""Hostile and unusual queries: each is answered exactly or refused with a QueryError saying why, on every store."""

from __future__ import annotations

import pytest

from flowcept.errors import QueryError
from flowcept.store._filters import MAX_FILTER_DEPTH, MAX_LIMIT

SLOW_SUBJECT = "a" * 30 + "b"  # 31 characters


@pytest.fixture(name="filled")
def fixture_filled(store):
    store.upsert([{"type": "task", "task_id": f"t{i}", "workflow_id": "w", "n": i, "tags": [f"g{i % 3}", i],
                   "used": {"s": SLOW_SUBJECT if i == 0 else f"value-{i}", "d": {"k": i % 2}}}
                  for i in range(30)])
    return store


def _ids(docs):
    return sorted(int(d["task_id"][1:]) for d in docs)


class TestRegex:
    @pytest.mark.parametrize("pattern", ["(a|aa)+$", "(a+)+$", "(a*)*b$", "^(a|a?)+$", "(.*a){20}"])
    def test_pathological_pattern_refused_or_answered(self, filled, pattern):
        """A backtracking-prone pattern on a 31-character value is answered exactly or refused as a QueryError;
        it never runs unbounded (the bound is timed in bench, not here)."""
        import regex

        found = [_safe_search(regex, pattern, SLOW_SUBJECT if i == 0 else f"value-{i}") for i in range(30)]
        expected = None if None in found else [i for i, hit in enumerate(found) if hit]
        try:
            got = _ids(filled.find("tasks", {"used.s": {"$regex": pattern}}))
        except QueryError as exc:
            assert "$regex" in str(exc) or "regular expression" in str(exc)
        else:
            if expected is not None:
                assert got == expected

    def test_catastrophic_pattern_is_query_error_on_sqlite(self, tmp_path):
        """On SQLite, (a|aa)+$ against a 31-character value stops with a QueryError naming the pattern."""
        from flowcept.store.sqlite import SqliteStore

        with SqliteStore(tmp_path / "r.sqlite") as store:
            store.upsert([{"type": "task", "task_id": "t", "used": {"s": "a" * 40 + "b"}}])
            with pytest.raises(QueryError, match=r"\(a\|aa\)\+\$.*longer than"):
                store.count("tasks", {"used.s": {"$regex": "(a|aa)+$"}})
            # The store stays usable after the refused query.
            assert store.count("tasks", {"used.s": {"$regex": "^a+b$"}}) == 1

    @pytest.mark.parametrize("pattern,expected", [
        ("value-1", [1] + list(range(10, 20))), ("^value-2", [2] + list(range(20, 30))), ("e-2$", [2]),
        ("^a", [0]), ("lue-29", [29]), ("^value\\-7", [7]), ("^VALUE", []), ("a*b", [0]),
        ("[*]", []), ("^value-[3]$", [3]),
    ])
    def test_patterns_sql_can_answer(self, filled, pattern, expected):
        """Literal and anchored-literal patterns (answered in SQL on SQLite) match exactly as Python's re does."""
        assert _ids(filled.find("tasks", {"used.s": {"$regex": pattern}})) == expected

    def test_glob_characters_in_a_prefix_are_literal(self, store):
        """An anchored prefix holding GLOB wildcards (escaped in the pattern) matches them literally."""
        store.upsert([{"type": "task", "task_id": "t1", "s": "a*b?[c]"}, {"type": "task", "task_id": "t2", "s": "axb"}])
        assert [d["task_id"] for d in store.find("tasks", {"s": {"$regex": "^a\\*b\\?\\[c"}})] == ["t1"]
        assert [d["task_id"] for d in store.find("tasks", {"s": {"$regex": "\\?\\["}})] == ["t1"]

    def test_pattern_too_long(self, filled):
        """A pattern over the size bound is a QueryError naming the bound."""
        with pytest.raises(QueryError, match="at most 1000"):
            filled.count("tasks", {"used.s": {"$regex": "a" * 1001}})


def _safe_search(regex, pattern, subject):
    try:
        return regex.search(pattern, subject, timeout=0.5) is not None
    except TimeoutError:
        return None


class TestInOfAnyLength:
    def test_in_100k_values(self, filled):
        """$in with 100,000 strings matches exactly the stored ones among them."""
        values = [f"t{i}" for i in range(5, 100_000, 5)]
        assert _ids(filled.find("tasks", {"task_id": {"$in": values}})) == [5, 10, 15, 20, 25]
        assert filled.count("tasks", {"task_id": {"$nin": values}}) == 25

    def test_in_mixed_kinds(self, filled):
        """One $in mixes numbers (1 == 1.0), strings, null and arrays; array fields match by element."""
        assert _ids(filled.find("tasks", {"n": {"$in": [*range(1000, 3000), 3.0, "4", 5]}})) == [3, 5]
        assert _ids(filled.find("tasks", {"tags": {"$in": ["g2", 7.0] + [f"x{i}" for i in range(5000)]}})) == \
            [2, 5, 7, 8, 11, 14, 17, 20, 23, 26, 29]
        assert _ids(filled.find("tasks", {"used.d": {"$in": [{"k": 1}, [1]]}})) == list(range(1, 30, 2))
        assert filled.count("tasks", {"missing": {"$in": [None, *range(2000)]}}) == 30
        assert filled.count("tasks", {"n": {"$nin": list(range(2, 2000))}}) == 2

    def test_or_of_many_branches(self, filled):
        """A flat $or of 5,000 branches is answered (the SQL tree stays shallow)."""
        assert filled.count("tasks", {"$or": [{"n": i} for i in range(0, 5000, 2)]}) == 15

    def test_unencodable_in_value(self, filled):
        """An integer beyond 64 bits in $in is compared as a number, not an encoding crash."""
        assert filled.count("tasks", {"n": {"$in": [2 ** 70, 4]}}) == 1


class TestBounds:
    def test_deep_and_is_query_error(self, filled):
        """A 2,000-deep $and is a QueryError naming the depth bound, not a RecursionError."""
        flt: dict = {"n": 1}
        for _ in range(2000):
            flt = {"$and": [flt]}
        with pytest.raises(QueryError, match=f"more than {MAX_FILTER_DEPTH} levels"):
            filled.find("tasks", flt)

    def test_deep_value_is_query_error(self, filled):
        """A 2,000-deep dict value is a QueryError, not an encoder crash."""
        value: dict = {}
        for _ in range(2000):
            value = {"a": value}
        with pytest.raises(QueryError, match="nested"):
            filled.count("tasks", {"used": value})

    def test_nesting_within_bound_works(self, filled):
        """Thirty nested $and/$or levels are answered exactly."""
        flt: dict = {"n": {"$gte": 10}}
        for i in range(30):
            flt = {"$and": [flt]} if i % 2 else {"$or": [flt, {"n": -1}]}
        assert filled.count("tasks", flt) == 20

    def test_too_many_nodes(self, filled):
        """More than 10,000 operators in one filter is a QueryError suggesting $in."""
        with pytest.raises(QueryError, match=r"\$in"):
            filled.count("tasks", {"$or": [{"n": i, "m": i} for i in range(6000)]})

    @pytest.mark.parametrize("limit", [2 ** 70, MAX_LIMIT + 1])
    def test_limit_out_of_range(self, filled, limit):
        """A limit beyond 2**63-1 is a QueryError naming the range."""
        with pytest.raises(QueryError, match="2\\*\\*63-1"):
            filled.find("tasks", limit=limit)

    def test_largest_limit(self, filled):
        """The largest limit is accepted and means 'all'."""
        assert len(filled.find("tasks", limit=MAX_LIMIT)) == 30

    @pytest.mark.parametrize("flt,word", [({"$where": "1"}, "$where"), ({"n": {"$foo": 1}}, "$foo"),
                                          ({"n": {"$in": [1], "$bar": 2}}, "$bar"), ({"$expr": {}}, "$expr")])
    def test_unknown_operators(self, filled, flt, word):
        """An unknown operator is a QueryError naming it and the supported ones."""
        with pytest.raises(QueryError, match=r"unknown query operator.*supported") as info:
            filled.count("tasks", flt)
        assert word in str(info.value)

    def test_filter_not_a_dict(self, filled):
        """A filter that is not a dict is a QueryError."""
        with pytest.raises(QueryError, match="must be a dict"):
            filled.count("tasks", [{"n": 1}])
