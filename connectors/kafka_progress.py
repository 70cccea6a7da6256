"""How far behind the Kafka source is: per-partition progress metrics.

The reader (``connectors/kafka_read.py``) reports after every call that
read or polled a partition; the gauges show the state as of that call:

- ``entitystream_consumer_lag_records{topic,partition}``: the partition's
  high watermark (log end offset, as the last fetch saw it) minus the next
  offset to read.
- ``entitystream_consumer_lag_seconds{topic,partition}``: the timestamp of
  the newest record in the partition (offset ``end - 1``) minus the
  timestamp of the last record read; 0 when caught up. Kafka timestamps are
  publication times here, so this is how much of the feed's own time is
  still unread: for a live feed, how far behind real time the pipeline is;
  for a replay of old articles it is still meaningful (wall-clock age is
  not). The reader never fetches ``end - 1`` itself while it is behind, so
  a second consumer reads that one record (seek, poll) at most every
  ``probe_interval_seconds`` (default 10) per partition, and only while
  there is a lag; between probes the last probe's timestamp is used, so the
  gauge can lag the truth by that interval.
- ``entitystream_watermark_lag_seconds{topic,partition}``: wall clock minus
  the partition's event-time watermark. The pipeline's input watermark is
  the minimum over partitions, so its lag is the maximum of these.
- ``entitystream_time_since_last_article_seconds``: wall-clock seconds since
  any partition last returned a message, computed when scraped, so it keeps
  growing when the feed (or the reader) stops.

Every broker lookup here has a timeout and is skipped (never raised) when it
fails or while the reader cannot reach Kafka: progress figures must not stop
the reader (docs/reliability.md, R3).
"""
import logging
import math
import time

from apache_beam.utils.timestamp import MIN_TIMESTAMP
from kafka.errors import KafkaError
from prometheus_client import Gauge

__all__ = ["PartitionProgress", "LAG_RECORDS", "LAG_SECONDS", "WATERMARK_LAG_SECONDS",
           "SINCE_LAST_ARTICLE"]

_LOG = logging.getLogger(__name__)

LAG_RECORDS = Gauge("entitystream_consumer_lag_records",
                    "Records in the partition not read yet (high watermark - next offset).",
                    ["topic", "partition"])
LAG_SECONDS = Gauge("entitystream_consumer_lag_seconds",
                    "Timestamp of the newest record in the partition minus that of the last "
                    "record read (0 when caught up).", ["topic", "partition"])
WATERMARK_LAG_SECONDS = Gauge("entitystream_watermark_lag_seconds",
                              "Wall clock minus the partition's event-time watermark.",
                              ["topic", "partition"])
SINCE_LAST_ARTICLE = Gauge("entitystream_time_since_last_article_seconds",
                           "Seconds since the source last read a message (since the reader "
                           "started when it has read none).")

_LOOKUP_TIMEOUT_MS = 5000  # end offsets and the probe consumer's bootstrap
_last_read = [math.nan]  # wall-clock time of the last message read, or of the reader's start


def _since_last_article():
    return time.time() - _last_read[0]


SINCE_LAST_ARTICLE.set_function(_since_last_article)


class PartitionProgress:
    """Tracks one partition's progress and sets its gauges.

    ``config`` is the reader's ``_KafkaConfig`` (for the probe consumer);
    ``tp`` a ``kafka.TopicPartition``.
    """

    def __init__(self, config, tp, probe_interval_seconds=10.0):
        self._config = config
        self._tp = tp
        self._labels = (tp.topic, str(tp.partition))
        self._probe_interval = probe_interval_seconds
        self._probe = None
        self._last_probe = -math.inf
        self._last_end_lookup = -math.inf
        self._head = None       # (offset, timestamp_ms) of the newest record known
        self._last = None       # (offset, timestamp_ms) of the last record read
        if math.isnan(_last_read[0]):
            _last_read[0] = time.time()

    def update(self, consumer, next_offset, last_record=None, watermark=None, reachable=True):
        """Report after a read call.

        ``consumer``: the reader's consumer (assigned to the partition);
        ``next_offset``: the next offset to read (None: not known yet);
        ``last_record``: the last record read in this call (``offset`` and
        ``timestamp`` attributes) or None; ``watermark``: the partition's
        ``Timestamp`` watermark or None; ``reachable``: False while the
        reader cannot reach Kafka (no broker lookups then: the lag gauges
        keep their last values). A lookup that fails is skipped, never raised:
        progress figures must not stop the reader.
        """
        now = time.time()
        if last_record is not None:
            self._last = (last_record.offset, last_record.timestamp)
            _last_read[0] = now
        if watermark is not None and watermark > MIN_TIMESTAMP:
            WATERMARK_LAG_SECONDS.labels(*self._labels).set(now - watermark.micros / 1e6)
        if next_offset is None:  # not positioned yet: nothing to compare with
            return
        end = self._end_offset(consumer, now, reachable)
        if end is None:
            return
        lag = max(0, end - next_offset)
        LAG_RECORDS.labels(*self._labels).set(lag)
        if lag == 0:
            LAG_SECONDS.labels(*self._labels).set(0)
            return
        head = self._head_timestamp(end, now, reachable)
        if head is not None and self._last is not None:
            LAG_SECONDS.labels(*self._labels).set(max(0, head - self._last[1]) / 1000)

    def close(self):
        if self._probe is not None:
            try:
                self._probe.close()
            except Exception:  # best effort: the broker times the connection out anyway
                _LOG.debug("error closing the lag probe", exc_info=True)
            self._probe = None

    def _end_offset(self, consumer, now, reachable=True):
        end = consumer.highwater(self._tp)  # free: every fetch response carries it
        if end is None and reachable and now - self._last_end_lookup >= self._probe_interval:
            # No fetch has completed yet: ask the broker, but not on every call.
            self._last_end_lookup = now
            try:
                end = consumer.end_offsets([self._tp], timeout_ms=_LOOKUP_TIMEOUT_MS).get(self._tp)
            except KafkaError as exc:  # a figure, not worth failing the read: next time
                _LOG.debug("end offset of %s not available: %s", self._tp, exc)
        return end

    def _head_timestamp(self, end, now, reachable=True):
        """Timestamp (ms) of the record at ``end - 1``, probing at most once an interval."""
        if self._last is not None and self._last[0] == end - 1:
            self._head = self._last
        if self._head is not None and self._head[0] == end - 1:
            return self._head[1]
        if reachable and now - self._last_probe >= self._probe_interval:
            self._last_probe = now
            try:
                probed = self._probe_record(end - 1)
            except (KafkaError, OSError) as exc:  # e.g. the broker went away: next time
                _LOG.debug("probing %s at %d failed: %s", self._tp, end - 1, exc)
                self.close()
                probed = None
            if probed is not None:
                self._head = probed
        return None if self._head is None else self._head[1]

    def _probe_record(self, offset):
        if self._probe is None:
            self._probe = self._config.consumer(group_id=None, max_poll_records=1,
                                                enable_auto_commit=False,
                                                bootstrap_timeout_ms=_LOOKUP_TIMEOUT_MS)
            self._probe.assign([self._tp])
        self._probe.seek(self._tp, offset)
        for _ in range(3):
            records = self._probe.poll(timeout_ms=500, max_records=1).get(self._tp, [])
            if records:
                return records[-1].offset, records[-1].timestamp
        return None

