"""Per-partition watermarks on Prism: the slowest partition holds the
pipeline's watermark, so a window closes only when every active partition has
moved past its end."""
import datetime as dt
import time

import pytest
from kafka import KafkaProducer

from connectors.replay import ensure_topic
from pipeline import inspect_output
from pipeline.run import cancel, start
from pipeline.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy]

DAY = dt.datetime(2025, 5, 3, tzinfo=dt.timezone.utc)


def _send(producer, topic, partition, article_id, hour, minute=0):
    at = DAY + dt.timedelta(hours=hour, minutes=minute)
    ms = int(at.timestamp() * 1000)
    value = (f'{{"id": "{article_id}", "title": "Russia", "body": "Russia and North Korea '
             f'met in Moscow.", "published_at": {ms}}}').encode()
    producer.send(topic, key=article_id.encode(), value=value, partition=partition,
                  timestamp_ms=ms).get(timeout=30)


def _final_windows(out):
    if not any(out.rglob("*.avro")):
        return set()
    return {r["window_start"][11:16] for r in inspect_output.load(out, "entity_counts")
            if r["is_final"]}


def test_slowest_partition_holds_the_watermark(bootstrap, topic, tmp_path, prism_bin,
                                               monkeypatch):
    monkeypatch.setenv("ENTITYSTREAM_PRISM_BIN", prism_bin)
    assert ensure_topic(bootstrap, topic, partitions=2) == 2
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    _send(producer, topic, 0, "p0-a", 10)        # partition 0 at 10:00 ...
    _send(producer, topic, 0, "p0-b", 14)        # ... and 14:00
    _send(producer, topic, 1, "p1-a", 10, 30)    # partition 1 only at 10:30
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="prism", group_id=f"g-{topic}", sliding_window_seconds=0,
                        early_firing_seconds=0.5, idle_timeout_seconds=600, metrics_port=0)
    result = start(settings)
    try:
        # Watermark = min(14:00, 10:30) = 10:30: the 10:00 window must stay open.
        deadline = time.monotonic() + 120
        while not any(tmp_path.rglob("pane-0000-EARLY.avro")):
            assert time.monotonic() < deadline, "no pane at all in 120 s"
            time.sleep(0.5)
        time.sleep(5)
        assert _final_windows(tmp_path) == set()
        # Partition 1 moves to 12:00: watermark = min(14:00, 12:00) = 12:00,
        # which closes [10:00, 11:00) and nothing after it.
        _send(producer, topic, 1, "p1-b", 12)
        deadline = time.monotonic() + 120
        while "10:00" not in _final_windows(tmp_path):
            assert time.monotonic() < deadline, "the 10:00 window did not close in 120 s"
            time.sleep(0.5)
        time.sleep(3)
        assert _final_windows(tmp_path) == {"10:00"}
    finally:
        producer.close()
        cancel(result)
