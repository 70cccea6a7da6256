"""Kafka security against a real broker with a SASL listener.

A broker instance of its own (deploy/broker.py ``sasl_users``: a SASL_PLAINTEXT
listener with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512) in a temporary state
dir on free ports, stopped at the end whatever happens:

- good credentials: the seeds are replayed and the pipeline runs bounded on
  the direct runner; the running totals equal the hand-checked fixture
  (tests/fixtures/seed_tracked_counts.json), the consumer group's offsets were
  committed through the SASL listener, and the password is in none of the
  run's logs (kafka-python's at DEBUG included), output, or /metrics text;
- wrong credentials: ``entitystream run --bounded`` exits non-zero within
  seconds with a message naming the servers, mechanism and user, and the
  wrong password is nowhere in its output; a PLAINTEXT client on the SASL
  listener is told to check the protocol;
- the /metrics endpoint binds 127.0.0.1 unless told otherwise.
"""
import json
import logging
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from connectors.kafka_security import KafkaPreflightError, KafkaSecurity, check_connection
from connectors.replay import publish, read_articles
from deploy import broker
from pipeline import inspect_output, metrics
from pipeline.run import start
from pipeline.settings import Settings
from tests.scrape import free_port

pytestmark = [pytest.mark.broker, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
FIXTURE = ROOT / "tests" / "fixtures" / "seed_tracked_counts.json"
USER, PASSWORD = "alice", "alice-Pa55-7f3e9c"
WRONG_PASSWORD = "not-alice-Pa55-91d2b4"
ENTITYSTREAM = pathlib.Path(sys.executable).with_name("entitystream")
SECURITY_VARIABLES = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                      "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE",
                      "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE", "KAFKA_SSL_CHECK_HOSTNAME")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    state = tmp_path_factory.mktemp("sasl-broker")
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    try:
        yield broker.start(port=port, controller_port=controller_port, state_dir=state,
                           sasl_users={USER: PASSWORD})
    finally:
        broker.stop(state_dir=state)


def security(mechanism, password=PASSWORD, user=USER):
    return KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                         username=user, password=password)


def rejected(address, mechanism, user):
    """The preflight's message for a rejected login, as a regular expression: the broker's
    error, or the connection it closed when kafka-python lost that error (see
    connectors/kafka_security.py ``_Failures``)."""
    return (re.escape(f"Kafka at {address} rejected the login (SASL_PLAINTEXT {mechanism} as "
                      f"user '{user}'): ")
            + "(SaslAuthenticationFailedError: Authentication failed[^.]*"
              "|the broker closed the connection during SASL authentication)"
            + re.escape(". Check KAFKA_SASL_USERNAME and the password (KAFKA_SASL_PASSWORD or "
                        "KAFKA_SASL_PASSWORD_FILE), and that the user exists on the broker for "
                        f"{mechanism}"))


def expected_running_totals():
    """Hand-checked mentions per seed, summed over the five seeds."""
    counts = json.loads(FIXTURE.read_text())["counts"]
    return {entity: sum(seed[entity] for seed in counts.values())
            for entity in ("RUSSIA", "NORTH_KOREA", "BRIDGE")}


def final_running_totals(rows):
    running = [r for r in rows if r["kind"] == "running_entity_counts"]
    last = max(r["pane_index"] for r in running)
    return {r["entity_id"]: r["mentions"] for r in running if r["pane_index"] == last}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_good_credentials_run_the_pipeline_and_never_show_the_password(
        sasl_broker, mechanism, tmp_path, caplog, capfd):
    caplog.set_level(logging.INFO)
    for name in ("kafka", "connectors", "pipeline", "deploy"):
        caplog.set_level(logging.DEBUG, logger=name)
    topic = f"secure-{uuid.uuid4().hex[:10]}"
    good = security(mechanism)
    published = publish(read_articles([SEEDS]), bootstrap_servers=sasl_broker, topic=topic,
                        client_config=good.client_config())
    assert published == 5
    settings = Settings(topic=topic, output_dir=str(tmp_path / "out"),
                        bootstrap_servers=sasl_broker, group_id=f"g-{topic}", runner="direct",
                        bounded=True, metrics_port=0, kafka_security=good)
    port = free_port()
    server, _ = metrics.serve(port, settings.metrics_host)
    try:
        start(settings).wait_until_finish()
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()

    totals = final_running_totals(inspect_output.load(tmp_path / "out"))
    want = expected_running_totals()
    assert {e: totals.get(e) for e in want} == want  # RUSSIA 71, NORTH_KOREA 58, BRIDGE 25
    # The offsets were committed through the SASL listener too (CommitOffsets).
    consumer = KafkaConsumer(bootstrap_servers=sasl_broker, group_id=settings.group_id,
                             enable_auto_commit=False, **good.client_config())
    try:
        assert consumer.committed(TopicPartition(topic, 0)) == 5
    finally:
        consumer.close()
    # This run's counts are on the page, and the password is not.
    assert f'entitystream_articles_consumed_total{{partition="0",topic="{topic}"}} 5.0' in page
    assert PASSWORD not in page
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert any(r.name.startswith("kafka") and r.levelno == logging.DEBUG for r in caplog.records)
    assert PASSWORD not in logs
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err


def test_wrong_password_makes_run_fail_fast_with_a_clear_message(sasl_broker, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    env.update(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_PASSWORD=WRONG_PASSWORD)
    started = time.monotonic()
    proc = subprocess.run(
        [str(ENTITYSTREAM), "run", "--bounded", "--topic", f"secure-{uuid.uuid4().hex[:10]}",
         "--output", str(tmp_path / "out"), "--bootstrap-servers", sasl_broker,
         "--metrics-port", "0", "--status-interval-seconds", "0",
         "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", USER],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert re.search("entitystream run: error: " + rejected(sasl_broker, "SCRAM-SHA-256", USER),
                     proc.stderr), proc.stderr
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was built


@pytest.mark.parametrize("mechanism, user, password", [
    ("PLAIN", USER, WRONG_PASSWORD),
    ("SCRAM-SHA-512", USER, WRONG_PASSWORD),
    ("SCRAM-SHA-512", "mallory", PASSWORD),
])
def test_wrong_credentials_are_rejected_within_seconds(sasl_broker, mechanism, user, password):
    started = time.monotonic()
    with pytest.raises(KafkaPreflightError) as raised:
        check_connection(sasl_broker, security(mechanism, password, user))
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert re.match(rejected(sasl_broker, mechanism, user), message), message
    assert password not in message


def test_good_scram_sha_512_credentials_pass_the_preflight(sasl_broker):
    check_connection(sasl_broker, security("SCRAM-SHA-512"))


def test_plaintext_client_on_the_sasl_listener_is_told_to_check_the_protocol(sasl_broker):
    with pytest.raises(KafkaPreflightError,
                       match=f"cannot connect to Kafka at {sasl_broker} \\(PLAINTEXT\\) within 3 s "
                             ".*KAFKA_SECURITY_PROTOCOL matches their listener"):
        check_connection(sasl_broker, KafkaSecurity(), timeout_s=3)


def test_metrics_endpoint_binds_loopback_unless_told_otherwise():
    port = free_port()
    server, _ = metrics.serve(port, Settings(kafka_security=KafkaSecurity()).metrics_host)
    try:
        assert server.server_address[:2] == ("127.0.0.1", port)
        other = _non_loopback_address()
        if other is not None:  # not reachable from another interface of this machine
            with socket.socket() as sock:
                sock.settimeout(2)
                assert sock.connect_ex((other, port)) != 0
    finally:
        server.shutdown()
        server.server_close()


def _non_loopback_address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: only picks the interface
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address
