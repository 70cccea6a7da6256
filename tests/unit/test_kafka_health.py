"""``connectors.kafka_health.KafkaHealth``: the outage bookkeeping behind
``entitystream_kafka_connected``, ``..._disconnects_total`` and
``..._unreachable_seconds_total`` and the outage log lines (pure logic; the
real broker restart is tests/integration/test_broker_restart.py)."""
import logging
import time
import types
import uuid

from connectors.kafka_health import KafkaHealth, connection_state
from pipeline.metrics import sample_value


def _kind():
    return f"test-{uuid.uuid4().hex[:8]}"  # its own series: tests do not share state


def _connected(kind):
    return sample_value("entitystream_kafka_connected", {"client": kind})


def _disconnects(kind):
    return sample_value("entitystream_kafka_disconnects_total", {"client": kind})


def _unreachable(kind):
    return sample_value("entitystream_kafka_unreachable_seconds_total", {"client": kind})


def test_an_outage_is_counted_once_timed_and_logged(caplog):
    kind = _kind()
    health = KafkaHealth(kind, "127.0.0.1:9")
    assert _connected(kind) == 1 and _disconnects(kind) == 0
    with caplog.at_level(logging.WARNING, logger="connectors.kafka_health"):
        health.down(ConnectionRefusedError("refused"))
        health.down()  # still down: not a second outage
        assert _connected(kind) == 0 and _disconnects(kind) == 1
        assert not health.connected
        time.sleep(0.2)
        health.up()
        health.up()  # still up: nothing more
    assert _connected(kind) == 1 and _disconnects(kind) == 1 and health.connected
    assert 0.2 <= _unreachable(kind) < 5
    # Only this module's lines: kafka-python clients of earlier tests may still log.
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.kafka_health"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Kafka at 127.0.0.1:9 unreachable since ")
    assert f"({kind}: ConnectionRefusedError: refused); retrying" in lines[0]
    assert lines[1].startswith(
        f"Kafka at 127.0.0.1:9 reachable again ({kind}): reconnected after 0.")


def test_a_kind_is_back_only_when_all_its_clients_are():
    kind = _kind()
    one, two = KafkaHealth(kind, "k:9092"), KafkaHealth(kind, "k:9092")
    one.down()
    two.down()
    one.up()
    assert _connected(kind) == 0 and _unreachable(kind) == 0  # two still cannot reach it
    two.up()
    assert _connected(kind) == 1 and _disconnects(kind) == 1 and _unreachable(kind) > 0


def test_closing_the_client_that_was_down_ends_the_outage():
    kind = _kind()
    health = KafkaHealth(kind, "k:9092")
    health.down()
    health.close()
    assert _connected(kind) == 1 and _disconnects(kind) == 1


def _client(conns=(), backoff=None):
    manager = types.SimpleNamespace(
        _conns={i: types.SimpleNamespace(connected=c) for i, c in enumerate(conns)},
        _backoff=dict(backoff or {}))
    return types.SimpleNamespace(_manager=manager)


def test_connection_state_from_the_client_internals():
    assert connection_state(_client(conns=[False, True])) is True
    assert connection_state(_client(conns=[False], backoff={1: (3, 0, 0)})) is False
    assert connection_state(_client(backoff={1: (1, 0, 0)})) is False
    assert connection_state(_client()) is None  # idle or not connected yet: nothing to tell
    assert connection_state(object()) is None  # no such internals (another kafka-python)
    producer = types.SimpleNamespace(_sender=types.SimpleNamespace(_client=_client(conns=[True])))
    assert connection_state(producer) is True


def test_observe_reports_what_it_reads():
    kind = _kind()
    health = KafkaHealth(kind, "k:9092")
    assert health.observe(_client(backoff={1: (1, 0, 0)})) is False
    assert _connected(kind) == 0
    assert health.observe(_client()) is None and _connected(kind) == 0  # no news: unchanged
    assert health.observe(_client(conns=[True])) is True
    assert _connected(kind) == 1 and _disconnects(kind) == 1
