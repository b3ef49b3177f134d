"""Argument naming, computed once at decoration time so each call only zips names with values."""

from __future__ import annotations

import inspect
from typing import Any, Callable

Binder = Callable[[tuple, dict], dict]
_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional_fallback(args: tuple, kwargs: dict) -> dict:
    used = {f"arg_{i}": a for i, a in enumerate(args)}
    used.update(kwargs)
    return used


def make_binder(func: Callable) -> Binder:
    """A function ``(args, kwargs) -> {parameter name: value}`` for calls of ``func``, defaults included."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return _positional_fallback
    params = list(sig.parameters.values())
    if all(p.kind in _POSITIONAL for p in params):
        names = tuple(p.name for p in params)
        defaults = tuple((p.name, p.default) for p in params if p.default is not _EMPTY)
        n_names = len(names)
        if not defaults:
            def bind(args: tuple, kwargs: dict) -> dict:
                used = dict(zip(names, args))
                if kwargs:
                    used.update(kwargs)
                if len(args) > n_names:
                    used.update((f"arg_{i}", a) for i, a in enumerate(args) if i >= n_names)
                return used
            return bind

        def bind_with_defaults(args: tuple, kwargs: dict) -> dict:
            used = dict(zip(names, args))
            if kwargs:
                used.update(kwargs)
            if len(used) < n_names:
                for name, value in defaults:
                    if name not in used:
                        used[name] = value
            return used
        return bind_with_defaults

    def bind_general(args: tuple, kwargs: dict) -> dict:
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError:
            return _positional_fallback(args, kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)
    return bind_general


def make_output_mapper(output_names: Any, args_handler: Callable | None) -> Callable[[Any], dict | None]:
    """A function turning a return value into the ``generated`` dict, per ``output_names``."""
    if isinstance(output_names, str):
        names: tuple = (output_names,)
    elif output_names:
        names = tuple(output_names)
    else:
        names = ()

    def wrap(result: Any) -> dict | None:
        if result is None:
            return None
        if type(result) is dict:
            return args_handler(**result) if args_handler is not None else result
        if names:
            if len(names) == 1:
                return {names[0]: result}
            if isinstance(result, (tuple, list)) and len(result) == len(names):
                return dict(zip(names, result))
        if args_handler is not None:
            return args_handler(result)
        return {"arg_0": result}
    return wrap
