"""Capture wrappers generated for each decorated function's own signature (as ``dataclasses`` generates methods).

A wrapper written as ``def w(*args, **kwargs)`` pays, on every call, for packing the arguments, binding them to
names and copying them into ``used``. A wrapper generated as ``def w(x, y=<default>)`` lets the interpreter bind the
arguments and builds ``used`` as one dict literal: about twice as cheap. Functions whose signature has ``*args``,
``**kwargs`` or keyword-only parameters get the same body with the generic ``*args, **kwargs`` parameters.

Every name the templates use starts with ``_fc_``; a function with a parameter of that prefix, or named like a
builtin the templates call, gets the generic form.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from flowcept.serialize import snapshot_expression

_PREFIX = "_fc_"
# Builtins the templates call: a parameter with one of these names would shadow it inside the wrapper.
_TEMPLATE_BUILTINS = frozenset({"type", "str", "next", "len", "dict", "BaseException"})
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def signature_fields(func: Callable | None, value_of: Callable[[str], str] = snapshot_expression
                     ) -> tuple[dict[str, str], dict[str, Any]]:
    """Template fields for ``func`` (None: the generic form) and the defaults they refer to.

    Args:
        func: the decorated function.
        value_of: the source of the expression giving a parameter's captured value, from its name.

    Returns:
        ``(fields, defaults)``: ``fields`` has ``params`` (the wrapper's parameter list), ``call`` (the arguments
        passed on to ``func``), ``used`` (an expression building the snapshotted inputs dict) and ``first_arg``
        (an expression for the first positional argument, or ``None``).
    """
    try:
        # The function's own parameters, not those of a function it wraps (functools.wraps): a decorator below ours
        # may call that one with other arguments (mock.patch adds one), so only its own shape can be passed on.
        params = list(inspect.signature(func, follow_wrapped=False).parameters.values()) if func is not None \
            else None
    except (TypeError, ValueError):
        params = None
    if params is None or any(p.kind not in _POSITIONAL or p.name.startswith(_PREFIX) or p.name in _TEMPLATE_BUILTINS
                             for p in params):
        return dict(GENERIC), {}
    parts: list[str] = []
    defaults: dict[str, Any] = {}
    for i, p in enumerate(params):
        text = p.name
        if p.default is not inspect.Parameter.empty:
            default_name = f"{_PREFIX}default_{i}"
            defaults[default_name] = p.default
            text += f"={default_name}"
        parts.append(text)
        last_positional_only = p.kind is inspect.Parameter.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not inspect.Parameter.POSITIONAL_ONLY)
        if last_positional_only:
            parts.append("/")
    names = [p.name for p in params]
    fields = {
        "params": ", ".join(parts),
        "call": ", ".join(names),
        "used": "{" + ", ".join(f"{n!r}: {value_of(n)}" for n in names) + "}",
        "first_arg": names[0] if names else "None",
    }
    return fields, defaults


GENERIC = {
    "params": "*args, **kwargs",
    "call": "*args, **kwargs",
    "used": "_fc_inputs(args, kwargs)",
    "first_arg": "(args[0] if args else None)",
}


def compile_function(source: str, name: str, label: str, namespace: dict[str, Any]) -> Callable:
    """Compile ``source`` (defining the function ``name``) with ``namespace`` as its globals; returns the function.

    ``label`` names the code object's file in tracebacks (``<flowcept LABEL>``).
    """
    scope = dict(namespace)
    exec(compile(source, f"<flowcept {label}>", "exec"), scope)  # noqa: S102 - our own templates, no user text
    return scope[name]


def generate(source: str, func: Callable, namespace: dict[str, Any]) -> Callable:
    """Compile ``source`` (a ``def _fc_wrapper(...)``, see :func:`signature_fields`) for ``func`` with ``namespace``
    (constants and the defaults :func:`signature_fields` named) as its globals."""
    return compile_function(source, "_fc_wrapper", f"wrapper of {getattr(func, '__qualname__', func)!s}", namespace)
