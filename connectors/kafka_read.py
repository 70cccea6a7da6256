"""ReadFromKafka: a Kafka source for Beam in pure Python (kafka-python).

It works on any runner without Java. The steps::

    Impulse -> _ListPartitionsFn -> _ReadPartitionFn (splittable DoFn)

``_ListPartitionsFn`` runs on a worker at start-up: it lists the topic's
partitions and, per partition, the first offset to read (the consumer group's
committed offset, else the earliest) and, for ``bounded=True``, the end offset
seen at that moment.

``_ReadPartitionFn`` reads one partition per element. Its restriction is an
``OffsetRange`` over the partition's offsets; each call polls, claims and
emits records, then defers the rest (a checkpoint). Every record is stamped
with its Kafka timestamp (the article's publication time, by convention).

Offsets and the consumer group: a call that resumes a restriction at offset S
runs only after the runner has durably committed the bundle that produced
that residual, so everything before S is done: the call commits S to the
group first. In bounded mode the range ends one past the last record (a
"commit point"), so the final offset is committed by a last, resumed call.
Records are therefore committed only after the bundle that read them is
committed: a restart re-reads at most the last uncommitted bundle
(at-least-once).

Watermark (per partition, combined by the runner as the minimum over
partitions, so the slowest active partition holds it): the largest record
timestamp seen. When a partition has returned nothing for
``idle_timeout_seconds``, its watermark advances to ``now - idle_timeout``
(processing time), so windows still close when the feed goes quiet, as
Kafka's own ``withLimitedDelay`` timestamp policy does for idle partitions.
"""
import logging
import time
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.iobase import WatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, MIN_TIMESTAMP, Timestamp

__all__ = ["ReadFromKafka", "KafkaRecord"]

_LOG = logging.getLogger(__name__)
_UNBOUNDED_STOP = 2 ** 63 - 1
START_FROM = ("committed", "earliest", "latest")


class KafkaRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: int


class _PartitionDesc(NamedTuple):
    topic: str
    partition: int
    start_offset: int
    end_offset: Optional[int]  # None: unbounded
    idle_timeout_s: float


class _KafkaConfig(NamedTuple):
    bootstrap_servers: str
    group_id: Optional[str]
    extra: tuple  # (key, value) pairs passed to KafkaConsumer

    def consumer(self, **overrides):
        from kafka import KafkaConsumer
        config = dict(bootstrap_servers=self.bootstrap_servers, group_id=self.group_id,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      client_id="entitystream")
        config.update(dict(self.extra))
        config.update(overrides)
        return KafkaConsumer(**config)


class _ListPartitionsFn(beam.DoFn):
    def __init__(self, config, topic, bounded, start_from, metadata_timeout_s, idle_timeout_s):
        self._config = config
        self._topic = topic
        self._bounded = bounded
        self._start_from = start_from
        self._timeout = metadata_timeout_s
        self._idle = idle_timeout_s

    def process(self, unused_impulse):
        from kafka import TopicPartition
        consumer = self._config.consumer()
        try:
            deadline = time.monotonic() + self._timeout
            partitions = consumer.partitions_for_topic(self._topic)
            while not partitions and time.monotonic() < deadline:
                time.sleep(0.5)
                partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                msg = (f"topic {self._topic!r} has no partitions on "
                       f"{self._config.bootstrap_servers} after {self._timeout:.0f}s; "
                       f"create it or publish to it first (entitystream replay)")
                raise ValueError(msg)
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            earliest = consumer.beginning_offsets(tps)
            latest = consumer.end_offsets(tps)
            for tp in tps:
                start = earliest[tp]
                if self._start_from == "latest":
                    start = latest[tp]
                elif self._start_from == "committed" and self._config.group_id:
                    committed = consumer.committed(tp)
                    if committed is not None:
                        start = max(committed, earliest[tp])
                end = latest[tp] if self._bounded else None
                _LOG.info("reading %s/%d from offset %d to %s", tp.topic, tp.partition,
                          start, end if end is not None else "unbounded")
                yield _PartitionDesc(tp.topic, tp.partition, start, end, self._idle)
        finally:
            consumer.close()


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """An offset tracker that only checkpoints: a Kafka partition is read by
    one reader in offset order, so dynamic splits (which runners such as Prism
    request at a fraction of the range) are refused."""

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


class _PartitionRestrictionProvider(RestrictionProvider):
    def initial_restriction(self, desc):
        if desc.end_offset is None:
            return OffsetRange(desc.start_offset, _UNBOUNDED_STOP)
        # One past the end: the commit point (see module docstring).
        return OffsetRange(desc.start_offset, max(desc.start_offset, desc.end_offset) + 1)

    def create_tracker(self, restriction):
        return _CheckpointOnlyTracker(restriction)

    def split(self, desc, restriction):
        yield restriction  # one reader per partition

    def restriction_size(self, desc, restriction):
        if desc.end_offset is None:
            return 1
        return max(1, restriction.stop - restriction.start)

    def truncate(self, desc, restriction):
        # On drain, an unbounded partition stops where it is; a bounded one finishes.
        if desc.end_offset is None:
            return None
        return restriction


class _IdleAwareWatermarkEstimator(WatermarkEstimator):
    """Max record timestamp seen; advances with processing time when idle.

    State: (watermark, wall-clock seconds of the last record seen, idle timeout).
    """

    def __init__(self, state):
        self._watermark, self._last_activity, self._idle = state

    def observe_timestamp(self, timestamp):
        if timestamp > self._watermark:
            self._watermark = timestamp
        self._last_activity = time.time()

    def mark_idle_check(self):
        now = time.time()
        if now - self._last_activity >= self._idle:
            candidate = Timestamp.of(now - self._idle)
            if candidate > self._watermark:
                self._watermark = candidate

    def current_watermark(self):
        return self._watermark

    def get_estimator_state(self):
        return (self._watermark, self._last_activity, self._idle)


class _IdleAwareWatermarkProvider(WatermarkEstimatorProvider):
    def initial_estimator_state(self, desc, restriction):
        return (MIN_TIMESTAMP, time.time(), desc.idle_timeout_s)

    def create_watermark_estimator(self, state):
        return _IdleAwareWatermarkEstimator(state)


_RESTRICTIONS = _PartitionRestrictionProvider()
_WATERMARKS = _IdleAwareWatermarkProvider()


class _ReadPartitionFn(beam.DoFn):
    """Reads one partition (a _PartitionDesc) as an offset-range SDF."""

    def __init__(self, config, max_records_per_call, poll_timeout_ms, resume_delay_s,
                 commit_interval_s):
        self._config = config
        self._max_records = max_records_per_call
        self._poll_timeout_ms = poll_timeout_ms
        self._resume_delay = resume_delay_s
        self._commit_interval = commit_interval_s
        self._consumers = {}
        self._next_offset = {}
        self._last_commit = {}

    def setup(self):
        self._consumers, self._next_offset, self._last_commit = {}, {}, {}

    def teardown(self):
        for consumer in self._consumers.values():
            try:
                consumer.close()
            except Exception:  # closing is best effort; the broker times it out anyway
                _LOG.debug("error closing consumer", exc_info=True)
        self._consumers = {}

    def _consumer(self, tp):
        consumer = self._consumers.get(tp)
        if consumer is None:
            consumer = self._config.consumer(max_poll_records=self._max_records)
            consumer.assign([tp])
            self._consumers[tp] = consumer
        return consumer

    def _maybe_commit(self, consumer, tp, offset, force):
        if not self._config.group_id:
            return
        from kafka.structs import OffsetAndMetadata
        last_offset, last_time = self._last_commit.get(tp, (-1, 0.0))
        now = time.monotonic()
        if offset > last_offset and (force or now - last_time >= self._commit_interval):
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
            self._last_commit[tp] = (offset, now)

    def process(self, desc, tracker=beam.DoFn.RestrictionParam(_RESTRICTIONS),
                watermark=beam.DoFn.WatermarkEstimatorParam(_WATERMARKS)):
        return self._read(desc, tracker, watermark)

    def _read(self, desc, tracker, watermark):
        from kafka import TopicPartition
        tp = TopicPartition(desc.topic, desc.partition)
        consumer = self._consumer(tp)
        start = tracker.current_restriction().start
        end = desc.end_offset
        # Everything before `start` was read by bundles the runner has committed.
        at_commit_point = end is not None and start >= end
        self._maybe_commit(consumer, tp, start, force=at_commit_point)
        if at_commit_point:
            tracker.try_claim(start)  # the commit point: nothing to read
            return
        if self._next_offset.get(tp) != start:
            consumer.seek(tp, start)
        emitted = 0
        while emitted < self._max_records:
            polled = consumer.poll(timeout_ms=self._poll_timeout_ms,
                                   max_records=self._max_records - emitted)
            records = polled.get(tp, [])
            if not records:
                break
            for rec in records:
                if end is not None and rec.offset >= end:
                    break
                if not tracker.try_claim(rec.offset):
                    self._next_offset.pop(tp, None)
                    return
                emitted += 1
                self._next_offset[tp] = rec.offset + 1
                yield beam.window.TimestampedValue(
                    KafkaRecord(rec.topic, rec.partition, rec.offset, rec.key,
                                rec.value, rec.timestamp),
                    Timestamp(micros=rec.timestamp * 1000))
            if end is not None and self._next_offset.get(tp, start) >= end:
                break
        if end is not None and self._next_offset.get(tp, start) < end <= consumer.position(tp):
            # The offsets left before the end hold no records (transaction
            # markers, compaction): claim up to the end to reach the commit point.
            if not tracker.try_claim(end - 1):
                return
            self._next_offset[tp] = end
            emitted += 1
        if emitted == 0:
            watermark.mark_idle_check()
            tracker.defer_remainder(Duration(seconds=self._resume_delay))
        else:
            tracker.defer_remainder()


class _ReadUnboundedPartitionFn(_ReadPartitionFn):
    """The same reader, declared unbounded: it never finishes on its own."""

    @beam.DoFn.unbounded_per_element()
    def process(self, desc, tracker=beam.DoFn.RestrictionParam(_RESTRICTIONS),
                watermark=beam.DoFn.WatermarkEstimatorParam(_WATERMARKS)):
        return self._read(desc, tracker, watermark)


class ReadFromKafka(beam.PTransform):
    """Reads a Kafka topic as a PCollection of ``KafkaRecord``.

    Args:
      bootstrap_servers: ``host:port[,host:port]``.
      topic: the topic to read (all its partitions).
      group_id: consumer group whose committed offsets start the read and
        receive progress commits (``None``: never commit).
      bounded: read each partition up to the end offset seen at start-up, then
        finish (default False: keep reading until the pipeline is stopped).
      start_from: ``committed`` (default; earliest when the group has none),
        ``earliest`` or ``latest``.
      idle_timeout_seconds: after this long without records a partition's
        watermark follows processing time (default 5).
      max_records_per_call: records read before a checkpoint (default 500).
      consumer_config: extra ``KafkaConsumer`` settings, e.g. security options.

    Example::

        records = p | 'ReadArticles' >> ReadFromKafka(
            bootstrap_servers='127.0.0.1:19092', topic='articles', group_id='entitystream')
    """

    def __init__(self, *, bootstrap_servers, topic, group_id=None, bounded=False,
                 start_from="committed", idle_timeout_seconds=5.0,
                 max_records_per_call=500, poll_timeout_ms=200,
                 resume_delay_seconds=0.2, commit_interval_seconds=1.0,
                 metadata_timeout_seconds=30.0, consumer_config=None):
        super().__init__()
        if start_from not in START_FROM:
            raise ValueError(f"start_from must be one of {START_FROM}, got {start_from!r}")
        if not bootstrap_servers:
            raise ValueError("bootstrap_servers is empty: set KAFKA_BOOTSTRAP_SERVERS "
                             "or start the local broker (entitystream broker start)")
        if idle_timeout_seconds <= 0:
            raise ValueError(f"idle_timeout_seconds must be > 0, got {idle_timeout_seconds}")
        self._config = _KafkaConfig(bootstrap_servers, group_id,
                                    tuple(sorted((consumer_config or {}).items())))
        self._topic = topic
        self._bounded = bounded
        self._start_from = start_from
        self._idle = idle_timeout_seconds
        self._max_records = max_records_per_call
        self._poll_timeout_ms = poll_timeout_ms
        self._resume_delay = resume_delay_seconds
        self._commit_interval = commit_interval_seconds
        self._metadata_timeout = metadata_timeout_seconds

    def expand(self, pbegin):
        reader = _ReadPartitionFn if self._bounded else _ReadUnboundedPartitionFn
        read_fn = reader(self._config, self._max_records, self._poll_timeout_ms,
                         self._resume_delay, self._commit_interval)
        return (pbegin
                | "Impulse" >> beam.Impulse()
                | "ListPartitions" >> beam.ParDo(_ListPartitionsFn(
                    self._config, self._topic, self._bounded, self._start_from,
                    self._metadata_timeout, self._idle))
                | "SpreadPartitions" >> beam.Reshuffle()
                | "ReadPartitions" >> beam.ParDo(read_fn))
