"""RabbitMQ specifics against the real broker: settings, the stored notes behind exact stops, idle connections."""

from __future__ import annotations

import logging
import time

import pytest

from flowcept.buffer import EncodedBatch
from flowcept.errors import ConfigError
from tests.transport.brokers import broker_settings, cleanup

pytestmark = pytest.mark.rabbitmq
pika = pytest.importorskip("pika")


@pytest.fixture(name="env")
def fixture_env(tmp_path, monkeypatch):
    env = broker_settings("rabbitmq", tmp_path, monkeypatch, deadline=0.3)
    yield env
    cleanup(env)


def _batch(n: int, start: int = 0) -> EncodedBatch:
    return EncodedBatch.from_docs([{"type": "task", "task_id": f"t{i}", "status": "FINISHED", "used": {"x": i}}
                                   for i in range(start, start + n)])


def _transport():
    from flowcept.settings import get_settings
    from flowcept.transport import make_transport

    return make_transport(get_settings())


class TestRabbitMQSettings:
    def test_connection_parameters_from_settings(self, tmp_path, monkeypatch):
        """host, port (the Redis default read as 5672), username, password and vhost reach pika; uri wins."""
        from flowcept.settings import load_settings
        from flowcept.transport.rabbitmq._amqp import parameters

        path = tmp_path / "s.yaml"
        path.write_text("mq:\n  type: rabbitmq\n  host: mq.example\n  username: u\n  password: p\n  vhost: v\n")
        params = parameters(load_settings(str(path), env={}).mq)
        assert (params.host, params.port, params.virtual_host) == ("mq.example", 5672, "v")
        assert (params.credentials.username, params.credentials.password) == ("u", "p")
        path.write_text("mq:\n  type: rabbitmq\n  uri: amqp://a:b@h2:5673/vh\n")
        params = parameters(load_settings(str(path), env={}).mq)
        assert (params.host, params.port, params.virtual_host, params.credentials.username) == ("h2", 5673, "vh", "a")

    def test_a_redis_uri_is_refused_for_rabbitmq(self, tmp_path):
        """mq.uri must be amqp:// or amqps:// with mq.type rabbitmq (the error names the key)."""
        from flowcept.settings import load_settings

        path = tmp_path / "s.yaml"
        path.write_text("mq:\n  type: rabbitmq\n  uri: redis://h:6379\n")
        with pytest.raises(ConfigError, match="amqp://") as info:
            load_settings(str(path), env={})
        assert info.value.key == "mq.uri"


class TestRabbitMQTransport:
    def test_one_confirmed_message_per_batch_with_headers(self, env):
        """Each batch is one persistent message in the keepers' quorum queue: the JSON array and its headers."""
        transport = _transport()
        with transport:
            assert transport.write(_batch(3)) == 0
            assert transport.write(_batch(2, 3)) == 0
            assert transport.flush() is True
            assert transport.sent == 5 and transport.spilled == 0
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
            ch = conn.channel()
            got = [ch.basic_get(f"{env['channel']}.flowcept_keeper", auto_ack=True) for _ in range(3)]
            conn.close()
        (m1, p1, b1), (m2, p2, b2), (m3, _, _) = got
        assert m3 is None
        assert EncodedBatch(b1, 3).docs == _batch(3).docs
        headers = {k: v for k, v in p1.headers.items() if not k.startswith("x-")}  # the broker adds x-delivery-count
        assert p1.delivery_mode == 2 and headers == {"p": transport.producer_id, "s": 1, "n": 3, "e": "json"}
        assert p2.headers["s"] == 2 and p2.headers["n"] == 2
        assert p1.reply_to == f"{env['channel']}.stored.{transport.producer_id}"

    def test_confirm_waits_for_the_keepers_stored_notes(self, env):
        """Without a keeper, confirm(wait_stored) reports every published record unconfirmed at its deadline; once
        a keeper stored them, it confirms."""
        from flowcept.keeper import Keeper
        from flowcept.settings import get_settings

        transport = _transport()
        with transport:
            transport.write(_batch(4))
            transport.write(_batch(3, 4))
            result = transport.confirm("wf", time.monotonic() + 0.5, wait_stored=True)
            assert (result.confirmed, result.unconfirmed, result.spill_path) == (False, 7, None)
            assert transport.confirm("wf", time.monotonic() + 0.5).confirmed  # in the broker: enough without wait
            keeper = Keeper(get_settings()).start()
            try:
                result = transport.confirm("wf", time.monotonic() + 30, wait_stored=True)
                assert (result.confirmed, result.unconfirmed) == (True, 0)
                assert keeper.stats.records == 7
            finally:
                keeper.close()

    def test_idle_connection_closed_by_the_broker_reconnects_quietly(self, env, tmp_path, monkeypatch, caplog):
        """A connection that died while idle (here: cut by a proxy that comes back at once) is replaced before the
        next publish, without reporting an outage or spilling."""
        from flowcept.transport.rabbitmq import producer
        from tests.fix_proxy import TcpProxy

        proxy = TcpProxy(("127.0.0.1", 5672))
        proxy.start()
        proxied = broker_settings("rabbitmq", tmp_path, monkeypatch, deadline=0.3, port=proxy.port)
        monkeypatch.setattr(producer, "_IDLE_CHECK_SECS", 0.0)
        caplog.set_level(logging.WARNING, logger="flowcept")
        try:
            transport = _transport()
            with transport:
                transport.write(_batch(2))
                proxy.cut()
                proxy.start()
                transport.write(_batch(2, 2))
                assert transport.sent == 4 and transport.spilled == 0
            assert "unreachable" not in caplog.text
        finally:
            proxy.cut()
            cleanup(proxied)

    def test_broker_away_spills_and_the_file_ingests(self, env, tmp_path, monkeypatch):
        """With the broker unreachable past the deadline, batches go to this process's spill file, one record per
        line, and stop() reports them with the file's path."""
        from flowcept import Flowcept, flowcept_task
        from flowcept.errors import StopTimeoutError

        broker_settings("rabbitmq", tmp_path, monkeypatch, deadline=0.2, port=1,
                        extra="buffer:\n  stop_timeout_secs: 3\n")

        @flowcept_task
        def double(x):
            return 2 * x

        with pytest.raises(StopTimeoutError) as info:
            with Flowcept(start_persistence=False, check_safe_stops=True):
                for i in range(5):
                    double(i)
        assert info.value.unconfirmed == 7 and info.value.spill_path.startswith(str(tmp_path / "spill_"))
        lines = open(info.value.spill_path, "rb").read().splitlines()
        assert len(lines) == 7
