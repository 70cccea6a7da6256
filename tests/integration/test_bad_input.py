"""R1: a stream of valid articles mixed with every kind of bad message, through
the real broker into the continuous pipeline on Prism (its own process).

Each message is either processed as documented or dead-lettered with its
reason; the pipeline never stops; and the books balance: every message read
is settled exactly once (aggregated, late, duplicate or dead letter), checked
against the outcome this test expects for each message it sends (the table
below, by hand), and against the hand-checked seed counts
(tests/fixtures/seed_tracked_counts.json).
"""
import json
import pathlib

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from tests.integration.pipeline_process import PipelineProcess, committed, wait_until
from tests.scrape import total

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "seed_tracked_counts.json").read_text())
TEN_MB = 10 * 1024 * 1024


def doc(article_id, *, title="Markets", body="Stocks rose on Tuesday.", at_ms, **extra):
    return json.dumps(dict(id=article_id, source="test", title=title, body=body,
                           published_at=at_ms, **extra)).encode("utf-8")


def bad_messages(newest_ms, seed_000):
    """(key, value, Kafka timestamp, expected outcome) of the first phase, in order."""
    t = newest_ms
    year_2100 = 4_102_444_800_000
    latin_1 = (b'{"id": "latin-1", "title": "Caf\xe9 prices", "body": "Caf\xe9 exports rose '
               b'in the quarter.", "published_at": ' + str(t).encode() + b'}')
    return [
        (b"bad-json", b'{"id": "bad-json", "title": ', t, "invalid_json"),
        (b"bad-missing", json.dumps({"id": "bad-missing", "title": "No body"}).encode(), t,
         "missing_field"),
        (b"bad-type", json.dumps({"id": "bad-type", "title": ["a", "list"], "body": "b",
                                  "published_at": t}).encode(), t, "bad_type"),
        (b"latin-1", latin_1, t, "aggregated"),                  # read as cp1252, kept
        (b"bad-empty", doc("bad-empty", body="   ", at_ms=t), t, "empty_body"),
        (b"bad-huge", doc("bad-huge", body="x" * TEN_MB, at_ms=t), t, "too_large"),
        (None, doc("null-key", at_ms=t), t, "aggregated"),        # the id is in the JSON
        (b"seed-000", seed_000, t, "duplicate"),                  # seed-000 sent again
        # Its Kafka timestamp is the feed's: Kafka 4 brokers refuse record
        # timestamps over an hour ahead (message.timestamp.after.max.ms);
        # the reader ignores far-future ones anyway (tests/unit/test_watermark.py).
        (b"bad-future", doc("bad-future", at_ms=year_2100), t, "future_timestamp"),
        (b"de-1", doc("de-1", title="Russland und Nordkorea", language="de",
                      body="Russland und Nordkorea bauen eine Brücke über den Tumen.", at_ms=t),
         t, "aggregated"),                                        # counted under "de", no NER
    ]


def create_topic(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:  # room for the 10 MB message: the broker's own limit is 1 MB
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
            "retention.ms": "-1", "max.message.bytes": str(16 * 1024 * 1024)})])
    finally:
        admin.close()


def send(bootstrap, topic, messages):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             max_request_size=16 * 1024 * 1024)
    try:
        for key, value, at_ms, _ in messages:
            producer.send(topic, key=key, value=value, timestamp_ms=at_ms).get(timeout=60)
    finally:
        producer.close()


def running(rows, entity):
    latest = [r for r in inspect_output.latest_panes(rows)
              if r["kind"] == "running_entity_counts" and r["entity_id"] == entity]
    return (latest[0]["mentions"], latest[0]["articles"]) if latest else (0, 0)


def test_bad_messages_are_dead_lettered_or_documented_and_the_books_balance(
        bootstrap, topic, tmp_path):
    seeds = list(read_articles([ROOT / "seeds"]))
    create_topic(bootstrap, topic)
    publish(seeds, bootstrap_servers=bootstrap, topic=topic)
    newest = max(seeds, key=lambda a: a["published_at"])
    seed_000 = next(a for a in seeds if a["id"] == "seed-000")
    phase_1 = bad_messages(newest["published_at"], json.dumps(seed_000).encode())
    send(bootstrap, topic, phase_1)

    out, group = tmp_path / "out", f"g-{topic}"
    proc = PipelineProcess([
        "--topic", topic, "--output", out, "--bootstrap-servers", bootstrap,
        "--group-id", group, "--runner", "prism", "--rules-only",
        "--max-message-bytes", 1_000_000, "--early-firing-seconds", 1,
        # The seed windows close only once the feed has been quiet this long,
        # after every first-phase message is counted (the duplicate of seed-000
        # must find its window open).
        "--idle-timeout-seconds", 15, "--checkpoint-interval-seconds", 1],
        tmp_path / "pipeline.log").start()
    try:
        first = len(seeds) + len(phase_1)
        wait_until(lambda: committed(bootstrap, group, topic)[0] == first, 240,
                   f"the {first} first-phase messages settled", proc=proc)
        lag = total(proc.metrics(), "entitystream_watermark_lag_seconds")
        assert lag > 0, f"the 2100 timestamp moved the watermark ahead of the clock: lag {lag}"
        # Every seed hour closes (final pane) once the partition is idle.
        wait_until(lambda: sum(r.get("is_final", False) and r["kind"] == "entity_counts"
                               and r["entity_id"] == "RUSSIA"
                               for r in inspect_output.load(out)) == len(seeds), 120,
                   "the seed windows' final panes", proc=proc)
        # Phase 2: an article decades old, after its windows have expired: late,
        # yet counted in the running totals (its one BRIDGE mention).
        old = doc("old-1", title="Old news", body="The new bridge opened to traffic.",
                  at_ms=-304_560_000_000)  # 1960-05-06
        send(bootstrap, topic, [(b"old-1", old, -304_560_000_000, "late")])
        bridge = sum(c["BRIDGE"] for c in FIXTURE["counts"].values())
        wait_until(lambda: running(inspect_output.load(out), "BRIDGE") == (bridge + 1, 6), 120,
                   "the late article in the running totals", proc=proc)
        samples = proc.metrics()
        assert proc.alive(), "one bad message stopped the pipeline"
    finally:
        proc.stop()

    expected = [o for *_, o in phase_1] + ["aggregated"] * len(seeds) + ["late"]
    reasons = sorted(o for o in expected if o not in ("aggregated", "duplicate", "late"))
    consumed = total(samples, "entitystream_articles_consumed_total")
    settled = {o: total(samples, "entitystream_messages_settled_total", outcome=o)
               for o in ("aggregated", "late", "duplicate", "dead_letter", "replayed")}
    assert consumed == len(expected) == sum(settled.values())
    assert settled == {"aggregated": expected.count("aggregated"), "late": 1, "duplicate": 1,
                       "dead_letter": len(reasons), "replayed": 0}
    for reason in set(reasons):
        assert total(samples, "entitystream_dead_letters_total", reason=reason) == 1, reason
    assert total(samples, "entitystream_decode_fallbacks_total", encoding="cp1252") == 1
    assert total(samples, "entitystream_articles_aggregated_total", language="de") == 1
    assert total(samples, "entitystream_articles_aggregated_total", language="en") == 8
    assert total(samples, "entitystream_late_articles_total") == 1
    assert total(samples, "entitystream_duplicates_suppressed_total") == 1

    # The tracked entities: exactly the hand-checked seed counts (the duplicate
    # and the German article add nothing), BRIDGE plus the late article's one.
    rows = inspect_output.load(out)
    for entity in ("RUSSIA", "NORTH_KOREA"):
        assert running(rows, entity) == (sum(c[entity] for c in FIXTURE["counts"].values()), 5)
    assert (out / "late_articles" / "old-1.avro").is_file()

    # The dead-letter topic: one record per bad message, with its reason and where it was.
    offsets = {m[0]: len(seeds) + i for i, m in enumerate(phase_1)}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(f"{topic}.dlq", 0)])
    letters = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert sorted(d["reason"] for d in letters) == reasons
    for d in letters:
        key = d["key"].encode("latin-1") if d["key"] is not None else None
        assert (d["topic"], d["partition"], d["offset"]) == (topic, 0, offsets[key]), d
        assert "_position" not in d
    huge = next(d for d in letters if d["reason"] == "too_large")
    assert huge["value_truncated"] and huge["value_size"] > TEN_MB
    assert len(huge["value"]) <= 65_536
