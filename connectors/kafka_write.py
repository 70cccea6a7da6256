"""WriteToKafka: publish a PCollection to a Kafka topic with kafka-python.

Each element becomes one message: ``key_fn(element)`` and
``value_fn(element)`` give its key and value bytes. A bundle finishes only
after the producer has flushed and every send is acknowledged, so a failed
send fails (and retries) the bundle rather than losing the message. The
output is the elements themselves, each emitted once its send is
acknowledged: a later stage may count on them being in Kafka.
"""
import json

import apache_beam as beam

__all__ = ["WriteToKafka", "json_value"]


def json_value(record: dict) -> bytes:
    """A dict as UTF-8 JSON; bytes values are decoded as Latin-1 so nothing is lost.
    Keys starting with ``_`` are the pipeline's own (e.g. ``_position``): not published."""
    def default(obj):
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("latin-1")
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
    public = {k: v for k, v in record.items() if not k.startswith("_")}
    return json.dumps(public, default=default, sort_keys=True).encode("utf-8")


class _ProduceFn(beam.DoFn):
    def __init__(self, bootstrap_servers, topic, key_fn, value_fn, headers_fn, producer_config):
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._key_fn = key_fn
        self._value_fn = value_fn
        self._headers_fn = headers_fn
        self._config = dict(producer_config)
        self._producer = None
        self._futures = []

    def setup(self):
        from kafka import KafkaProducer
        self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, acks="all",
                                       client_id="entitystream-writer", **self._config)

    def start_bundle(self):
        self._futures = []

    def process(self, element, wv=beam.DoFn.WindowedValueParam):
        self._futures.append((wv, self._producer.send(
            self._topic, key=self._key_fn(element), value=self._value_fn(element),
            headers=self._headers_fn(element) if self._headers_fn else None)))

    def finish_bundle(self):
        futures, self._futures = self._futures, []
        if not futures:
            return
        self._producer.flush()
        for wv, future in futures:
            future.get(timeout=30)  # raises KafkaError: the bundle fails and is retried
            yield wv

    def teardown(self):
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None


class WriteToKafka(beam.PTransform):
    """Publishes each element to ``topic``.

    Args:
      bootstrap_servers: ``host:port[,...]``.
      topic: destination topic.
      key_fn: element -> key bytes or None (default: None).
      value_fn: element -> value bytes (default: ``json_value``).
      headers_fn: element -> list of ``(str, bytes)`` headers (default: none).
      producer_config: extra ``KafkaProducer`` settings.

    Example::

        dead_letters | 'PublishDeadLetters' >> WriteToKafka(
            bootstrap_servers=servers, topic='articles.dlq')
    """

    def __init__(self, *, bootstrap_servers, topic, key_fn=None, value_fn=json_value,
                 headers_fn=None, producer_config=None):
        super().__init__()
        if not topic:
            raise ValueError("WriteToKafka needs a topic name")
        self._args = (bootstrap_servers, topic, key_fn or (lambda _: None), value_fn,
                      headers_fn, tuple(sorted((producer_config or {}).items())))

    def expand(self, pcoll):
        return pcoll | "Produce" >> beam.ParDo(_ProduceFn(*self._args))
