"""Data observability adapters: observe another tool (Dask, MLflow, TensorBoard, an MQTT broker) and emit its
activity as task records through the running pipeline.

::

    Flowcept(interceptors=[...]) ──resolve_adapters──▶ [AdapterSpec(key, kind, cfg)]   (constructor: bad config,
                                                          │                              missing extra -> ConfigError)
                                                     make_adapter ──▶ Adapter.check()  (start(), before the pipeline)
                                                                       Adapter.start(scope) ... emit(record, scope)
                                                                       Adapter.stop()   (stop(), before the flush)

Each kind lives in its own module, imported only when configured: ``import flowcept`` never imports dask,
mlflow, tensorboard or paho.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from flowcept.adapters._specs import EXTRAS, KINDS, canonical_kind, validate_adapter
from flowcept.errors import ConfigError

__all__ = ["ADAPTER_KINDS", "AdapterSpec", "make_adapter", "resolve_adapters"]

#: kind -> "module:class" of its adapter.
ADAPTER_KINDS = {
    "dask": "flowcept.adapters.dask:DaskAdapter",
    "mlflow": "flowcept.adapters.mlflow:MLflowAdapter",
    "tensorboard": "flowcept.adapters.tensorboard:TensorboardAdapter",
    "broker": "flowcept.adapters.mqtt:MQTTAdapter",
}
#: Keyword arguments of ``Flowcept(...)`` each kind takes.
KIND_KWARGS = {"dask": {"dask_client"}}
#: Interceptor names accepted for compatibility that start nothing on the client side.
NO_OP_INTERCEPTORS = frozenset({"dask_worker"})


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter to run: its settings key, kind, and settings (defaults filled in)."""

    key: str
    kind: str
    cfg: dict = field(default_factory=dict)


def resolve_adapters(names: list[str], adapters_settings: dict) -> list[AdapterSpec]:
    """The adapters named by ``Flowcept(interceptors=names)``.

    A name is an ``adapters.<key>`` of the settings, or a kind: then every configured adapter of that kind runs
    (several instances of one kind), or one with the kind's defaults when none is configured.

    Raises:
        ConfigError: a name that is neither a settings key nor a kind.
    """
    specs: list[AdapterSpec] = []
    for name in names:
        if name == "instrumentation" or name in NO_OP_INTERCEPTORS:
            continue
        if name in adapters_settings:
            cfg = validate_adapter(name, adapters_settings[name])
            specs.append(AdapterSpec(name, cfg["kind"], cfg))
            continue
        kind = canonical_kind(name)
        if kind not in KINDS:
            known = sorted({"instrumentation", *KINDS, "broker_mqtt", *adapters_settings})
            raise ConfigError(f"unknown interceptor {name!r}; known: {', '.join(known)}", key="interceptors")
        configured = [key for key, spec in adapters_settings.items()
                      if isinstance(spec, dict) and canonical_kind(str(spec.get("kind"))) == kind]
        if configured:
            specs.extend(AdapterSpec(key, kind, validate_adapter(key, adapters_settings[key])) for key in configured)
        else:
            specs.append(AdapterSpec(name, kind, validate_adapter(name, {"kind": kind})))
    seen: set = set()
    return [s for s in specs if not (s.key in seen or seen.add(s.key))]


def make_adapter(spec: AdapterSpec, kwargs: dict[str, Any]):
    """Build the adapter of ``spec`` (imports its module, hence its library).

    Raises:
        ConfigError: the kind's library is missing (the message names the pip extra), or an argument is missing.
    """
    module, _, attr = ADAPTER_KINDS[spec.kind].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        missing = exc.__cause__.name if isinstance(exc.__cause__, ImportError) else exc.name
        if missing and missing.startswith("flowcept"):
            raise  # our own bug, not a missing extra
        raise ConfigError(f"the {spec.kind!r} adapter needs {missing or 'a library'}, which is not installed: "
                          f"pip install 'flowcept[{EXTRAS[spec.kind]}]'", key=f"adapters.{spec.key}") from None
    own = {k: v for k, v in kwargs.items() if k in KIND_KWARGS.get(spec.kind, ())}
    return cls(spec.key, spec.cfg, **own)
