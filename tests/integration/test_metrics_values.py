"""The /metrics endpoint on the DirectRunner (FnApiRunner), after a bounded run
over the seeds and one malformed message: every count equals the known
input. (The same on Prism, read back through a real Prometheus:
tests/integration/test_prometheus.py.)"""
import json
import time

import pytest
import spacy
from kafka import KafkaProducer

from connectors.replay import publish, read_articles
from pipeline import metrics
from pipeline.entities import DEFAULT_MODEL
from pipeline.run import start
from pipeline.settings import Settings
from tests.integration.oracle import expected_final_counts, oracle_nlp
from tests.promql import ROOT
from tests.scrape import free_port, scrape, total

pytestmark = [pytest.mark.broker, pytest.mark.spacy]

WINDOW = 3600








def test_direct_runner_metrics_equal_the_known_input(bootstrap, topic, tmp_path):
    seeds = list(read_articles([ROOT / "seeds"]))
    expected = expected_final_counts(seeds, WINDOW, *oracle_nlp(spacy.load(DEFAULT_MODEL)))
    port = free_port()
    metrics.serve(port)
    before = scrape(port)
    publish(seeds, bootstrap_servers=bootstrap, topic=topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    bad = b'{"id": "bad-1", "title": '
    newest_ms = max(a["published_at"] for a in seeds)
    producer.send(topic, key=b"bad-1", value=bad, timestamp_ms=newest_ms).get(timeout=30)
    producer.close()
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, window_seconds=WINDOW,
                        group_id=f"g-{topic}", metrics_port=0,
                        idle_timeout_seconds=600)  # the watermark follows the records only
    start(settings).wait_until_finish()
    after = scrape(port)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    sent_bytes = sum(len(json.dumps(a, ensure_ascii=False).encode("utf-8")) for a in seeds)
    assert delta("entitystream_articles_consumed_total", topic=topic) == 6
    assert delta("entitystream_consumed_bytes_total", topic=topic) == sent_bytes + len(bad)
    assert delta("entitystream_dead_letters_total", reason="invalid_json") == 1
    assert delta("entitystream_entities_extracted_total") == sum(m for m, _ in expected.values())
    assert delta("entitystream_panes_emitted_total", kind="entity_counts", timing="ON_TIME") == 5
    files = sorted((tmp_path / "entity_counts").rglob("pane-*.avro"))
    assert len(files) == 5
    assert delta("entitystream_avro_written_bytes_total", kind="entity_counts") == \
        sum(f.stat().st_size for f in files)
    assert delta("entitystream_sink_write_duration_seconds_count", kind="entity_counts") == 5
    assert delta("entitystream_ner_batch_duration_seconds_count") >= 1
    # Progress: read to the end; the watermark is the newest record timestamp.
    partition = {"topic": topic, "partition": "0"}
    assert total(after, "entitystream_consumer_lag_records", **partition) == 0
    assert total(after, "entitystream_consumer_lag_seconds", **partition) == 0
    lag = total(after, "entitystream_watermark_lag_seconds", **partition)
    assert time.time() - newest_ms / 1000 - 120 < lag <= time.time() - newest_ms / 1000
    info = [dict(l) for (n, l), v in after.items() if n == "entitystream_build_info"]
    assert info and info[0]["runner"] == "direct" and info[0]["spacy_model"] == DEFAULT_MODEL
