"""Integration tests of deploy.broker against a real local Kafka broker.

The jars come from the default cache (fetched once with mvn); the broker gets its own
state dir and free ports, so a broker already running from the default state dir is left alone.
"""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from deploy import broker

pytestmark = pytest.mark.broker


def _free_port_pair() -> int:
    """A port p with p and p + 1 both free on 127.0.0.1 (broker and controller)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("broker-state")


@pytest.fixture(scope="module")
def bootstrap(state):
    address = broker.start(port=_free_port_pair(), timeout_s=90, state_dir=state)
    yield address
    broker.stop(state_dir=state)


def test_pom_and_module_agree_on_the_kafka_version():
    pom = (Path(broker.__file__).parent / "kafka" / "pom.xml").read_text()
    assert re.search(r"<kafka.version>(.+?)</kafka.version>", pom).group(1) == broker.KAFKA_VERSION


def test_produce_consume_round_trip(bootstrap):
    topic = f"test-{uuid.uuid4().hex}"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topic, key=b"k", value=b"hello entitystream").get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"group-{topic}",
                             auto_offset_reset="earliest", consumer_timeout_ms=20_000)
    try:
        record = next(iter(consumer), None)  # None if nothing arrived in consumer_timeout_ms
    finally:
        consumer.close()
    assert record is not None, "no message consumed"
    assert (record.key, record.value) == (b"k", b"hello entitystream")


def test_status_reports_running(bootstrap, state):
    info = broker.status(state_dir=state)
    assert info["running"] is True
    assert info["bootstrap"] == bootstrap
    assert info["version"] == broker.KAFKA_VERSION
    assert info["state_dir"] == str(state.resolve())
    assert isinstance(info["pid"], int)


def test_start_again_reuses_the_running_broker(bootstrap, state):
    pid = broker.status(state_dir=state)["pid"]
    port = int(bootstrap.rsplit(":", 1)[1])
    assert broker.start(port=port, state_dir=state) == bootstrap
    assert broker.status(state_dir=state)["pid"] == pid


def test_stop(bootstrap, state):
    assert broker.stop(state_dir=state) is True
    info = broker.status(state_dir=state)
    assert info["running"] is False and info["pid"] is None and info["bootstrap"] is None
    assert broker.stop(state_dir=state) is False  # not running: no error
