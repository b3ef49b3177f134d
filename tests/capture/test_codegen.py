"""Wrappers generated per signature behave exactly like the function they wrap, for every parameter shape."""

from __future__ import annotations

import inspect

import pytest

from flowcept import Flowcept, flowcept_task, lightweight_flowcept_task


def _used(workflow_id):
    """The tasks' inputs in capture order (the buffer file keeps it)."""
    return [r["used"] for r in Flowcept.read_buffer_file() if r["type"] == "task" and r["workflow_id"] == workflow_id]


@pytest.mark.parametrize("decorator", [flowcept_task, lightweight_flowcept_task])
class TestSignatures:
    def test_defaults_keywords_and_positional_only(self, decorator):
        """Defaults are recorded, keyword calls bind by name, positional-only parameters work."""
        @decorator
        def f(a, /, b, c=3, d=None):
            return a + b + c

        with Flowcept() as fc:
            assert f(1, 2) == 6
            assert f(1, c=10, b=2) == 13
        assert _used(fc.workflow_id) == [{"a": 1, "b": 2, "c": 3, "d": None}, {"a": 1, "b": 2, "c": 10, "d": None}]
        assert inspect.signature(f) == inspect.signature(f.__wrapped__)

    def test_star_args_kwargs_and_keyword_only(self, decorator):
        """*args, **kwargs and keyword-only parameters are recorded under their names."""
        @decorator
        def g(x, *rest, scale=1, **opts):
            return x * scale

        with Flowcept() as fc:
            assert g(2, 3, 4, scale=5, mode="m") == 10
        assert _used(fc.workflow_id) == [{"x": 2, "rest": [3, 4], "scale": 5, "opts": {"mode": "m"}}]

    def test_wrong_arguments_raise_like_the_function(self, decorator):
        """A call with wrong arguments raises the same TypeError as the undecorated function."""
        def plain(x, y):
            return x

        wrapped = decorator(plain)
        with Flowcept():
            with pytest.raises(TypeError) as undecorated:
                plain(1)
            with pytest.raises(TypeError) as decorated:
                wrapped(1)
        assert str(decorated.value) == str(undecorated.value)

    def test_reserved_parameter_names_and_methods(self, decorator):
        """Parameters named like the wrapper's internals, and methods, are captured correctly."""
        @decorator
        def h(_fc_scope, _fc_result=2):
            return _fc_scope * _fc_result

        class Model:
            @decorator
            def predict(self, x):
                return x + 1

        with Flowcept() as fc:
            assert h(3) == 6
            assert Model().predict(1) == 2
        used = _used(fc.workflow_id)
        assert used[0] == {"_fc_scope": 3, "_fc_result": 2}
        assert used[1]["x"] == 1 and used[1]["self"].startswith("Model_instance_id_")
