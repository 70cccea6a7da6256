"""WriteToKafka: publish a PCollection to a Kafka topic with kafka-python.

Each element becomes one message: ``key_fn(element)`` and
``value_fn(element)`` give its key and value bytes. A bundle finishes only
after every send is acknowledged. The output is the elements themselves,
each emitted once its send is acknowledged: a later stage may count on them
being in Kafka.

A failed bundle fails the whole job on Prism (it does not retry bundles), so
a send that fails because Kafka cannot be reached (a retriable error: the
producer's own retries timed out, no broker to bootstrap from) is sent again
until it is acknowledged: the bundle waits, logging each wait, for up to
``max_outage_seconds`` (default 600) before it gives up and fails. Nothing is
lost; a message may be in the topic twice (at-least-once: the producer is
not idempotent, see ``_get_producer``, and a resend after a timeout may
repeat a write whose acknowledgement was lost). A non-retriable
error (e.g. a message too large) fails the bundle at once, as before. The
producer reports its connection to ``kafka_health.KafkaHealth``
(``client="writer"``).
"""
import json
import logging
import time

import apache_beam as beam
from kafka.errors import KafkaError, KafkaTimeoutError

from connectors.kafka_health import RECONNECT_BACKOFF_MAX_MS, KafkaHealth

__all__ = ["WriteToKafka", "json_value"]

_LOG = logging.getLogger(__name__)
_WAIT_STEP_S = 10.0  # how often a bundle waiting on Kafka logs and checks


def json_value(record: dict) -> bytes:
    """A dict as UTF-8 JSON; bytes values are decoded as Latin-1 so nothing is lost.
    Keys starting with ``_`` are the pipeline's own (e.g. ``_position``): not published."""
    def default(obj):
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("latin-1")
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
    public = {k: v for k, v in record.items() if not k.startswith("_")}
    return json.dumps(public, default=default, sort_keys=True).encode("utf-8")


def _outage(exc):
    """Whether a send error means Kafka could not be reached (worth sending again)."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, OSError)


class _ProduceFn(beam.DoFn):
    def __init__(self, bootstrap_servers, topic, key_fn, value_fn, headers_fn, producer_config,
                 max_outage_s=600.0, timestamp_fn=None):
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._key_fn = key_fn
        self._value_fn = value_fn
        self._headers_fn = headers_fn
        self._timestamp_fn = timestamp_fn
        self._config = dict(producer_config)
        self._max_outage = max_outage_s
        self._producer = None
        self._futures = []
        self._health = None
        self._create_failed = None  # (monotonic time, error) of the last failed KafkaProducer()

    def setup(self):
        self._health = KafkaHealth("writer", self._bootstrap)
        try:
            self._get_producer()
        except (KafkaError, OSError) as exc:  # no broker now: the first send tries again
            if not _outage(exc):
                raise
            self._health.down(exc)

    def _get_producer(self):
        if self._producer is None:
            failed = self._create_failed
            if failed is not None and time.monotonic() - failed[0] < _WAIT_STEP_S:
                raise failed[1]  # the broker was not there a moment ago: not every element
            from kafka import KafkaProducer
            # Not idempotent: kafka-python 3.0.12's idempotent producer never
            # sends to a partition again once a batch for it expired (an outage
            # longer than delivery_timeout_ms); one request in flight keeps
            # the order instead.
            config = dict(acks="all", client_id="entitystream-writer",
                          enable_idempotence=False, max_in_flight_requests_per_connection=1,
                          reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                          max_block_ms=int(_WAIT_STEP_S * 1000),
                          bootstrap_timeout_ms=int(_WAIT_STEP_S * 1000))
            config.update(self._config)
            try:
                self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, **config)
            except (KafkaError, OSError) as exc:
                self._create_failed = (time.monotonic(), exc)
                raise
            self._create_failed = None
            self._health.watch(self._producer)
        return self._producer

    def start_bundle(self):
        self._futures = []

    def _send(self, element):
        """The send's future, or the retriable error that kept it from being sent."""
        try:
            return self._get_producer().send(
                self._topic, key=self._key_fn(element), value=self._value_fn(element),
                headers=self._headers_fn(element) if self._headers_fn else None,
                timestamp_ms=self._timestamp_fn(element) if self._timestamp_fn else None)
        except (KafkaError, OSError) as exc:  # no broker (bootstrap, metadata): sent again
            if not _outage(exc):
                raise
            return exc

    def process(self, element, wv=beam.DoFn.WindowedValueParam):
        self._futures.append((wv, element, self._send(element)))

    def finish_bundle(self):
        pending, self._futures = self._futures, []
        started = time.monotonic()
        while pending:
            if self._producer is not None:
                try:
                    self._producer.flush(timeout=_WAIT_STEP_S)
                except KafkaTimeoutError:  # not all acknowledged yet
                    pass
            else:  # no producer (no broker to bootstrap from): wait for the next attempt
                failed = self._create_failed
                time.sleep(max(0.5, failed[0] + _WAIT_STEP_S - time.monotonic())
                           if failed else 0.5)
            waiting, error = [], None
            for wv, element, sent in pending:
                if not isinstance(sent, Exception) and not sent.is_done:
                    waiting.append((wv, element, sent))
                elif not isinstance(sent, Exception) and sent.succeeded():
                    yield wv
                else:
                    error = sent if isinstance(sent, Exception) else sent.exception
                    if not _outage(error):
                        raise error  # not an outage: the bundle fails, as it always did
                    waiting.append((wv, element, self._send(element)))
            pending = waiting
            if not pending:
                break
            waited = time.monotonic() - started
            if error is not None:
                self._health.down(error)
            elif self._producer is not None:
                self._health.observe(self._producer)
            if waited > self._max_outage:
                raise RuntimeError(
                    f"{len(pending)} message(s) for {self._topic} not acknowledged by Kafka at "
                    f"{self._bootstrap} after {waited:.0f} s (max_outage_seconds "
                    f"{self._max_outage:.0f}); last error: {error}")
            _LOG.warning("%d message(s) for %s not acknowledged after %.0f s (Kafka at %s: %s); "
                         "waiting, up to %.0f s", len(pending), self._topic, waited,
                         self._bootstrap, error or "no answer yet", self._max_outage)
        if not self._health.connected:  # everything acknowledged: Kafka is back
            self._health.up()

    def teardown(self):
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except KafkaError:  # sends left unacknowledged (Kafka down): best effort
                _LOG.debug("closing the producer of %s failed", self._topic, exc_info=True)
            self._producer = None
        if self._health is not None:
            self._health.close()


class WriteToKafka(beam.PTransform):
    """Publishes each element to ``topic``.

    Args:
      bootstrap_servers: ``host:port[,...]``.
      topic: destination topic.
      key_fn: element -> key bytes or None (default: None).
      value_fn: element -> value bytes (default: ``json_value``).
      headers_fn: element -> list of ``(str, bytes)`` headers (default: none).
      timestamp_fn: element -> the message's timestamp, epoch ms (default: none,
        the producer's clock).
      producer_config: extra ``KafkaProducer`` settings, e.g. security options
        (``KafkaSecurity.client_config()``).
      max_outage_seconds: how long a bundle waits for Kafka to acknowledge its
        messages through an outage, sending again what failed, before it
        fails (default 600).

    Example::

        dead_letters | 'PublishDeadLetters' >> WriteToKafka(
            bootstrap_servers=servers, topic='articles.dlq')
    """

    def __init__(self, *, bootstrap_servers, topic, key_fn=None, value_fn=json_value,
                 headers_fn=None, producer_config=None, max_outage_seconds=600.0,
                 timestamp_fn=None):
        super().__init__()
        if not topic:
            raise ValueError("WriteToKafka needs a topic name")
        if max_outage_seconds <= 0:
            raise ValueError(f"max_outage_seconds must be > 0, got {max_outage_seconds}")
        self._args = (bootstrap_servers, topic, key_fn or (lambda _: None), value_fn,
                      headers_fn, tuple(sorted((producer_config or {}).items())),
                      max_outage_seconds, timestamp_fn)

    def expand(self, pcoll):
        return pcoll | "Produce" >> beam.ParDo(_ProduceFn(*self._args))
