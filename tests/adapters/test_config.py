"""Adapter configuration: settings per kind, interceptor names, failures before any pipeline opens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowcept import Flowcept
from flowcept.errors import ConfigError
from flowcept.settings import load_settings
from tests.conftest import write_settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": SRC, "HOME": str(cwd), "PATH": "/usr/bin:/bin"})


class TestAdapterSettings:
    def test_defaults_filled_per_kind(self, tmp_path):
        """An adapters.<key> section takes its kind's defaults for the keys it leaves out."""
        from flowcept.adapters import resolve_adapters

        path = tmp_path / "s.yaml"
        path.write_text("adapters:\n  tb:\n    kind: tensorboard\n    file_path: logs\n")
        settings = load_settings(str(path), env={})
        (spec,) = resolve_adapters(["tb"], settings.adapters)
        assert (spec.key, spec.kind) == ("tb", "tensorboard")
        assert spec.cfg["file_path"] == "logs" and spec.cfg["watch_interval_sec"] == 5.0
        assert spec.cfg["log_tags"] == ["scalars", "hparams", "tensors"]

    @pytest.mark.parametrize("text, key", [
        ("adapters:\n  x:\n    kind: zeppelin\n", "adapters.x.kind"),
        ("adapters:\n  x:\n    file_path: a\n", "adapters.x.kind"),
        ("adapters:\n  x:\n    kind: mlflow\n    file_pth: a.db\n", "adapters.x.file_pth"),
        ("adapters:\n  x:\n    kind: mlflow\n    watch_interval_sec: fast\n", "adapters.x.watch_interval_sec"),
        ("adapters:\n  x:\n    kind: dask\n    worker_should_get_input: 1\n", "adapters.x.worker_should_get_input"),
        ("adapters:\n  x:\n    kind: broker\n    protocol: mqtt2\n", "adapters.x.protocol"),
    ])
    def test_bad_section_names_the_key(self, tmp_path, text, key):
        """Unknown kinds, unknown keys and wrong types fail when the settings load, naming the key."""
        path = tmp_path / "s.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_settings(str(path), env={})
        assert err.value.key == key and str(path) in str(err.value)

    def test_unknown_interceptor(self):
        """An interceptor that is neither an adapter key nor a kind is a ConfigError listing the known ones."""
        with pytest.raises(ConfigError, match="unknown interceptor 'spark'.*mlflow"):
            Flowcept(interceptors=["instrumentation", "spark"])

    def test_kind_runs_every_configured_instance(self, tmp_path, monkeypatch):
        """Naming a kind runs every adapters.<key> of that kind; naming a key runs that one."""
        from flowcept.adapters import resolve_adapters

        write_settings(tmp_path, "adapters:\n  a:\n    kind: tensorboard\n  b:\n    kind: tensorboard\n"
                                 "  c:\n    kind: mlflow\n", monkeypatch)
        from flowcept.settings import get_settings

        adapters = get_settings().adapters
        assert [s.key for s in resolve_adapters(["tensorboard"], adapters)] == ["a", "b"]
        assert [s.key for s in resolve_adapters(["b", "mlflow"], adapters)] == ["b", "c"]
        assert [(s.key, s.kind) for s in resolve_adapters(["broker_mqtt"], {})] == [("broker_mqtt", "broker")]


class TestIsolation:
    def test_import_flowcept_stays_light(self, tmp_path):
        """`import flowcept` (and the settings with adapters) imports none of dask, mlflow, tbparse, paho."""
        out = run_python("import sys, flowcept; from flowcept.adapters import resolve_adapters; "
                         "print(sorted(m for m in ('dask', 'distributed', 'mlflow', 'tbparse', 'tensorboard', "
                         "'paho') if m in sys.modules))", tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]"

    @pytest.mark.parametrize("kind, module, extra", [("dask", "distributed", "dask"), ("mlflow", "mlflow", "mlflow"),
                                                     ("tensorboard", "tbparse", "tensorboard"),
                                                     ("broker_mqtt", "paho", "mqtt")])
    def test_missing_extra_names_the_pip_install(self, tmp_path, kind, module, extra):
        """Without the adapter's library, the constructor fails naming `pip install 'flowcept[<extra>]'`."""
        code = (f"import sys; sys.modules[{module!r}] = None\n"
                "from flowcept import Flowcept\nfrom flowcept.errors import ConfigError\n"
                f"try:\n    Flowcept(interceptors=[{kind!r}], **({{'dask_client': 1}} if {kind!r} == 'dask' else {{}}))\n"
                "except ConfigError as exc:\n    print(exc.key, '|', exc)\n")
        out = run_python(code, tmp_path)
        assert out.returncode == 0, out.stderr
        assert f"pip install 'flowcept[{extra}]'" in out.stdout and out.stdout.startswith("adapters.")
