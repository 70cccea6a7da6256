"""The seeds through the real broker and the real pipeline, checked against
an independent computation (tests/integration/oracle.py).

- bounded, on the DirectRunner (FnApiRunner);
- continuous, on Prism: a malformed message among the seeds goes to the
  dead-letter topic with its reason and coordinates while every valid article
  is counted, and the /metrics endpoint shows the run's counts.
"""
import json
import pathlib
import time

import pytest
import spacy
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.replay import publish, read_articles
from pipeline import inspect_output, metrics
from pipeline.entities import DEFAULT_MODEL
from pipeline.run import cancel, start
from pipeline.settings import Settings
from tests.integration.oracle import expected_final_counts, final_counts_from_rows, oracle_nlp
from tests.scrape import free_port, scrape, total

pytestmark = [pytest.mark.broker, pytest.mark.spacy]

SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"
WINDOW = 3600


@pytest.fixture(scope="module")
def seed_articles():
    return list(read_articles([SEEDS]))


@pytest.fixture(scope="module")
def expected(seed_articles):
    nlp, types = oracle_nlp(spacy.load(DEFAULT_MODEL))
    return expected_final_counts(seed_articles, WINDOW, nlp, types)


def test_bounded_direct_run_matches_independent_counts(bootstrap, topic, tmp_path,
                                                       seed_articles, expected):
    publish(seed_articles, bootstrap_servers=bootstrap, topic=topic)
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, window_seconds=WINDOW,
                        group_id=f"g-{topic}", metrics_port=0)
    start(settings).wait_until_finish()
    rows = inspect_output.load(tmp_path)
    assert final_counts_from_rows(rows) == expected
    # The group's offset is committed up to the end: 5 records, offsets 0..4.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=settings.group_id,
                             enable_auto_commit=False)
    assert consumer.committed(TopicPartition(topic, 0)) == len(seed_articles)
    consumer.close()
    # Sanity of the oracle itself: five windows, the three tracked entities in every
    # one, and one id per person (tests/fixtures/seed_tracked_counts.json has the counts).
    assert len({w for w, _ in expected}) == 5
    assert all((w, t) in expected for w, _ in expected for t in ("RUSSIA", "NORTH_KOREA", "BRIDGE"))
    ids = {e for _, e in expected}
    assert "PERSON:mikhail mishustin" in ids and "PERSON:mishustin" not in ids
    assert not any(e.startswith("GPE:") and "korea'" in e for e in ids)








@pytest.mark.prism
def test_streaming_prism_run_counts_seeds_and_dead_letters_bad_message(
        bootstrap, topic, tmp_path, seed_articles, expected, prism_bin, monkeypatch):
    monkeypatch.setenv("ENTITYSTREAM_PRISM_BIN", prism_bin)
    port = free_port()
    metrics.serve(port)
    before = scrape(port)
    publish(seed_articles, bootstrap_servers=bootstrap, topic=topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    bad = producer.send(topic, key=b"bad-1", value=b'{"id": "bad-1", "title": ').get(timeout=30)
    producer.close()

    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="prism", window_seconds=WINDOW, group_id=f"g-{topic}",
                        early_firing_seconds=0.5, idle_timeout_seconds=8.0, metrics_port=0)
    result = start(settings)
    try:
        deadline = time.monotonic() + 180
        while True:
            finals = final_counts_from_rows(inspect_output.load(tmp_path)) if any(
                tmp_path.rglob("*.avro")) else {}
            if {w for w, _ in finals} >= {w for w, _ in expected}:
                break
            assert time.monotonic() < deadline, "final panes did not all arrive in 180 s"
            assert "FAILED" not in str(result.state)
            time.sleep(0.5)
        assert finals == expected
        # The dead letter is published as soon as its bundle finishes.
        deadline = time.monotonic() + 60
        while total(scrape(port), "entitystream_messages_settled_total",
                    outcome="dead_letter") - total(before, "entitystream_messages_settled_total",
                                                   outcome="dead_letter") < 1:
            assert time.monotonic() < deadline, "the dead letter was not settled in 60 s"
            time.sleep(0.5)
        after = scrape(port)
        # Early panes go out at most every 0.5 s while articles flow. Whether
        # a given hour window gets one before the watermark closes it depends
        # on bundle timing, but the running window stays open for the whole
        # run, so it always has EARLY panes. Every hour window ends with a
        # final ON_TIME pane whose index follows its earlier panes.
        running = inspect_output.load(tmp_path, "running_entity_counts")
        assert running and {r["pane_timing"] for r in running} == {"EARLY"}
        assert not any(r["is_final"] for r in running)
        rows = inspect_output.load(tmp_path, "entity_counts")
        panes = {}
        for r in rows:
            panes.setdefault(r["window_start"], set()).add(
                (r["pane_index"], r["pane_timing"], r["is_final"]))
        for window, seen in panes.items():
            last = max(seen)
            assert last[1:] == ("ON_TIME", True), (window, seen)
            assert sorted(i for i, _, _ in seen) == list(range(last[0] + 1)), (window, seen)
    finally:
        cancel(result)

    # Metrics: consumed = 5 articles + 1 bad message; one dead letter.
    delta = lambda name, **l: total(after, name, **l) - total(before, name, **l)
    assert delta("entitystream_articles_consumed_total", topic=topic) == 6
    assert delta("entitystream_dead_letters_total", reason="invalid_json") == 1
    assert delta("entitystream_entities_extracted_total") == sum(m for m, _ in expected.values())
    assert delta("entitystream_panes_emitted_total", kind="entity_counts", timing="ON_TIME") == 5

    # The dead letter: reason, coordinates and the raw bytes.
    consumer = KafkaConsumer(f"{topic}.dlq", bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    letters = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["reason"], letter["topic"], letter["partition"], letter["offset"]) == \
        ("invalid_json", topic, bad.partition, bad.offset)
    assert letter["value"] == '{"id": "bad-1", "title": '
