"""CommitOffsets: commit a consumer group's offsets once a later stage says so.

The pipeline commits an offset only when everything before it is durably
counted (its aggregation checkpoints; see ``pipeline/aggregate.py``), so the
committing is done here, called with ``{(topic, partition): next offset}``
after each checkpoint, not by the reader.

Commits are advisory: where a restarted pipeline starts reading. Exactness
comes from the checkpoint's ledger, which skips what it already holds. So a
commit never blocks the caller: a background thread commits the newest
offsets asked for, and a commit that fails (broker down, coordinator moving)
is logged, counted and retried with the next request or a few seconds later.
Through a broker outage it keeps retrying (a new consumer each time, which
waits up to ``bootstrap_timeout_ms`` for a broker), reports to
``kafka_health.KafkaHealth`` (``client="committer"``) and commits the
newest offsets asked for once the broker is back.
"""
import logging
import threading

from prometheus_client import Counter

from connectors.kafka_health import RECONNECT_BACKOFF_MAX_MS, KafkaHealth

__all__ = ["CommitOffsets", "COMMIT_FAILURES"]

_LOG = logging.getLogger(__name__)

COMMIT_FAILURES = Counter("entitystream_offset_commit_failures",
                          "Offset commits to the consumer group that failed (retried).")

_RETRY_SECONDS = 5.0


class _Committer(threading.Thread):
    def __init__(self, bootstrap_servers, group_id, consumer_config):
        super().__init__(name=f"entitystream-commit-{group_id}", daemon=True)
        self._config = dict(bootstrap_servers=bootstrap_servers, group_id=group_id,
                            enable_auto_commit=False, client_id="entitystream-committer",
                            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                            bootstrap_timeout_ms=10_000)
        self._config.update(dict(consumer_config))
        self._health = KafkaHealth("committer", bootstrap_servers)
        self._group = group_id
        self._lock = threading.Condition()
        self._wanted = {}
        self._done = {}
        self._consumer = None

    def request(self, offsets):
        with self._lock:
            for tp, offset in offsets.items():
                if offset > max(self._wanted.get(tp, -1), self._done.get(tp, -1)):
                    self._wanted[tp] = offset
            self._lock.notify_all()

    def wait_for(self, offsets, timeout_s):
        """Wait until ``offsets`` are committed; False when ``timeout_s`` passed first."""
        import time
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while any(self._done.get(tp, -1) < o for tp, o in offsets.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def run(self):
        while True:
            with self._lock:
                while not self._wanted:
                    self._lock.wait()
                wanted, self._wanted = self._wanted, {}
            try:
                self._commit(wanted)
                self._health.up()
            except Exception as exc:  # noqa: BLE001 - any client error: retry later
                COMMIT_FAILURES.inc()
                if getattr(exc, "retriable", False) or isinstance(exc, OSError):
                    self._health.down(exc)  # timeouts, lost connections: Kafka unreachable
                _LOG.warning("committing offsets of group %s failed (%s: %s); retrying in %.0f s",
                             self._group, type(exc).__name__, exc, _RETRY_SECONDS)
                self._close()
                with self._lock:
                    for tp, offset in wanted.items():
                        if offset > self._wanted.get(tp, -1):
                            self._wanted[tp] = offset
                    self._lock.wait(_RETRY_SECONDS)

    def _commit(self, offsets):
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata
        if self._consumer is None:
            self._consumer = KafkaConsumer(**self._config)
            self._health.watch(self._consumer)
        self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                               for (t, p), o in offsets.items()}, timeout_ms=10_000)
        with self._lock:
            self._done.update(offsets)
            self._lock.notify_all()
        _LOG.debug("committed %s for group %s", offsets, self._group)

    def _close(self):
        self._health.unwatch()
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            self._consumer = None

    def committed(self):
        with self._lock:
            return dict(self._done)


_COMMITTERS = {}
_COMMITTERS_LOCK = threading.Lock()


class CommitOffsets:
    """A picklable callable: ``commit({(topic, partition): offset})`` commits
    those offsets to ``group_id`` in the background (one thread per group and
    process).

    Args:
      bootstrap_servers: ``host:port[,...]``.
      group_id: the consumer group whose offsets move.
      consumer_config: extra ``KafkaConsumer`` settings (security options).
    """

    def __init__(self, *, bootstrap_servers, group_id, consumer_config=None):
        if not group_id:
            raise ValueError("CommitOffsets needs a group_id")
        self._args = (bootstrap_servers, group_id,
                      tuple(sorted((consumer_config or {}).items())))

    def _committer(self):
        with _COMMITTERS_LOCK:
            committer = _COMMITTERS.get(self._args)
            if committer is None or not committer.is_alive():
                committer = _COMMITTERS[self._args] = _Committer(*self._args)
                committer.start()
            return committer

    def __call__(self, offsets, wait=False, timeout_s=60.0):
        """Commit ``offsets`` in the background; with ``wait``, return only once
        they are committed (a bounded run must not end before that), or log
        a warning after ``timeout_s``."""
        if not offsets:
            return
        committer = self._committer()
        committer.request(dict(offsets))
        if wait and not committer.wait_for(offsets, timeout_s):
            _LOG.warning("offsets %s not committed to group %s after %.0f s; a restart "
                         "re-reads from the previous commit (nothing is counted twice)",
                         offsets, self._args[1], timeout_s)

    def committed(self):
        """What this process has committed so far (for tests and status)."""
        return self._committer().committed()
