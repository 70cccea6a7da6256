"""Reading a test topic back: every record, from the start."""
import json

__all__ = ["topic_records"]


def topic_records(bootstrap, topic, idle_ms=3000):
    """``[(key, Kafka timestamp ms, decoded JSON value)]`` of ``topic``, in offset order
    per partition, read until nothing came for ``idle_ms``."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    try:
        return [(m.key.decode(), m.timestamp, json.loads(m.value)) for m in consumer]
    finally:
        consumer.close()
