"""The redaction rule: which keys match, the options' validation, the settings' checks."""

from __future__ import annotations

import orjson
import pytest

from flowcept.errors import ConfigError
from flowcept.redact import REDACTED, Redactor, RedactOptions, Rules, options_for, words
from flowcept.settings import REDACT_KEYS

DEFAULT = Rules(REDACT_KEYS)


class TestWords:
    @pytest.mark.parametrize("key, expected", [
        ("api_key", ("api", "key")),
        ("apiKey", ("api", "key")),
        ("XAuthToken", ("x", "auth", "token")),
        ("x-api-key", ("x", "api", "key")),
        ("OPENAI_API_KEY", ("openai", "api", "key")),
        ("password2", ("password",)),
        ("db.password_1", ("db", "password")),
        (42, ()),
    ])
    def test_keys_split_into_lower_case_words(self, key, expected):
        """Keys split at separators, camelCase and trailing digits; trailing numbers are dropped."""
        assert words(key) == expected


class TestDefaultKeys:
    @pytest.mark.parametrize("key", [
        "password", "Password", "db_password", "passwd", "secret", "client_secret", "SECRET_KEY", "token",
        "access_token", "api_token", "x_auth_token", "githubToken", "api_key", "apiKey", "x-api-key",
        "OPENAI_API_KEY", "apikey", "aws_secret_access_key", "private_key", "credential", "credentials",
        "Authorization", "proxy_authorization", "cookie", "set-cookie", "cookies", "password2",
    ])
    def test_secret_looking_keys_match(self, key):
        """Every documented secret-looking key is redacted by the default list."""
        assert DEFAULT.is_secret(key)

    @pytest.mark.parametrize("key", [
        "user", "max_tokens", "max_new_tokens", "tokens", "token_count", "token_ids", "token_type_ids",
        "input_tokens", "total_tokens", "token_count_source", "tokenizer", "password_hash", "keys", "key",
        "monkey", "secretary", "passenger", "n_layers", "arg_0",
    ])
    def test_ordinary_keys_do_not_match(self, key):
        """LLM counters and other everyday names stay visible: a pattern must end the key, word for word."""
        assert not DEFAULT.is_secret(key)


class TestPatterns:
    def test_glob_matches_the_whole_key(self):
        """A pattern with * matches the whole normalized key: *token* reaches token_count and max_tokens."""
        rules = Rules(["*token*"])
        assert rules.is_secret("token_count") and rules.is_secret("MaxTokens") and not rules.is_secret("tok")
        assert Rules(["max_*"]).is_secret("maxTokens") and not Rules(["max_*"]).is_secret("tokens_max")

    def test_allow_wins(self):
        """A key matching an allow pattern is never redacted."""
        rules = Rules(REDACT_KEYS, allow=["pad_token"])
        assert not rules.is_secret("pad_token") and rules.is_secret("access_token")

    def test_options_add_and_allow(self):
        """redact=[...] adds patterns, redact_allow=[...] exempts keys, redact=False turns it off."""
        added = DEFAULT.with_options(RedactOptions(["ssn"], ["api_key"]))
        assert added.is_secret("user_ssn") and added.is_secret("password") and not added.is_secret("api_key")
        assert DEFAULT.with_options(RedactOptions(False)) is None
        assert options_for(None, None) is None and options_for(True, None) is None
        assert options_for(["ssn"], None) == RedactOptions(["ssn"])

    @pytest.mark.parametrize("redact, allow, error", [
        (1, None, TypeError), ([1], None, TypeError), (None, [""], ValueError), (["__"], None, ValueError),
        (None, {"a": 1}, TypeError),
    ])
    def test_bad_options_fail_at_declaration(self, redact, allow, error):
        """Bad redact options fail when the decorator or task is declared, not on the flusher thread."""
        with pytest.raises(error):
            options_for(redact, allow)


class TestRedactor:
    def test_nested_values_lists_and_objects(self):
        """Secrets at any depth, in lists and in objects the encoder converts, are replaced and counted."""
        import dataclasses

        @dataclasses.dataclass
        class Config:
            password: str
            port: int

        original = {"db": {"password": "p", "port": 1}, "items": [{"token": "t"}, 3], "cfg": Config("x", 2)}
        records = [{"type": "task", "task_id": "a", "used": original, "generated": {"ok": 1}}]
        assert Redactor(True, REDACT_KEYS)(records) == 3
        assert records[0]["used"] == {"db": {"password": REDACTED, "port": 1}, "items": [{"token": REDACTED}, 3],
                                      "cfg": {"password": REDACTED, "port": 2}}
        assert records[0]["redacted"] == 3
        assert original["db"]["password"] == "p" and original["items"][0]["token"] == "t"  # caller's data intact

    def test_objects_without_keys_are_not_converted(self):
        """Objects the encoder stores as placeholders (a model, a client) leave the batch as it was; an object of a
        registered dict class, or with to_dict(), is looked into."""
        from flowcept import register_dict_class

        class Model:
            pass

        class Client:
            def __init__(self):
                self.token = "t"

        class Conf:
            def to_dict(self):
                return {"api_key": "k"}

        model = Model()
        records = [{"type": "task", "used": {"model": model, "n": 1}}]
        assert Redactor(True, REDACT_KEYS)(records) == 0 and records[0]["used"]["model"] is model
        register_dict_class(Client)
        records = [{"type": "task", "used": {"client": Client(), "conf": Conf()}}]
        assert Redactor(True, REDACT_KEYS)(records) == 2
        assert records[0]["used"] == {"client": {"token": REDACTED}, "conf": {"api_key": REDACTED}}

    def test_null_values_and_clean_batches_are_left_alone(self):
        """A null secret stays null (nothing counted); a batch without secrets is returned unchanged."""
        records = [{"type": "task", "used": {"api_key": None, "x": 1}}, {"type": "task", "used": {"y": [1, 2]}}]
        before = [dict(r) for r in records]
        assert Redactor(True, REDACT_KEYS)(records) == 0
        assert records == before

    def test_switch_off_keeps_values_but_honours_explicit_lists(self):
        """project.redact false stores values, except keys a decorator or task listed itself."""
        from flowcept.redact import OPTIONS_KEY

        records = [{"type": "task", "used": {"password": "p"}},
                   {"type": "task", "used": {"password": "p", "ssn": "1"}, OPTIONS_KEY: RedactOptions(["ssn"])}]
        assert Redactor(False, REDACT_KEYS)(records) == 1
        assert records[0]["used"] == {"password": "p"}
        assert records[1]["used"] == {"password": "p", "ssn": REDACTED} and OPTIONS_KEY not in records[1]


def test_bad_pattern_in_settings_fails_at_start(tmp_path, monkeypatch):
    """A settings pattern without letters is a ConfigError naming the key when Flowcept starts."""
    from flowcept import Flowcept
    from tests.conftest import write_settings

    write_settings(tmp_path, "project:\n  redact_keys: [password, '--']\n", monkeypatch)
    with pytest.raises(ConfigError, match=r"project\.redact_keys"):
        Flowcept().start()


class TestQuickCheck:
    def test_atomic_dicts_pass_without_a_look_at_values(self):
        """A batch whose dicts hold only atomic values (dicts the GC does not track) is passed by the quick check;
        a dict holding a list is looked into."""
        from flowcept.redact import _clean

        used = {"x": 1, "s": "a", "f": 1.5, "n": None}  # untracked by CPython's GC (3.11-3.13)
        assert _clean([{"type": "task", "used": used, "generated": {"arg_0": 2}}], DEFAULT)
        assert not _clean([{"type": "task", "used": {"x": [{"token": "t"}]}}], DEFAULT)
        assert not _clean([{"type": "task", "used": {"x": ({"token": "t"},)}}], DEFAULT)

    @pytest.mark.parametrize("depth", [1, 2])
    def test_object_converted_only_when_encoded_is_redacted(self, depth):
        """A NumPy object array is not tracked by the GC, so the dict holding it passes the quick check (at the
        first level, or below a dict the GC tracks, where only the tracked dicts are looked into); its encoding turns
        it into a list of dicts, and the buffer then redacts the batch thoroughly before writing."""
        import numpy as np

        from flowcept.buffer import BatchBuffer

        class Sink:
            name, records = "list", []

            def write(self, batch):
                self.records.extend(orjson.loads(line) for line in batch.lines().splitlines())
                return 0

            def flush(self):
                pass

            def close(self):
                pass

        array = np.array([{"api_key": "AKIA123", "n": 1}], dtype=object)
        used = {"arr": array, "x": 1}  # untracked by CPython's GC (3.11-3.13): the quick check passes it
        if depth == 2:
            used = {"cfg": used, "tracked": [1]}
        sink = Sink()
        buffer = BatchBuffer([sink], batch_size=10, flush_interval_secs=0.01, redactor=Redactor(True, REDACT_KEYS))
        buffer.extend([{"type": "task", "task_id": "a", "used": used}])
        assert buffer.flush(timeout=10)
        buffer.extend([{"type": "task", "task_id": "b", "used": {"password": "p"}}])
        assert buffer.close(timeout=10)
        expected = {"arr": [{"api_key": REDACTED, "n": 1}], "x": 1}
        if depth == 2:
            expected = {"cfg": expected, "tracked": [1]}
        assert [r["used"] for r in sink.records] == [expected, {"password": REDACTED}]
        assert [r.get("redacted") for r in sink.records] == [1, 1]
        assert buffer.redacted == 2 and buffer.dropped == 0 and array[0]["api_key"] == "AKIA123"
