"""R3: the Kafka broker restarts mid-run; the pipeline reconnects by itself,
goes on from where it was, loses nothing and counts nothing twice, and the
outage shows in its metrics and log.

A broker of the test's own (``deploy/broker.py`` with a temporary state dir
and free ports; the shared one is never touched) holds Reuters articles with
an invalid message after every 150th, so that the dead-letter writer works
before and after the outage. The continuous pipeline runs on Prism
(``entitystream run`` in a process of its own, rules-only so that the test is
quick, with the phrase-only tracked entities of
``tests/fixtures/reuters_tracked_entities.json``, as R2: fast, yet over a
thousand window aggregates with pairs and the tracked tuple). Once it has
consumed part of the topic, the broker gets SIGKILL (a crash), stays down
``ENTITYSTREAM_R3_DOWN_SECONDS`` (default 10) and is started again from the
same state dir and ports (KRaft then waits out the old broker session: the
broker is back some 13 s after its start). Then:

- the pipeline never exits;
- the reader is connected again, and reads again, within 30 s of the broker
  being back (``entitystream_kafka_connected{client="reader"}``, the lag);
- the outage is in the metrics (the gauge at 0 while it lasts, the
  disconnects and unreachable-seconds counters) and in the log;
- once the group has committed the whole topic, the latest pane of every
  window equals ``oracle.brute_force`` over the articles (every key), every
  message was read exactly once and settled once, and every invalid message
  is on the dead-letter topic.

A second test drives the dead-letter writer's DoFn by hand through an
outage that starts while its bundle's sends are in flight.

``ENTITYSTREAM_R3_ARTICLES`` sets how many articles (default 1,500).
"""
import json
import os
import pathlib
import signal
import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.replay import publish, read_articles
from deploy import broker
from pipeline import inspect_output
from tests.integration.oracle import brute_force, describe, differences, final_rows, mentions_of
from tests.integration.pipeline_process import PipelineProcess, committed, wait_until
from tests.scrape import free_port, total

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
ARTICLES = int(os.environ.get("ENTITYSTREAM_R3_ARTICLES", "1500"))
DOWN_S = float(os.environ.get("ENTITYSTREAM_R3_DOWN_SECONDS", "10"))
BAD_EVERY = 150  # an invalid message after every 150th article
TRACKED = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
TUPLE = ("JAPAN", "OIL", "US")
RECONNECT_LIMIT_S = 30.0


class OwnBroker:
    """A broker instance of this module's own: crash it, start it again."""

    def __init__(self, state_dir):
        self.state_dir = str(state_dir)
        self.port, self.controller_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"

    def start(self):
        """Start (or find running) the broker; return the seconds it took."""
        started = time.monotonic()
        broker.start(port=self.port, controller_port=self.controller_port, timeout_s=120,
                     state_dir=self.state_dir)
        return time.monotonic() - started

    def crash(self):
        """SIGKILL the broker's process group (start_new_session made it its leader)."""
        pid = broker.status(state_dir=self.state_dir)["pid"]
        assert pid is not None, "the test's broker is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while broker.status(state_dir=self.state_dir)["running"]:
            assert time.monotonic() < deadline, f"broker pid {pid} survived SIGKILL"
            time.sleep(0.1)

    def stop(self):
        broker.stop(state_dir=self.state_dir)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    own = OwnBroker(tmp_path_factory.mktemp("r3-broker"))
    try:
        own.start()
        yield own
    finally:
        own.stop()


def reuters(n):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    articles = []
    for a in read_articles([REUTERS]):
        articles.append(a)
        if len(articles) == n:
            break
    return sorted(articles, key=lambda a: (a["published_at"], a["id"]))


def publish_with_invalid(articles, bootstrap, topic):
    """Publish ``articles`` in order with an invalid JSON message after every
    ``BAD_EVERY``-th, stamped with the previous article's time (so the
    watermark is not moved); return the invalid messages' offsets."""
    bad = []
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for start in range(0, len(articles), BAD_EVERY):
            chunk = articles[start:start + BAD_EVERY]
            publish(chunk, bootstrap_servers=bootstrap, topic=topic, order="input")
            if start + BAD_EVERY < len(articles):
                future = producer.send(topic, key=b"bad-%d" % len(bad),
                                       value=b'{"id": "bad", "title": ',
                                       timestamp_ms=int(chunk[-1]["published_at"]))
                bad.append(future.get(timeout=30).offset)
    finally:
        producer.close()
    return bad


def dead_letter_offsets(bootstrap, topic):
    """Offsets of the input messages on ``topic.dlq`` (one per dead letter published)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        consumer.assign([TopicPartition(f"{topic}.dlq", 0)])
        return [json.loads(m.value)["offset"] for m in consumer]
    finally:
        consumer.close()


def pipeline_args(topic, out, bootstrap, group):
    return ["--topic", topic, "--output", out, "--bootstrap-servers", bootstrap,
            "--group-id", group, "--runner", "prism", "--rules-only",
            "--tracked-entities", TRACKED, "--tracked-tuple", ",".join(TUPLE),
            "--window-seconds", 3600, "--sliding-window-seconds", 6 * 3600,
            "--sliding-period-seconds", 3600,
            "--max-entities-per-article", 10_000, "--top-k-pairs", 10_000_000,
            "--checkpoint-interval-seconds", 2, "--early-firing-seconds", 1,
            "--idle-timeout-seconds", 2]


def _value(samples, name, **labels):
    """The sample's value, or None when the series is not exported (yet)."""
    want = set(labels.items())
    found = [v for (n, l), v in samples.items() if n == name and want <= set(l)]
    return found[0] if found else None


def _books(proc, bootstrap, group, topic):
    """Where the run stands, for a failure message."""
    samples = proc.metrics()
    names = ("entitystream_articles_consumed_total", "entitystream_messages_settled_total",
             "entitystream_consumer_lag_records", "entitystream_kafka_connected",
             "entitystream_kafka_disconnects_total", "entitystream_offset_commit_failures_total",
             "entitystream_dead_letters_total", "entitystream_checkpoint_failures_total")
    shown = {f"{n}{dict(l)}": v for (n, l), v in samples.items() if n in names}
    return f"committed: {committed(bootstrap, group, topic)}; metrics: {shown}"


def test_broker_restart_mid_run_loses_nothing_and_shows_in_metrics(own_broker, tmp_path):
    test_started = time.monotonic()
    articles = reuters(ARTICLES)
    bootstrap, topic = own_broker.address, f"r3-{uuid.uuid4().hex[:10]}"
    bad = publish_with_invalid(articles, bootstrap, topic)
    n = len(articles) + len(bad)
    want = brute_force(mentions_of(articles, rules_only=True, tracked_entities=TRACKED),
                       window_s=3600, sliding_s=6 * 3600, period_s=3600, tuples=(TUPLE,))
    # An id seen again in the same hour is counted once (a duplicate).
    unique = len({(a["id"], a["published_at"] // 3_600_000) for a in articles})
    out, group = tmp_path / "out", f"g-{topic}"
    proc = PipelineProcess(pipeline_args(topic, out, bootstrap, group),
                           tmp_path / "pipeline.log").start()
    consumed = lambda: total(proc.metrics(), "entitystream_articles_consumed_total")  # noqa: E731
    reader = lambda: _value(proc.metrics(), "entitystream_kafka_connected",  # noqa: E731
                            client="reader")
    lag = lambda: total(proc.metrics(), "entitystream_consumer_lag_records")  # noqa: E731
    try:
        wait_until(lambda: consumed() >= 100 and reader() == 1, 240,
                   "part of the topic consumed", proc=proc)
        at_crash = consumed()
        crashed = time.monotonic()
        own_broker.crash()

        # Down: the reader says so within seconds; the pipeline lives on.
        wait_until(lambda: reader() == 0, 15, "the reader to report Kafka unreachable",
                   poll_s=0.2, proc=proc)
        seen_down_s = time.monotonic() - crashed
        while time.monotonic() - crashed < DOWN_S:
            assert proc.alive(), f"the pipeline exited during the outage:\n{proc.log()[-4000:]}"
            time.sleep(0.5)
        startup_s = own_broker.start()
        back = time.monotonic()
        outage_s = back - crashed
        lag_at_back = lag()
        assert lag_at_back > 0, "the reader had read everything before the broker was back"

        # Back: connected again, then reading again, within 30 s.
        wait_until(lambda: reader() == 1, RECONNECT_LIMIT_S,
                   "the reader to be connected again", poll_s=0.2, proc=proc)
        reconnect_s = time.monotonic() - back
        wait_until(lambda: lag() < lag_at_back, RECONNECT_LIMIT_S - reconnect_s,
                   "the reader to read again after the restart", poll_s=0.2, proc=proc)
        reading_s = time.monotonic() - back

        try:
            wait_until(lambda: committed(bootstrap, group, topic)[0] == n, 240,
                       f"all {n} offsets committed after the restart", poll_s=1, proc=proc)
            wait_until(lambda: final_rows(inspect_output.load(out), latest=True) == want, 120,
                       "the latest panes to equal the uninterrupted result", poll_s=2, proc=proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_books(proc, bootstrap, group, topic)}") from None
        samples = proc.metrics()
        assert proc.alive()
        log = proc.log()
    finally:
        proc.stop()

    got = final_rows(inspect_output.load(out), latest=True)
    assert not any(differences(got, want)), describe(*differences(got, want))
    # Every kind of aggregate, many windows, the tracked tuple among them.
    assert len(want) > 1_000 and any(k[3] == TUPLE for k in want if len(k) == 5), len(want)
    assert {k[0] for k in want} == {
        "entity_counts", "sliding_entity_counts", "running_entity_counts", "cooccurrence",
        "running_cooccurrence"}

    # Every message read once (from where the reader was: nothing re-read),
    # and settled once: counted, duplicate (Reuters repeats a few stories) or
    # dead letter; nothing late (the watermark held through the outage).
    read = total(samples, "entitystream_articles_consumed_total")
    settled = {o: total(samples, "entitystream_messages_settled_total", outcome=o)
               for o in ("aggregated", "late", "duplicate", "dead_letter", "replayed")}
    assert read == n == sum(settled.values()), (read, n, settled)
    assert settled["late"] == 0 and settled["replayed"] == 0, settled
    assert settled["dead_letter"] == len(bad), (settled, len(bad))
    assert settled["aggregated"] == unique, (settled, unique)
    published_dead = dead_letter_offsets(bootstrap, topic)
    assert set(published_dead) == set(bad), (sorted(published_dead), bad)

    # The outage in the metrics, measured independently by the test's clock.
    disconnects = _value(samples, "entitystream_kafka_disconnects_total", client="reader")
    unreachable = _value(samples, "entitystream_kafka_unreachable_seconds_total",
                         client="reader")
    assert disconnects >= 1, disconnects
    assert outage_s - 5 <= unreachable <= outage_s + RECONNECT_LIMIT_S, (unreachable, outage_s)
    assert _value(samples, "entitystream_kafka_connected", client="reader") == 1
    # ... and in the log.
    assert f"Kafka at {bootstrap} unreachable since" in log, log[-4000:]
    assert f"Kafka at {bootstrap} reachable again (reader): reconnected after" in log

    figures = {
        "articles": len(articles), "invalid": len(bad), "consumed_at_crash": at_crash,
        "outage_s": round(outage_s, 1), "broker_startup_s": round(startup_s, 1),
        "reader_saw_down_after_s": round(seen_down_s, 1),
        "reader_reconnected_after_back_s": round(reconnect_s, 1),
        "reading_again_after_back_s": round(reading_s, 1),
        "reader_unreachable_s_metric": round(unreachable, 1),
        "disconnects": {c: _value(samples, "entitystream_kafka_disconnects_total", client=c)
                        for c in ("reader", "writer", "committer")},
        "commit_failures": total(samples, "entitystream_offset_commit_failures_total"),
        "dead_letters_published": len(published_dead), "windows_compared": len(want),
        "test_s": round(time.monotonic() - test_started, 1)}
    print(f"\nR3 figures: {json.dumps(figures)}")


def test_dead_letter_writer_waits_for_the_broker_and_loses_nothing(own_broker):
    """The DoFn behind PublishDeadLetters, driven by hand (a bundle whose
    sends are in flight when the broker dies): ``finish_bundle`` waits until
    the broker is back and every message is acknowledged, instead of failing
    the bundle (which fails the job on Prism). The producer's own delivery
    timeout is cut to 5 s, so the outage outlasts it, as an outage longer than
    the default 120 s would: its sends fail and must be sent again."""
    from connectors.kafka_write import _ProduceFn, json_value
    from pipeline.metrics import sample_value
    own_broker.start()  # running, whatever the test before did
    bootstrap, topic = own_broker.address, f"r3w-{uuid.uuid4().hex[:10]}"
    short = (("delivery_timeout_ms", 5000), ("request_timeout_ms", 3000))
    fn = _ProduceFn(bootstrap, topic, lambda d: d["key"], json_value, None, short, 120.0)
    disconnects = sample_value("entitystream_kafka_disconnects_total", {"client": "writer"})
    fn.setup()
    try:
        fn.start_bundle()
        for i in range(5):
            fn.process({"key": b"k%d" % i, "n": i}, wv=("wv", i))
        own_broker.crash()
        for i in range(5, 10):
            fn.process({"key": b"k%d" % i, "n": i}, wv=("wv", i))
        result = {}

        def finish():
            try:
                result["out"] = list(fn.finish_bundle())
            except BaseException as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

        waiting = threading.Thread(target=finish, daemon=True)
        waiting.start()
        time.sleep(DOWN_S)
        assert waiting.is_alive() and not result, f"finish_bundle did not wait: {result}"
        own_broker.start()
        waiting.join(timeout=120)
        assert not waiting.is_alive(), "finish_bundle still waiting 120 s after the restart"
        assert "error" not in result, result.get("error")
        assert sorted(result["out"]) == [("wv", i) for i in range(10)]
    finally:
        fn.teardown()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        sent = [json.loads(m.value)["n"] for m in consumer]
    finally:
        consumer.close()
    assert set(sent) == set(range(10)), sent  # all there; a resend may add a duplicate
    assert sample_value("entitystream_kafka_disconnects_total",
                        {"client": "writer"}) >= disconnects + 1
