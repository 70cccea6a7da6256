"""The Kafka source's progress metrics on a real broker, with records whose
timestamps are known: lag in records and in seconds, watermark lag, and the
time since the last read."""
import time

import pytest
from apache_beam.utils.timestamp import Timestamp
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.kafka_progress import PartitionProgress
from connectors.kafka_read import _KafkaConfig
from pipeline.metrics import sample_value

pytestmark = pytest.mark.broker

T0_MS = 1_700_000_000_000
STEP_MS = 60_000  # one record a minute of event time


def _gauge(name, topic):
    return sample_value(name, {"topic": topic, "partition": "0"})


def test_lag_in_records_and_seconds_then_caught_up(bootstrap, topic):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(10):
        producer.send(topic, value=b"%d" % i, timestamp_ms=T0_MS + i * STEP_MS)
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, max_poll_records=4)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    progress = PartitionProgress(_KafkaConfig(bootstrap, None, ()), tp)
    try:
        read = []
        deadline = time.monotonic() + 30
        while len(read) < 4 and time.monotonic() < deadline:
            read += consumer.poll(timeout_ms=500, max_records=4 - len(read)).get(tp, [])
        assert [r.offset for r in read] == [0, 1, 2, 3]
        last = read[-1]
        progress.update(consumer, 4, last, Timestamp(micros=last.timestamp * 1000))
        assert _gauge("entitystream_consumer_lag_records", topic) == 6
        # Newest record (offset 9, fetched by the probe) minus the last read (offset 3).
        assert _gauge("entitystream_consumer_lag_seconds", topic) == 6 * STEP_MS / 1000
        expected_wm_lag = time.time() - last.timestamp / 1000
        assert abs(_gauge("entitystream_watermark_lag_seconds", topic) - expected_wm_lag) < 5
        assert 0 <= sample_value("entitystream_time_since_last_article_seconds") < 5

        while len(read) < 10 and time.monotonic() < deadline:
            read += consumer.poll(timeout_ms=500).get(tp, [])
        assert read[-1].offset == 9
        progress.update(consumer, 10, read[-1], Timestamp(micros=read[-1].timestamp * 1000))
        assert _gauge("entitystream_consumer_lag_records", topic) == 0
        assert _gauge("entitystream_consumer_lag_seconds", topic) == 0
    finally:
        progress.close()
        consumer.close()
