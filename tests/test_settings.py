"""Tests of settings lookup, validation, env overrides and the compatibility constants."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest

from flowcept.errors import ConfigError
from flowcept.settings import (
    DEFAULT_SETTINGS_SENTINEL,
    ENV_VARS,
    FlowceptSettingsWarning,
    Settings,
    get_settings,
    load_settings,
    reload_settings,
    settings_from_dict,
)

REFERENCE_FILE = """\
flowcept_version: 1.0.3
project:
  debug: true
  json_serializer: default
  replace_non_json_serializable: true
  performance_logging: false
  enrich_messages: false
  db_flush_mode: offline
  dump_buffer:
    enabled: false
    path: flowcept_buffer.jsonl
    append_id_to_path: true
    append_workflow_id_to_path: true
    delete_previous_file: false
log:
  log_path: "default"
  log_file_level: error
  log_stream_level: error
telemetry_capture:
  gpu: ~
  cpu: true
  per_cpu: true
  process_info: true
  mem: true
  disk: true
  network: true
  machine_info: true
instrumentation:
  enabled: true
  torch:
    what: parent_and_children
    children_mode: telemetry_and_tensor_inspection
    epoch_loop: lightweight
    batch_loop: lightweight
    capture_epochs_at_every: 1
    register_workflow: true
experiment:
  user: root
mq:
  enabled: false
  type: redis
  host: localhost
  port: 6379
  uri: ~
  password: ~
  username: guest
  vhost: /
  group_id: auto
  group_file: ~
  instances: ["localhost:6379"]
  channel: interception
  buffer_size: 50
  insertion_buffer_time_secs: 5
  timing: false
  chunk_size: -1
  same_as_kvdb: false
  bin: ~
  conf_file: ~
kv_db:
  enabled: false
  host: localhost
  port: 6379
  uri: ~
  password: ~
web_server:
  host: 127.0.0.1
  port: 8008
  ui_enabled: true
  cors_origins: []
  sse_poll_interval_sec: 2.0
  sse_max_batch: 500
  dashboards_dir: ~/.flowcept/dashboards
  max_label_length: 30
sys_metadata:
  environment_id: "laptop"
  sys_name: Linux
  node_name: node1
  login_name: alice
  public_ip: 1.2.3.4
  private_ip: 10.0.0.4
extra_metadata:
  place_holder: ""
db_buffer:
  insertion_buffer_time_secs: 5
  buffer_size: 50
  remove_empty_fields: false
  stop_max_trials: 300
  stop_trials_sleep: 0.1
agent:
  enabled: false
  mcp_host: localhost
  mcp_port: 8000
  mcp_allowed_hosts: ["localhost"]
  mcp_allowed_origins: ["http://localhost"]
  llm_server_url: "?"
  api_key: "?"
  model: "?"
  service_provider: "?"
  model_kwargs: {}
  audio_enabled: false
  debug: true
  start_persistence: false
  chat_enabled: true
  chat_max_tool_iterations: 5
  chat_max_query_limit: 1000
  chat_max_tool_result_chars: 4000
  agent_mode: disabled
databases:
  lmdb:
    enabled: false
    path: flowcept_lmdb
  mongodb:
    enabled: false
    host: localhost
    port: 27017
    uri: ~
    db: flowcept
    create_collection_index: true
    bin: ~
    db_path: ~
    log_path: ~
    lock_file_path: ~
adapters:
  broker_mqtt:
    kind: broker
    host: h
    port: 30011
    protocol: mqtt3.1.1
    queues: ["#"]
    username: u
    password: p
    qos: 2
    task_subtype: intersect_msg
    tracked_keys:
      used: payload
  mlflow:
    kind: mlflow
    file_path: mlflow.db
    log_params: ['*']
    log_metrics: ['*']
    watch_interval_sec: 1
  tensorboard:
    kind: tensorboard
    file_path: tensorboard_events
    log_tags: [scalars, hparams, tensors]
    log_metrics: [accuracy]
    watch_interval_sec: 5
  dask:
    kind: dask
    worker_should_get_input: true
    worker_should_get_output: true
    worker_create_timestamps: false
    scheduler_should_get_input: true
    scheduler_create_timestamps: true
"""

IGNORED_IN_REFERENCE_FILE = [
    "project.debug", "project.json_serializer", "project.performance_logging",
    "mq.group_file", "mq.instances", "mq.timing", "mq.chunk_size",
    "mq.same_as_kvdb", "mq.bin", "mq.conf_file",
    "kv_db.enabled", "kv_db.host", "kv_db.port", "kv_db.uri", "kv_db.password",
    "web_server.ui_enabled", "web_server.cors_origins", "web_server.dashboards_dir", "web_server.max_label_length",
    "db_buffer.insertion_buffer_time_secs", "db_buffer.buffer_size", "db_buffer.remove_empty_fields",
    "db_buffer.stop_max_trials", "db_buffer.stop_trials_sleep",
    "agent.enabled", "agent.mcp_host", "agent.mcp_port", "agent.mcp_allowed_hosts", "agent.mcp_allowed_origins",
    "agent.llm_server_url", "agent.api_key", "agent.model", "agent.service_provider", "agent.model_kwargs",
    "agent.audio_enabled", "agent.debug", "agent.start_persistence", "agent.chat_enabled",
    "agent.chat_max_tool_iterations", "agent.chat_max_query_limit", "agent.chat_max_tool_result_chars",
    "agent.agent_mode",
    "databases.mongodb.enabled", "databases.mongodb.host", "databases.mongodb.port", "databases.mongodb.uri",
    "databases.mongodb.db", "databases.mongodb.create_collection_index", "databases.mongodb.bin",
    "databases.mongodb.db_path", "databases.mongodb.log_path", "databases.mongodb.lock_file_path",
    "databases.lmdb.enabled", "databases.lmdb.path",
]


@pytest.fixture(name="clean_env", autouse=True)
def fixture_clean_env(monkeypatch, tmp_path):
    """Remove every flowcept env var and point HOME at an empty folder."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    yield home
    reload_settings_quietly()


def reload_settings_quietly():
    import flowcept.settings as module

    module._cached = None


def write(tmp_path, text, name="settings.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load_quiet(path=None, env=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FlowceptSettingsWarning)
        return load_settings(path, env=env)


class TestDefaults:
    def test_no_file_gives_the_defaults(self, clean_env):
        """Without a settings file every key has its built-in default and the path is the sentinel."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            s = load_settings()
        assert s.path == DEFAULT_SETTINGS_SENTINEL
        assert s.project.name == "flowcept"
        assert s.project.db_flush_mode == "online"
        assert s.project.replace_non_json_serializable is True
        assert s.project.enrich_messages is False
        assert s.project.dump_buffer.enabled is True
        assert s.project.dump_buffer.path == "flowcept_buffer.jsonl"
        assert s.project.dump_buffer.append_id_to_path is False
        assert s.project.dump_buffer.append_workflow_id_to_path is False
        assert s.project.dump_buffer.delete_previous_file is True
        assert (s.log.log_path, s.log.log_file_level, s.log.log_stream_level) == ("default", "disable", "warning")
        assert s.telemetry_capture.gpu is None
        assert s.telemetry_capture.cpu is False
        assert s.telemetry_capture.enabled is False
        assert s.instrumentation.enabled is True
        assert s.instrumentation.torch.what == "parent_and_children"
        assert s.instrumentation.torch.children_mode == "telemetry_and_tensor_inspection"
        assert s.instrumentation.torch.capture_epochs_at_every == 1
        assert s.mq.enabled is False
        assert (s.mq.type, s.mq.host, s.mq.port, s.mq.uri, s.mq.channel) == (
            "redis", "localhost", 6379, None, "interception")
        assert (s.mq.buffer_size, s.mq.insertion_buffer_time_secs) == (50, 5)
        assert (s.mq.spill_path, s.mq.reconnect_deadline_secs) == ("flowcept_spill.jsonl", 2.0)
        assert s.databases.sqlite.enabled is True
        assert s.databases.sqlite.path == os.path.join(str(clean_env), ".flowcept", "flowcept.sqlite")
        assert s.databases.postgres.enabled is False
        assert s.databases.store_kind == "sqlite"
        assert dataclasses.asdict(s.buffer) == {
            "batch_size": 2000, "flush_interval_secs": 0.1, "max_size": 20000, "full_wait_secs": 5.0,
            "stop_timeout_secs": 60.0,
        }
        assert s.extra_metadata == {} and s.adapters == {}

    def test_settings_are_frozen_and_picklable(self):
        """Settings cannot be assigned to and survive a pickle round trip."""
        s = load_settings(env={})
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.project.name = "x"
        assert pickle.loads(pickle.dumps(s)) == s

    def test_default_file_in_home_is_read(self, clean_env):
        """~/.flowcept/settings.yaml is read when FLOWCEPT_SETTINGS_PATH is unset."""
        (clean_env / ".flowcept").mkdir()
        (clean_env / ".flowcept" / "settings.yaml").write_text("project:\n  name: fromhome\n")
        s = load_settings()
        assert s.project.name == "fromhome"
        assert s.path == str(clean_env / ".flowcept" / "settings.yaml")

    def test_use_default_ignores_file_and_env(self, tmp_path, monkeypatch):
        """FLOWCEPT_USE_DEFAULT ignores the settings file and every env override."""
        path = write(tmp_path, "project:\n  name: fromfile\n")
        monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", path)
        monkeypatch.setenv("FLOWCEPT_USE_DEFAULT", "yes")
        monkeypatch.setenv("MQ_HOST", "elsewhere")
        s = load_settings()
        assert s.path == DEFAULT_SETTINGS_SENTINEL
        assert s.project.name == "flowcept"
        assert s.mq.host == "localhost"

    def test_missing_file_from_env_warns_and_uses_defaults(self, tmp_path, monkeypatch):
        """A FLOWCEPT_SETTINGS_PATH that does not exist gives the defaults, with a warning."""
        monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", str(tmp_path / "nope.yaml"))
        monkeypatch.setenv("MQ_PORT", "7000")
        with pytest.warns(FlowceptSettingsWarning, match="nope.yaml"):
            s = load_settings()
        assert s.path == DEFAULT_SETTINGS_SENTINEL
        assert s.mq.port == 7000

    def test_explicit_missing_path_is_an_error(self, tmp_path):
        """An explicit path that does not exist is a ConfigError naming it."""
        missing = str(tmp_path / "nope.yaml")
        with pytest.raises(ConfigError, match="not found") as info:
            load_settings(missing, env={})
        assert info.value.path == missing


class TestFile:
    def test_partial_sections_take_defaults_keywise(self, tmp_path):
        """A section that sets one key keeps the defaults of its other keys."""
        path = write(tmp_path, """
            project:
              dump_buffer:
                path: out.jsonl
            buffer:
              batch_size: 10
        """)
        s = load_settings(path, env={})
        assert s.path == path
        assert s.project.dump_buffer.path == "out.jsonl"
        assert s.project.dump_buffer.enabled is True
        assert s.project.name == "flowcept"
        assert s.buffer.batch_size == 10
        assert s.buffer.max_size == 20000

    def test_reference_file_loads_with_one_warning(self, tmp_path):
        """A reference-style file with every key loads and warns once, naming every ignored key."""
        path = write(tmp_path, REFERENCE_FILE)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = load_settings(path, env={})
        assert len(caught) == 1
        assert caught[0].category is FlowceptSettingsWarning
        message = str(caught[0].message)
        assert message.startswith(path + ": ")
        named = message.split("not acted on by this flowcept: ", 1)[1].split(", ")
        assert named == IGNORED_IN_REFERENCE_FILE
        assert s.flowcept_version == "1.0.3"
        assert s.project.db_flush_mode == "offline"
        assert s.project.dump_buffer.enabled is False
        assert s.project.dump_buffer.append_id_to_path is True
        assert s.project.dump_buffer.delete_previous_file is False
        assert s.log.log_file_level == "error"
        assert s.telemetry_capture.cpu is True and s.telemetry_capture.enabled is True
        assert s.experiment.user == "root"
        assert s.mq.instances == ["localhost:6379"]
        assert s.mq.insertion_buffer_time_secs == 5.0
        assert s.kv_db.port == 6379
        assert s.web_server.cors_origins == []
        assert s.sys_metadata.environment_id == "laptop"
        assert s.sys_metadata.login_name == "alice"
        assert s.extra_metadata == {"place_holder": ""}
        assert s.db_buffer.stop_max_trials == 300
        assert s.agent.mcp_allowed_hosts == ["localhost"]
        assert s.databases.mongodb.port == 27017
        assert s.databases.sqlite.enabled is True
        assert sorted(s.adapters) == ["broker_mqtt", "dask", "mlflow", "tensorboard"]
        assert s.adapters["mlflow"] == {"kind": "mlflow", "file_path": "mlflow.db", "log_params": ["*"],
                                        "log_metrics": ["*"], "watch_interval_sec": 1}

    def test_used_keys_only_give_no_warning(self, tmp_path):
        """A file with only acted-on keys loads without any warning."""
        path = write(tmp_path, "mq:\n  enabled: true\n  host: h\nproject:\n  db_flush_mode: offline\n")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            s = load_settings(path, env={})
        assert (s.mq.enabled, s.mq.host, s.project.db_flush_mode) == (True, "h", "offline")

    def test_empty_file_gives_defaults(self, tmp_path):
        """An empty settings file means the defaults, with the file as path."""
        path = write(tmp_path, "")
        s = load_settings(path, env={})
        assert s.path == path
        assert s.to_dict() == load_settings(env={}).to_dict()

    def test_empty_section_gives_defaults(self, tmp_path):
        """A section with no keys (YAML null) takes all its defaults."""
        path = write(tmp_path, "telemetry_capture:\nproject:\n")
        s = load_settings(path, env={})
        assert s.telemetry_capture.enabled is False
        assert s.project.db_flush_mode == "online"

    def test_offline_mode(self, tmp_path):
        """db_flush_mode offline means no store: store_kind still reports the configured database."""
        path = write(tmp_path, "project:\n  db_flush_mode: offline\n")
        s = load_settings(path, env={})
        assert s.project.db_flush_mode == "offline"
        assert s.project.dump_buffer.enabled is True

    def test_interpolation_from_env(self, tmp_path):
        """${oc.env:VAR,default} and ${oc.env:VAR} resolve from the environment, typed as YAML."""
        path = write(tmp_path, """
            mq:
              port: ${oc.env:MY_PORT,6390}
              host: ${oc.env:MY_HOST}
              channel: "chan-${oc.env:MY_SUFFIX,x}"
        """)
        s = load_settings(path, env={"MY_HOST": "broker", "MY_SUFFIX": "7"})
        assert (s.mq.port, s.mq.host, s.mq.channel) == (6390, "broker", "chan-7")
        s = load_settings(path, env={"MY_HOST": "broker", "MY_PORT": "7001"})
        assert (s.mq.port, s.mq.channel) == (7001, "chan-x")

    def test_interpolation_of_unset_var_without_default(self, tmp_path):
        """An ${oc.env:VAR} with VAR unset and no default is a ConfigError naming the key."""
        path = write(tmp_path, "mq:\n  host: ${oc.env:NOT_SET_ANYWHERE}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert info.value.key == "mq.host"
        assert "NOT_SET_ANYWHERE" in str(info.value)

    def test_unsupported_interpolation(self, tmp_path):
        """Interpolations other than oc.env are a ConfigError."""
        path = write(tmp_path, "mq:\n  host: ${mq.uri}\n")
        with pytest.raises(ConfigError, match="unsupported interpolation") as info:
            load_settings(path, env={})
        assert info.value.key == "mq.host"


class TestErrors:
    @pytest.mark.parametrize("text, message", [
        ("buffer:\n  flush_interval_secs: 0\n", "buffer.flush_interval_secs: must be >= 0.001, got 0"),
        ("buffer:\n  flush_interval_secs: .nan\n", "buffer.flush_interval_secs: must be a number, got nan"),
        ("buffer:\n  stop_timeout_secs: .nan\n", "buffer.stop_timeout_secs: must be a number, got nan"),
    ])
    def test_intervals_that_would_spin_or_never_compare(self, tmp_path, text, message):
        """A zero flush interval (the flusher would spin a core) and NaN timeouts are refused, naming the key."""
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert str(info.value).startswith(message)

    def test_unknown_top_level_key_suggests(self, tmp_path):
        """A misspelt section is an error naming the key, the closest known key and the file."""
        path = write(tmp_path, "projetc:\n  name: x\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert info.value.key == "projetc"
        assert info.value.path == path
        assert str(info.value) == (
            f"projetc: unknown settings key 'projetc'; did you mean 'project'? (in {path})")

    def test_unknown_nested_key_suggests(self, tmp_path):
        """A misspelt nested key is an error suggesting the dotted known key."""
        path = write(tmp_path, "project:\n  db_flush_mod: offline\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert info.value.key == "project.db_flush_mod"
        assert "unknown settings key 'project.db_flush_mod'" in str(info.value)
        assert "did you mean 'project.db_flush_mode'?" in str(info.value)
        assert path in str(info.value)

    def test_key_in_wrong_section_suggests_its_home(self, tmp_path):
        """A known key placed in the wrong section is pointed at its real place."""
        path = write(tmp_path, "db_flush_mode: offline\n")
        with pytest.raises(ConfigError, match="did you mean 'project.db_flush_mode'"):
            load_settings(path, env={})

    def test_hidden_fields_are_not_file_keys(self, tmp_path):
        """The loader-owned fields (path, telemetry env switch) cannot be set from the file."""
        path = write(tmp_path, "path: x\n")
        with pytest.raises(ConfigError, match="unknown settings key 'path'"):
            load_settings(path, env={})

    @pytest.mark.parametrize(("text", "key", "expected"), [
        ("buffer:\n  batch_size: ten\n", "buffer.batch_size", "expected an integer, got str 'ten'"),
        ("mq:\n  port: abc\n", "mq.port", "expected an integer, got str 'abc'"),
        ("mq:\n  enabled: maybe\n", "mq.enabled", "expected a boolean (true/false), got str 'maybe'"),
        ("buffer:\n  batch_size: true\n", "buffer.batch_size", "expected an integer, got bool True"),
        ("buffer:\n  flush_interval_secs: soon\n", "buffer.flush_interval_secs", "expected a number"),
        ("telemetry_capture:\n  gpu: true\n", "telemetry_capture.gpu", "expected a list, got bool True"),
        ("telemetry_capture:\n  gpu: [1, 2]\n", "telemetry_capture.gpu", "expected a list of strings"),
        ("project: 3\n", "project", "expected a mapping (a section), got int 3"),
        ("mq:\n  host: ~\n", "mq.host", "expected a string, got null"),
        ("buffer:\n  batch_size: 0\n", "buffer.batch_size", "must be >= 1, got 0"),
        ("mq:\n  port: 70000\n", "mq.port", "must be <= 65535, got 70000"),
    ])
    def test_wrong_types(self, tmp_path, text, key, expected):
        """A value of the wrong type or range is a ConfigError naming key, expectation and file."""
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert info.value.key == key
        assert info.value.path == path
        assert expected in str(info.value)
        assert str(info.value).endswith(f"(in {path})")

    def test_invalid_enum_lists_allowed_values(self, tmp_path):
        """An invalid db_flush_mode lists the allowed values."""
        path = write(tmp_path, "project:\n  db_flush_mode: sometimes\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert str(info.value) == (
            f"project.db_flush_mode: invalid value 'sometimes'; allowed values: 'online', 'offline' (in {path})")

    @pytest.mark.parametrize("kind", ["kafka", "mofka"])
    def test_unsupported_mq_types(self, tmp_path, kind):
        """kafka and mofka are refused with a pointer to redis."""
        path = write(tmp_path, f"mq:\n  type: {kind}\n")
        with pytest.raises(ConfigError, match=f"'{kind}' is not supported.*use 'redis'") as info:
            load_settings(path, env={})
        assert info.value.key == "mq.type"

    def test_invalid_yaml(self, tmp_path):
        """A file that is not YAML is a ConfigError naming the file."""
        path = write(tmp_path, "project: [unclosed\n")
        with pytest.raises(ConfigError, match="not valid YAML") as info:
            load_settings(path, env={})
        assert info.value.path == path
        assert path in str(info.value)

    def test_top_level_not_a_mapping(self, tmp_path):
        """A file whose top level is a list is a ConfigError naming the file."""
        path = write(tmp_path, "- a\n- b\n")
        with pytest.raises(ConfigError, match="mapping at the top level, got list") as info:
            load_settings(path, env={})
        assert info.value.path == path

    def test_adapter_without_kind(self, tmp_path):
        """Every adapter needs a kind."""
        path = write(tmp_path, "adapters:\n  mlflow:\n    file_path: x.db\n")
        with pytest.raises(ConfigError, match="needs a 'kind'") as info:
            load_settings(path, env={})
        assert info.value.key == "adapters.mlflow.kind"

    def test_bad_mq_uri_scheme(self):
        """An MQ URI that is not a Redis one is refused, without echoing its password."""
        with pytest.raises(ConfigError, match="redis://") as info:
            settings_from_dict({"mq": {"uri": "amqp://u:secretpw@h/"}}, env={})
        assert "secretpw" not in str(info.value)

    def test_config_error_pickles(self, tmp_path):
        """Settings errors cross process boundaries intact."""
        path = write(tmp_path, "projetc: 1\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        again = pickle.loads(pickle.dumps(info.value))
        assert (str(again), again.key, again.path) == (str(info.value), "projetc", path)


class TestEnv:
    def test_env_overrides_win_over_file(self, tmp_path):
        """Env overrides replace file values, converting ints, floats and bools."""
        path = write(tmp_path, "mq:\n  host: filehost\n  port: 1111\nbuffer:\n  batch_size: 5\n")
        env = {
            "MQ_ENABLED": "yes", "MQ_TYPE": "redis", "MQ_HOST": "envhost", "MQ_PORT": "6380",
            "MQ_URI": "rediss://:pw@h:6380/0", "MQ_PASSWORD": "pw", "MQ_CHANNEL": "c",
            "DB_FLUSH_MODE": "offline", "DUMP_BUFFER": "0", "INSTRUMENTATION_ENABLED": "f",
            "FLOWCEPT_SQLITE_ENABLED": "n", "FLOWCEPT_SQLITE_PATH": "~/db.sqlite",
            "FLOWCEPT_POSTGRES_ENABLED": "T", "FLOWCEPT_POSTGRES_HOST": "pg", "FLOWCEPT_POSTGRES_PORT": "5433",
            "FLOWCEPT_POSTGRES_USER": "u", "FLOWCEPT_POSTGRES_PASSWORD": "p", "FLOWCEPT_POSTGRES_DBNAME": "d",
            "FLOWCEPT_BUFFER_BATCH_SIZE": "10", "FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS": "0.5",
            "FLOWCEPT_BUFFER_MAX_SIZE": "100", "FLOWCEPT_BUFFER_FULL_WAIT_SECS": "1",
            "FLOWCEPT_BUFFER_STOP_TIMEOUT_SECS": "2.5", "HOME": "/home/someone",
        }
        s = load_settings(path, env=env)
        assert (s.mq.enabled, s.mq.host, s.mq.port, s.mq.uri, s.mq.password, s.mq.channel) == (
            True, "envhost", 6380, "rediss://:pw@h:6380/0", "pw", "c")
        assert s.project.db_flush_mode == "offline"
        assert s.project.dump_buffer.enabled is False
        assert s.instrumentation.enabled is False
        assert s.databases.sqlite.enabled is False
        assert s.databases.sqlite.path == os.path.expanduser("~/db.sqlite")
        assert s.databases.postgres.enabled is True
        assert s.databases.store_kind == "postgres"
        assert s.databases.postgres.dsn == "postgresql://u:p@pg:5433/d"
        assert dataclasses.astuple(s.buffer) == (10, 0.5, 100, 1.0, 2.5)

    def test_env_applies_from_os_environ(self, monkeypatch):
        """With no env argument, os.environ is used."""
        monkeypatch.setenv("FLOWCEPT_BUFFER_BATCH_SIZE", "7")
        assert load_settings().buffer.batch_size == 7

    @pytest.mark.parametrize(("var", "value", "key", "expected"), [
        ("MQ_PORT", "abc", "mq.port", "expected an integer from env MQ_PORT, got 'abc'"),
        ("MQ_ENABLED", "sure", "mq.enabled", "expected a boolean (1/true/yes/y/t or 0/false/no/n/f) from env"),
        ("FLOWCEPT_BUFFER_FULL_WAIT_SECS", "x", "buffer.full_wait_secs", "expected a number from env"),
        ("DB_FLUSH_MODE", "later", "project.db_flush_mode", "allowed values: 'online', 'offline'"),
        ("MQ_TYPE", "kafka", "mq.type", "'kafka' is not supported"),
    ])
    def test_bad_env_values(self, var, value, key, expected):
        """A bad env value is a ConfigError naming the key and the variable."""
        with pytest.raises(ConfigError) as info:
            load_settings(env={var: value})
        assert info.value.key == key
        assert expected in str(info.value)

    def test_telemetry_env_switch(self, tmp_path):
        """TELEMETRY_ENABLED false turns telemetry off even with metrics on; no metric means off."""
        path = write(tmp_path, "telemetry_capture:\n  cpu: true\n")
        assert load_settings(path, env={}).telemetry_capture.enabled is True
        assert load_settings(path, env={"TELEMETRY_ENABLED": "false"}).telemetry_capture.enabled is False
        assert load_settings(env={"TELEMETRY_ENABLED": "1"}).telemetry_capture.enabled is False
        gpu = settings_from_dict({"telemetry_capture": {"gpu": ["used"]}}, env={})
        assert gpu.telemetry_capture.enabled is True

    def test_empty_env_means_unset_for_optional_keys(self):
        """An empty env var gives None for optional keys."""
        s = load_settings(env={"MQ_URI": "", "MQ_PASSWORD": ""})
        assert (s.mq.uri, s.mq.password) == (None, None)

    def test_json_list_env(self):
        """List-valued env vars take JSON lists or comma-separated values."""
        s = load_settings(env={"MCP_ALLOWED_HOSTS": '["a", "b"]', "MCP_ALLOWED_ORIGINS": "x, y"})
        assert (s.agent.mcp_allowed_hosts, s.agent.mcp_allowed_origins) == (["a", "b"], ["x", "y"])

    def test_get_and_reload(self, monkeypatch):
        """get_settings caches; reload_settings sees a changed environment."""
        first = get_settings()
        assert get_settings() is first
        monkeypatch.setenv("MQ_CHANNEL", "other")
        assert get_settings().mq.channel == "interception"
        assert reload_settings().mq.channel == "other"
        assert get_settings().mq.channel == "other"


class TestPostgresDsn:
    def test_dsn_from_parts(self):
        """The DSN is built from the parts, quoting user and password."""
        s = settings_from_dict({"databases": {"postgres": {
            "host": "db.example", "port": 6543, "user": "me@x", "password": "p:/@w", "dbname": "prov"}}}, env={})
        assert s.databases.postgres.dsn == "postgresql://me%40x:p%3A%2F%40w@db.example:6543/prov"

    def test_dsn_without_password(self):
        """Without a password the DSN carries the user only."""
        assert load_settings(env={}).databases.postgres.dsn == "postgresql://postgres@127.0.0.1:5432/flowcept"

    def test_uri_wins(self):
        """A configured URI is the DSN as given."""
        s = load_settings(env={"FLOWCEPT_POSTGRES_URI": "postgresql://a:b@h/db", "FLOWCEPT_POSTGRES_HOST": "x"})
        assert s.databases.postgres.dsn == "postgresql://a:b@h/db"

    def test_postgres_wins_over_sqlite(self):
        """With both stores enabled, postgres is the one used."""
        s = settings_from_dict({"databases": {"postgres": {"enabled": True}}}, env={})
        assert s.databases.sqlite.enabled is True
        assert s.databases.store_kind == "postgres"
        none = settings_from_dict({"databases": {"sqlite": {"enabled": False}}}, env={})
        assert none.databases.store_kind is None


class TestToDict:
    def test_redaction(self):
        """to_dict replaces secrets and URI passwords with REDACTED, and keeps them with redact=False."""
        data = {
            "mq": {"password": "mqpw", "uri": "redis://user:mqpw@h:6379/0"},
            "databases": {"postgres": {"password": "pgpw", "uri": "postgresql://u:pgpw@h/db"}},
            "extra_metadata": {"service_token": "tok", "nested": {"AWS_ACCESS_KEY": "ak"}, "plain": "ok"},
            "adapters": {"broker": {"kind": "broker", "password": "bp", "username": "bu"}},
        }
        s = load_quiet_dict(data)
        d = s.to_dict()
        assert d["mq"]["password"] == "REDACTED"
        assert d["mq"]["uri"] == "redis://user:REDACTED@h:6379/0"
        assert d["databases"]["postgres"]["password"] == "REDACTED"
        assert d["databases"]["postgres"]["uri"] == "postgresql://u:REDACTED@h/db"
        assert d["extra_metadata"] == {"service_token": "REDACTED", "nested": {"AWS_ACCESS_KEY": "REDACTED"},
                                       "plain": "ok"}
        assert d["adapters"]["broker"] == {"kind": "broker", "password": "REDACTED", "username": "bu"}
        assert d["kv_db"]["password"] is None
        assert d["agent"]["api_key"] is None
        raw = s.to_dict(redact=False)
        assert raw["mq"]["password"] == "mqpw"
        assert raw["extra_metadata"]["nested"] == {"AWS_ACCESS_KEY": "ak"}
        assert "path" not in d
        assert "env_enabled" not in d["telemetry_capture"]

    def test_round_trip(self):
        """to_dict(redact=False) fed back to settings_from_dict gives equal settings."""
        s = load_quiet(env={"MQ_PORT": "7777", "FLOWCEPT_BUFFER_MAX_SIZE": "9"})
        again = load_quiet_dict(s.to_dict(redact=False))
        assert again == s


def load_quiet_dict(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FlowceptSettingsWarning)
        return settings_from_dict(data, env={})


class TestConfigsModule:
    def test_constants(self, tmp_path, monkeypatch):
        """flowcept.configs exposes the reference constants from the settings."""
        path = write(tmp_path, REFERENCE_FILE)
        monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", path)
        monkeypatch.setenv("MQ_PORT", "6390")
        reload_settings_quietly()
        sys.modules.pop("flowcept.configs", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FlowceptSettingsWarning)
            configs = importlib.import_module("flowcept.configs")
        try:
            assert configs.SETTINGS_PATH == path
            assert (configs.PROJECT_NAME, configs.DB_FLUSH_MODE) == ("flowcept", "offline")
            assert (configs.MQ_ENABLED, configs.MQ_TYPE, configs.MQ_HOST, configs.MQ_PORT, configs.MQ_URI) == (
                False, "redis", "localhost", 6390, None)
            assert (configs.MQ_CHANNEL, configs.MQ_BUFFER_SIZE, configs.MQ_INSERTION_BUFFER_TIME) == (
                "interception", 50, 5.0)
            assert (configs.DUMP_BUFFER_ENABLED, configs.DUMP_BUFFER_PATH, configs.DUMP_BUFFER_APPEND_ID,
                    configs.DUMP_BUFFER_APPEND_WORKFLOW_ID, configs.DELETE_BUFFER_FILE) == (
                False, "flowcept_buffer.jsonl", True, True, False)
            assert configs.TELEMETRY_ENABLED is True
            assert configs.TELEMETRY_CAPTURE == {"gpu": None, "cpu": True, "per_cpu": True, "process_info": True,
                                                 "mem": True, "disk": True, "network": True, "machine_info": True}
            assert configs.INSTRUMENTATION_ENABLED is True
            assert configs.INSTRUMENTATION["torch"]["what"] == "parent_and_children"
            assert (configs.REPLACE_NON_JSON_SERIALIZABLE, configs.ENRICH_MESSAGES, configs.JSON_SERIALIZER) == (
                True, False, "default")
            assert (configs.SQLITE_ENABLED, configs.POSTGRES_ENABLED, configs.MONGO_ENABLED,
                    configs.LMDB_ENABLED, configs.KVDB_ENABLED) == (True, False, False, False, False)
            assert configs.SQLITE_PATH == os.path.expanduser("~/.flowcept/flowcept.sqlite")
            assert (configs.LOGIN_NAME, configs.NODE_NAME, configs.SYS_NAME, configs.ENVIRONMENT_ID) == (
                "alice", "node1", "Linux", "laptop")
            assert configs.EXTRA_METADATA == {"place_holder": ""}
            assert configs.FLOWCEPT_USER == "root"
            assert isinstance(configs.HOSTNAME, str) and configs.HOSTNAME
            with pytest.raises(AttributeError, match="no constant 'NOT_A_CONSTANT'"):
                configs.NOT_A_CONSTANT  # noqa: B018
        finally:
            sys.modules.pop("flowcept.configs", None)


def test_import_is_light():
    """Importing flowcept.settings and flowcept.configs pulls in neither yaml nor heavy libraries."""
    code = ("import sys, flowcept.settings, flowcept.configs; "
            "bad = [m for m in ('yaml', 'numpy', 'redis', 'psycopg', 'psutil', 'torch', 'pandas') "
            "if m in sys.modules]; print(bad)")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["FLOWCEPT_USE_DEFAULT"] = "1"
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_class_is_exported():
    """Settings is a frozen slotted dataclass."""
    assert dataclasses.is_dataclass(Settings)
    assert "__slots__" in vars(Settings)
