"""Surges end to end: a Reuters replay slice with an injected burst of
tracked-tuple articles, through the real broker and a bounded run, is
flagged in the burst's window and in no other window.

The burst: the five seed articles (each holds RUSSIA, NORTH_KOREA and BRIDGE:
tests/fixtures/seed_tracked_counts.json) given new ids and published inside
one hour of the Reuters slice, after enough hours for a baseline. Reuters
1987 never holds the tuple, so every other window's share is 0 and the
burst's is 5 / (that hour's articles): far above (pipeline/surges.py).
Rules-only extraction with the shipped tracked entities keeps it quick.

``--surges-topic``: the same surges reach a Kafka topic, each record once in
an uninterrupted run (Prism, bounded), exactly the records of the Avro
surge files (with ``--surge-top-pairs 3`` the burst hour's three pairs
among them). After ``kill -9`` before the first checkpoint and a restart,
the surges are published again (at-least-once, the same key and fields but
``emitted_at``): the latest message of each key is exactly the Avro files'
record (docs/stories.md "Surges on a Kafka topic").
"""
import datetime as dt
import pathlib
import time

import pytest
from kafka import KafkaConsumer

from connectors.aggregates_topic import decode_message
from connectors.avro_files import read_records, window_dir
from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.run import start
from pipeline.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
TUPLE = ["BRIDGE", "NORTH_KOREA", "RUSSIA"]
H = 3_600_000


def _ms(text):
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp() * 1000)


def burst_slice():
    """``(reuters, burst, burst_hour)``: 600 Reuters articles and the five seed
    articles published in one hour two thirds of the way in."""
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    reuters = sorted(read_articles([REUTERS]), key=lambda a: a["published_at"])[:600]
    hours = sorted({a["published_at"] // H for a in reuters})
    assert len(hours) >= 12, f"the slice spans only {len(hours)} hours"
    burst_hour = hours[len(hours) * 2 // 3]   # after 6 hours or more of baseline
    seeds = list(read_articles([ROOT / "seeds"]))
    burst = [dict(s, id=f"burst-{i}", published_at=burst_hour * H + 60_000 * (i + 1))
             for i, s in enumerate(seeds)]
    return reuters, burst, burst_hour


def surge_messages(bootstrap, surges_topic):
    """Every message on ``surges_topic``: ``(key, record, Kafka timestamp ms)``."""
    consumer = KafkaConsumer(surges_topic, bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return [(m.key.decode(), decode_message(m.value, m.headers), m.timestamp)
                for m in consumer]
    finally:
        consumer.close()


def surge_files(out):
    """The records of the Avro surge files, as read from them (times as datetimes)."""
    return [record for _, record in read_records(out, "surges")]


def _key(record):
    start_ms = int(record["window_start"].timestamp() * 1000)
    return f"surges/{start_ms}/{'+'.join(record['entities'])}"


def test_an_injected_burst_is_flagged_in_its_window_only(bootstrap, topic, tmp_path):
    reuters, burst, burst_hour = burst_slice()
    hours = sorted({a["published_at"] // H for a in reuters})
    publish(reuters + burst, bootstrap_servers=bootstrap, topic=topic)
    surges_topic = f"{topic}.surges"
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="prism", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        rules_only=True, sliding_window_seconds=0, surges_topic=surges_topic,
                        surge_top_pairs=3)
    start(settings).wait_until_finish()
    rows = inspect_output.load(tmp_path)
    surges = [r for r in rows if r["kind"] == "surges"]
    tuple_surges = [r for r in surges if r["entities"] == TUPLE]
    pair_surges = [r for r in surges if not r["tracked"]]
    assert [_ms(r["window_start"]) for r in tuple_surges] == [burst_hour * H], tuple_surges
    (s,) = tuple_surges
    in_hour = sum(1 for a in reuters + burst if a["published_at"] // H == burst_hour)
    assert (s["articles"], s["total_articles"]) == (5, in_hour)
    assert s["baseline"] == 0.0 and s["score"] >= s["threshold"]
    # --surge-top-pairs 3: the burst hour's three largest pairs are the tuple's
    # three pairs (each seed article holds all three entities), absent from the
    # earlier tables (a bound of 0 there: tables never reduced), so each scores
    # 0.6745 * (5 / in_hour) / 0.005; no other window has a pair surge.
    assert sorted((_ms(r["window_start"]), r["entities"], r["articles"]) for r in pair_surges) \
        == [(burst_hour * H, [a, b], 5) for a, b in
            (("BRIDGE", "NORTH_KOREA"), ("BRIDGE", "RUSSIA"), ("NORTH_KOREA", "RUSSIA"))]
    assert all(r["baseline"] == 0.0 and abs(r["score"] - 0.6745 * 5 / in_hour / 0.005) < 1e-9
               for r in pair_surges)
    # The tuple's own windows: only the burst hour has it at all.
    tuple_hours = {_ms(r["window_start"]) for r in rows if r["kind"] == "cooccurrence"
                   and r["tracked"] and r["scope"] == "article" and r["entities"] == TUPLE}
    assert tuple_hours == {burst_hour * H}
    # The topic: each surge record once, exactly the files' records, keyed by
    # window start and entities, stamped with the window's end.
    messages, files = surge_messages(bootstrap, surges_topic), surge_files(tmp_path)
    assert sorted(((k, r) for k, r, _ in messages), key=repr) == sorted(
        ((_key(r), r) for r in files), key=repr)
    assert f"surges/{burst_hour * H}/{'+'.join(TUPLE)}" in {k for k, _, _ in messages}
    assert all(t == int(r["window_end"].timestamp() * 1000) for _, r, t in messages)
    print(f"\nsurges: {len(surges)} in {len(hours) + 1} hours ({len(tuple_surges)} of the "
          f"tuple); burst {s['articles']} of {s['total_articles']}, score {s['score']:.1f}")


def test_after_kill_9_a_surge_may_come_again_and_its_latest_message_is_the_files_record(
        bootstrap, topic, tmp_path):
    """At-least-once with a stable key, shown: the first run is killed as soon as
    the burst's surge is on the topic, before its first checkpoint (every 60
    s), so the restart closes that window again and publishes it again."""
    from tests.integration.pipeline_process import PipelineProcess, wait_until
    reuters, burst, burst_hour = burst_slice()
    articles = reuters + burst
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    out, surges_topic = tmp_path / "out", f"{topic}.surges"
    args = ["--topic", topic, "--output", out, "--bootstrap-servers", bootstrap,
            "--group-id", f"g-{topic}", "--runner", "prism", "--rules-only",
            "--sliding-window-seconds", 0, "--surges-topic", surges_topic,
            "--checkpoint-interval-seconds", 60, "--early-firing-seconds", 1,
            "--idle-timeout-seconds", 2]
    burst_key = f"surges/{burst_hour * H}/{'+'.join(TUPLE)}"
    seen = []   # (key, record) in topic order, read as they come
    consumer = KafkaConsumer(surges_topic, bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest")

    def read():
        for batch in consumer.poll(timeout_ms=200).values():
            seen.extend((m.key.decode(), decode_message(m.value, m.headers)) for m in batch)
        return seen

    try:
        first = PipelineProcess(args, tmp_path / "first.log").start()
        try:
            wait_until(lambda: burst_key in {k for k, _ in read()}, 180,
                       "the burst's surge on the topic", poll_s=0.05, proc=first)
        finally:
            first.kill()
        # The premise: nothing was checkpointed, so the restart starts again.
        assert not (out / "_checkpoint" / "aggregation.pickle").exists()
        time.sleep(1)
        before = {k for k, _ in read()}
        last_hour = max(a["published_at"] // H for a in articles)
        last_window = window_dir(out, "entity_counts", last_hour * H, (last_hour + 1) * H)

        def settled():
            keys = [k for k, _ in read()]
            latest = dict(seen)   # a later message of a key replaces the earlier
            files = {_key(r): r for r in surge_files(out)}
            return (any(last_window.glob("pane-*-ON_TIME.avro"))
                    and all(keys.count(k) == 2 for k in before) and latest == files)

        second = PipelineProcess(args, tmp_path / "second.log").start()
        try:
            wait_until(settled, 180, "every surge published again and the latest of each key "
                       "equal to the Avro files' record", poll_s=0.5, proc=second)
        finally:
            second.stop()
        read()
    finally:
        consumer.close()
    files = {_key(r): r for r in surge_files(out)}
    assert dict(seen) == files and burst_key in files
    keys = [k for k, _ in seen]
    assert keys.count(burst_key) == 2 and all(keys.count(k) in (1, 2) for k in keys), keys
    for k in set(keys):   # a message again: the same record but when it was emitted
        copies = [dict(r, emitted_at=None) for key, r in seen if key == k]
        assert all(c == copies[0] for c in copies), copies
    print(f"\nsurges topic after kill -9: {len(seen)} messages, {len(files)} surge records, "
          f"{len(before)} published before the kill, all again after it")
