"""Whether the pipeline's Kafka clients can reach the brokers: metrics and log.

kafka-python reconnects by itself after a broker outage (docs/reliability.md,
R3); what it does not say is whether it currently can. ``connection_state``
reads it from a client's connection manager (kafka-python 3.x internals,
read only): a connection to some broker is up (reachable), or none is and
the last attempts failed (it is backing off: unreachable), or neither (not
connected yet, or an idle connection closed: nothing to tell).

Each Kafka client of the pipeline has a ``KafkaHealth`` of its kind
(``reader``, ``writer``, ``committer``): it ``watch``es the client (a
background thread reads its state every second, since a client may go unused
for a while: the reader's calls are as far apart as its bundles are long) and
is told ``down(exc)``/``up()`` from what the client's own calls returned.
Per kind:

- ``entitystream_kafka_connected{client}``: 0 while a client of that kind
  cannot reach Kafka (it said so within the last minute), else 1;
- ``entitystream_kafka_disconnects_total{client}``: outages seen;
- ``entitystream_kafka_unreachable_seconds_total{client}``: their length,
  added when the client is back;
- a warning when the brokers become unreachable and one when they are back::

    Kafka at 127.0.0.1:19092 unreachable since 2026-11-24 10:16:36 (reader); retrying
    Kafka at 127.0.0.1:19092 reachable again (reader): reconnected after 23.3 s

Example::

    health = KafkaHealth("reader", "127.0.0.1:19092")
    health.watch(consumer)   # reported every second from now on
    ...
    health.close()           # with the consumer
"""
import datetime
import logging
import threading
import time

from prometheus_client import Counter, Gauge

__all__ = ["KafkaHealth", "connection_state", "RECONNECT_BACKOFF_MAX_MS", "KAFKA_CONNECTED",
           "KAFKA_DISCONNECTS", "KAFKA_UNREACHABLE_SECONDS"]

_LOG = logging.getLogger(__name__)

KAFKA_CONNECTED = Gauge("entitystream_kafka_connected",
                        "1 while the pipeline's Kafka clients of this kind reach the brokers, "
                        "0 while one of them cannot (it keeps retrying).", ["client"])
KAFKA_DISCONNECTS = Counter("entitystream_kafka_disconnects",
                            "Times the Kafka clients of this kind lost the brokers "
                            "(they reconnect by themselves).", ["client"])
KAFKA_UNREACHABLE_SECONDS = Counter("entitystream_kafka_unreachable_seconds",
                                    "Seconds the Kafka clients of this kind could not reach "
                                    "the brokers, added when they are back.", ["client"])

#: Longest wait between reconnection attempts of the pipeline's Kafka clients
#: (the Java client's default; kafka-python's is 30 s): after an outage they
#: are back at most about this long after the broker.
RECONNECT_BACKOFF_MAX_MS = 1000

_WATCH_INTERVAL_S = 1.0  # how often watched clients' connection states are read
#: A client's "unreachable" counts for this long after its last report: a
#: client gone without saying it is back (a discarded DoFn) does not hold the
#: gauge at 0 for ever. Clients that wait on an outage report more often.
_STALE_SECONDS = 60.0


def _manager_of(client):
    """The kafka-python 3.x connection manager of a KafkaConsumer or KafkaProducer."""
    manager = getattr(client, "_manager", None)  # KafkaConsumer
    if manager is None:  # KafkaProducer: its sender's client
        manager = getattr(getattr(getattr(client, "_sender", None), "_client", None),
                          "_manager", None)
    return manager


def connection_state(client):
    """True if ``client`` (a KafkaConsumer or KafkaProducer) has a connection
    up to some broker; False if it has none and its last connection attempts
    failed (kafka-python is backing off before the next); None when it cannot
    tell (not connected yet, an idle connection closed, or a kafka-python
    without these internals)."""
    manager = _manager_of(client)
    conns = getattr(manager, "_conns", None)
    backoff = getattr(manager, "_backoff", None)  # node -> (failures, until, timeout)
    if not isinstance(conns, dict) or not isinstance(backoff, dict):
        return None
    if any(getattr(conn, "connected", False) for conn in list(conns.values())):
        return True
    return False if backoff else None


class _Kind:
    """Every client of one kind in this process."""

    def __init__(self, kind):
        self.kind = kind
        self.down = {}  # client key -> [wall since, monotonic since, monotonic last report]
        self.outage = None  # (wall since, monotonic since) while the kind is unreachable
        KAFKA_CONNECTED.labels(kind).set_function(self.connected)
        KAFKA_DISCONNECTS.labels(kind)  # the series exist (at 0) before any outage
        KAFKA_UNREACHABLE_SECONDS.labels(kind)

    def fresh_down(self, now):
        return [d for d in self.down.values() if now - d[2] < _STALE_SECONDS]

    def connected(self):
        with _HEALTH_LOCK:
            return 0.0 if self.fresh_down(time.monotonic()) else 1.0


_HEALTH_LOCK = threading.Lock()
_KINDS = {}
_WATCHED = {}  # KafkaHealth -> the client it watches
_WATCHER = []  # the watcher thread, once started


def _watch_loop():
    while True:
        time.sleep(_WATCH_INTERVAL_S)
        with _HEALTH_LOCK:
            watched = list(_WATCHED.items())
        for health, client in watched:
            try:
                health.observe(client)
            except Exception:  # noqa: BLE001 - a figure: never stop watching
                _LOG.debug("observing a Kafka client failed", exc_info=True)


class KafkaHealth:
    """One Kafka client's view of the brokers, reported to its kind's metrics and log.

    ``kind``: ``reader``, ``writer`` or ``committer`` (the metrics' ``client``
    label); ``servers``: the bootstrap servers, for the log. Call
    ``observe(client)`` after using the client, or ``down(exc)``/``up()``
    when a call failed or succeeded; ``close()`` when the client is closed.
    Thread-safe.
    """

    def __init__(self, kind, servers):
        self._servers = servers
        self._key = object()
        with _HEALTH_LOCK:
            self._kind = _KINDS.get(kind)
            if self._kind is None:
                self._kind = _KINDS[kind] = _Kind(kind)

    @property
    def connected(self):
        """False while this client is unreachable, else True."""
        with _HEALTH_LOCK:
            return self._key not in self._kind.down

    def watch(self, client):
        """Observe ``client`` every second from now on (until ``unwatch`` or ``close``)."""
        with _HEALTH_LOCK:
            _WATCHED[self] = client
            if not _WATCHER or not _WATCHER[0].is_alive():
                _WATCHER[:] = [threading.Thread(target=_watch_loop, daemon=True,
                                                name="entitystream-kafka-health")]
                _WATCHER[0].start()

    def unwatch(self):
        with _HEALTH_LOCK:
            _WATCHED.pop(self, None)

    def observe(self, client):
        """Report ``client``'s connection state; return it (see ``connection_state``)."""
        state = connection_state(client)
        if state is True:
            self.up()
        elif state is False:
            self.down()
        return state

    def down(self, reason=None):
        """This client cannot reach the brokers (``reason``: the error, if any)."""
        now, wall = time.monotonic(), time.time()
        with _HEALTH_LOCK:
            entry = self._kind.down.get(self._key)
            if entry is None:
                self._kind.down[self._key] = [wall, now, now]
            else:
                entry[2] = now
            self._settle(now, reason)

    def up(self):
        """This client reaches the brokers."""
        with _HEALTH_LOCK:
            if self._kind.down.pop(self._key, None) is not None or self._kind.outage:
                self._settle(time.monotonic())

    def close(self):
        with _HEALTH_LOCK:
            _WATCHED.pop(self, None)
            if self._kind.down.pop(self._key, None) is not None:
                self._settle(time.monotonic(), closing=True)

    def _settle(self, now, reason=None, closing=False):
        kind = self._kind
        down = kind.fresh_down(now)
        if down and kind.outage is None:
            since = min(down, key=lambda d: d[1])
            kind.outage = (since[0], since[1])
            KAFKA_DISCONNECTS.labels(kind.kind).inc()
            stamp = datetime.datetime.fromtimestamp(since[0]).isoformat(sep=" ",
                                                                       timespec="seconds")
            cause = f": {type(reason).__name__}: {reason}" if reason is not None else ""
            _LOG.warning("Kafka at %s unreachable since %s (%s%s); retrying",
                         self._servers, stamp, kind.kind, cause)
        elif not down and kind.outage is not None:
            seconds = max(0.0, now - kind.outage[1])
            kind.outage = None
            KAFKA_UNREACHABLE_SECONDS.labels(kind.kind).inc(seconds)
            if closing:
                _LOG.warning("Kafka at %s: the %s that could not reach it was closed after "
                             "%.1f s", self._servers, kind.kind, seconds)
            else:
                _LOG.warning("Kafka at %s reachable again (%s): reconnected after %.1f s",
                             self._servers, kind.kind, seconds)
