"""ReadFromKafka: a Kafka source for Beam in pure Python (kafka-python).

It works on any runner without Java. The steps::

    Impulse -> _ListPartitionsFn -> _ReadTopicFn (splittable DoFn)

``_ListPartitionsFn`` runs on a worker at start-up: it lists the topic's
partitions and, per partition, the first offset to read (the consumer group's
committed offset, else the earliest) and, for ``bounded=True``, the end offset
seen at that moment.

``_ReadTopicFn`` reads all partitions of the topic under one restriction,
``_Offsets``: per partition, the next offset to read and where to stop. Each
call polls, claims ``(partition, offset)`` positions and emits the records,
then checkpoints (defers the rest). Every record is stamped with its Kafka
timestamp (the article's publication time, by convention).

Why one restriction for all partitions: the pipeline's watermark must be the
minimum over partitions (the slowest active partition holds it). Prism 2.75
takes a stage's output watermark from the residuals of the latest bundle
only (engine/elementmanager.go, ``estimatedOutput``), so with one
restriction per partition the most advanced partition wins and windows close
early. Computing the minimum here is correct on every runner.

Offsets and the consumer group: a call that resumes a restriction runs only
after the runner has durably committed the bundle that produced that
residual, so everything before each partition's next offset is done: the
call commits those offsets to the group first (at most once a second). In
bounded mode each partition's range ends one past its last record (a
"commit point"), so the final offsets are committed by a last, resumed call.
Records are therefore committed only after the bundle that read them is
committed: a restart re-reads at most the last uncommitted bundle
(at-least-once). (Beam's bundle finalizer is not used: with Prism 2.75 the
Python worker rejects every FinalizeBundle request.)

Watermark (``_TopicWatermarkEstimator``): per partition, the newest record
timestamp seen; a partition that has returned nothing for
``idle_timeout_seconds`` follows processing time instead (``now - idle
timeout``), as Kafka's ``withLimitedDelay`` policy does for idle partitions,
so windows still close when the feed goes quiet. The watermark is the
minimum over partitions, and never moves back.

Progress: after each call the reader reports each partition's lag (records
and seconds), watermark lag and last read to ``connectors.kafka_progress``,
which owns those metrics and how they are measured.

Broker outages (docs/reliability.md, R3): the consumer stays open and
kafka-python reconnects by itself, at most ``reconnect_backoff_max_ms``
(1 s here; kafka-python's default of 30 s would delay the reconnection by
up to that long) after the broker is back, and goes on from its position.
Meanwhile calls read nothing and checkpoint; no error of the outage escapes
(a failed bundle would fail the job on Prism). An outage is not a quiet
feed: while the consumer cannot reach Kafka, or a partition is known to have
unread records (its position is below the high watermark of the last fetch),
the partition is not idle, so its watermark holds instead of following the
clock (else everything read after the outage would be late). The reader
reports its connection to ``kafka_health.KafkaHealth`` (metrics and log).
"""
import logging
import time
from typing import NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker, WatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, MIN_TIMESTAMP, Timestamp

from connectors.kafka_health import RECONNECT_BACKOFF_MAX_MS, KafkaHealth
from connectors.kafka_progress import PartitionProgress

__all__ = ["ReadFromKafka", "KafkaRecord"]

_LOG = logging.getLogger(__name__)
_UNBOUNDED_STOP = 2 ** 63 - 1
MAX_TIMESTAMP_AHEAD_SECONDS = 86_400  # newer record timestamps do not move the watermark
START_FROM = ("committed", "earliest", "latest")
_OUTAGE_RESUME_S = 1.0  # a call that could not reach Kafka resumes after this


class KafkaRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: int
    # The offset read before this one on the partition (one before the start
    # for the first record of a run), and whether this is that first record:
    # what the aggregation's ledger needs to know which offsets are settled
    # (pipeline/ledger.py).
    prev_offset: int = -1
    starts_run: bool = False
    # The reader's event-time watermark for the topic (ms) when the call that
    # read this record began (None: none yet). Every record read later has a
    # timestamp at least this, or is late; the runner's watermark downstream
    # has reached it by the time this record arrives there (the call's bundle
    # has committed). The aggregation orders its input by it (pipeline/aggregate.py).
    watermark_ms: Optional[int] = None


class _TopicDesc(NamedTuple):
    topic: str
    partitions: Tuple[int, ...]
    start_offsets: Tuple[int, ...]
    end_offsets: Optional[Tuple[int, ...]]  # None: unbounded
    idle_timeout_s: float


class _Offsets(NamedTuple):
    """Per partition: (partition, next offset to read, stop offset, exclusive)."""
    ranges: Tuple[Tuple[int, int, int], ...]

    def remaining(self):
        return sum(max(0, stop - start) for _, start, stop in self.ranges)


class _KafkaConfig(NamedTuple):
    bootstrap_servers: str
    group_id: Optional[str]
    extra: tuple  # (key, value) pairs passed to KafkaConsumer

    def consumer(self, **overrides):
        from kafka import KafkaConsumer
        config = dict(bootstrap_servers=self.bootstrap_servers, group_id=self.group_id,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      client_id="entitystream", reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
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
            starts = []
            for tp in tps:
                start = earliest[tp]
                if self._start_from == "latest":
                    start = latest[tp]
                elif self._start_from == "committed" and self._config.group_id:
                    committed = consumer.committed(tp)
                    if committed is not None:
                        start = max(committed, earliest[tp])
                starts.append(start)
                _LOG.info("reading %s/%d from offset %d to %s", tp.topic, tp.partition, start,
                          latest[tp] if self._bounded else "unbounded")
            ends = tuple(latest[tp] for tp in tps) if self._bounded else None
            yield _TopicDesc(self._topic, tuple(tp.partition for tp in tps), tuple(starts),
                             ends, self._idle)
        finally:
            consumer.close()


class _OffsetsTracker(RestrictionTracker):
    """Claims (partition, offset) positions of an ``_Offsets`` restriction.

    Only checkpoints are allowed (``try_split(0)``): each partition is read in
    offset order by one reader, so dynamic splits are refused."""

    def __init__(self, restriction):
        self._restriction = restriction
        self._next = {p: start for p, start, _ in restriction.ranges}
        self._stop = {p: stop for p, _, stop in restriction.ranges}
        self._done = False

    def current_restriction(self):
        return self._restriction

    def try_claim(self, position):
        partition, offset = position
        if self._done or partition not in self._next:
            return False
        if offset < self._next[partition]:
            msg = (f"offset {offset} of partition {partition} is before the next "
                   f"unclaimed offset {self._next[partition]}")
            raise ValueError(msg)
        if offset >= self._stop[partition]:
            return False
        self._next[partition] = offset + 1
        return True

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder > 0 or self._done:
            return None
        primary = _Offsets(tuple((p, s, self._next[p]) for p, s, _ in self._restriction.ranges))
        residual = _Offsets(tuple((p, self._next[p], stop)
                                  for p, _, stop in self._restriction.ranges))
        self._restriction = primary
        self._stop = {p: self._next[p] for p in self._next}
        self._done = True
        return primary, residual

    def check_done(self):
        left = {p: (self._next[p], self._stop[p]) for p in self._next
                if self._next[p] < self._stop[p]}
        if left:
            raise ValueError(f"offsets left unclaimed (partition: (next, stop)): {left}")

    def current_progress(self):
        # A fraction, as Beam's OffsetRestrictionTracker reports it (work
        # counts of 0 make the SDK divide by zero); 0 for unbounded ranges.
        total = sum(stop - start for _, start, stop in self._restriction.ranges
                    if stop != _UNBOUNDED_STOP)
        done = sum(self._next[p] - start for p, start, stop in self._restriction.ranges
                   if stop != _UNBOUNDED_STOP)
        fraction = min(1.0, done / total) if total > 0 else 0.0
        return RestrictionProgress(fraction=fraction)

    def is_bounded(self):
        return all(stop != _UNBOUNDED_STOP for _, _, stop in self._restriction.ranges)


class _OffsetsProvider(RestrictionProvider):
    def initial_restriction(self, desc):
        if desc.end_offsets is None:
            ranges = tuple((p, s, _UNBOUNDED_STOP)
                           for p, s in zip(desc.partitions, desc.start_offsets))
        else:
            # One past the end: the commit point (see module docstring).
            ranges = tuple((p, s, max(s, e) + 1) for p, s, e in
                           zip(desc.partitions, desc.start_offsets, desc.end_offsets))
        return _Offsets(ranges)

    def create_tracker(self, restriction):
        return _OffsetsTracker(restriction)

    def split(self, desc, restriction):
        yield restriction

    def restriction_size(self, desc, restriction):
        if desc.end_offsets is None:
            return 1
        return max(1, restriction.remaining())

    def truncate(self, desc, restriction):
        # On drain, an unbounded topic stops where it is; a bounded one finishes.
        return None if desc.end_offsets is None else restriction


class _TopicWatermarkEstimator(WatermarkEstimator):
    """Min over partitions of (newest timestamp seen, or now - idle timeout
    for a partition idle that long); never moves back.

    State: ({partition: newest ms}, {partition: wall seconds of last record},
    idle timeout seconds, last watermark reported).
    """

    def __init__(self, state):
        newest, last_activity, self._idle, self._watermark = state
        self._newest = dict(newest)
        self._last_activity = dict(last_activity)

    def observe_timestamp(self, timestamp):
        pass  # per-partition: see record()

    def record(self, partition, timestamp_ms):
        now = time.time()
        # A timestamp far in the future (a producer's clock or a bad article)
        # would move the watermark years ahead and close every window: it
        # does not count (decode dead-letters such articles, see
        # pipeline/decode.py max_future_seconds).
        if (timestamp_ms > self._newest.get(partition, -2 ** 62)
                and timestamp_ms <= (now + MAX_TIMESTAMP_AHEAD_SECONDS) * 1000):
            self._newest[partition] = timestamp_ms
        self._last_activity[partition] = now

    def hold(self, partition):
        """The partition is not idle (unread records, or Kafka unreachable):
        restart its idle clock, so its watermark does not follow the clock."""
        self._last_activity[partition] = time.time()

    def partition_watermark(self, partition, now=None):
        now = time.time() if now is None else now
        newest = self._newest.get(partition)
        mark = MIN_TIMESTAMP if newest is None else Timestamp(micros=newest * 1000)
        if now - self._last_activity.get(partition, now) >= self._idle:
            mark = max(mark, Timestamp.of(now - self._idle))
        return mark

    def reported(self):
        """The watermark as last reported (what the runner has): unlike
        ``current_watermark``, it does not look at idleness now. At the start of
        a call the idle clock has not been reset by this call's records yet,
        and a slow bundle (NER) between two calls would pass for an idle feed."""
        return self._watermark

    def current_watermark(self):
        now = time.time()
        marks = [self.partition_watermark(p, now) for p in self._last_activity]
        if marks and min(marks) > self._watermark:
            self._watermark = min(marks)
        return self._watermark

    def get_estimator_state(self):
        return (tuple(self._newest.items()), tuple(self._last_activity.items()),
                self._idle, self._watermark)


class _TopicWatermarkProvider(WatermarkEstimatorProvider):
    def initial_estimator_state(self, desc, restriction):
        now = time.time()
        return ((), tuple((p, now) for p in desc.partitions), desc.idle_timeout_s, MIN_TIMESTAMP)

    def create_watermark_estimator(self, state):
        return _TopicWatermarkEstimator(state)


_RESTRICTIONS = _OffsetsProvider()
_WATERMARKS = _TopicWatermarkProvider()


class _ReadTopicFn(beam.DoFn):
    """Reads all partitions of a topic (a _TopicDesc) as one SDF restriction."""

    def __init__(self, config, max_records_per_call, poll_timeout_ms, resume_delay_s,
                 commit_interval_s, commit_offsets=True, max_seconds_per_call=1.0):
        self._config = config
        self._commit_offsets = commit_offsets
        self._max_records = max_records_per_call
        self._max_seconds = max_seconds_per_call
        self._poll_timeout_ms = poll_timeout_ms
        self._resume_delay = resume_delay_s
        self._commit_interval = commit_interval_s
        self._consumers = {}
        self._positions = {}
        self._last_commit = {}
        self._progress = {}
        self._health = None

    def setup(self):
        self._consumers, self._positions, self._last_commit, self._progress = {}, {}, {}, {}
        self._health = KafkaHealth("reader", self._config.bootstrap_servers)

    def teardown(self):
        for consumer in self._consumers.values():
            try:
                consumer.close()
            except Exception:  # closing is best effort; the broker times it out anyway
                _LOG.debug("error closing consumer", exc_info=True)
        self._consumers = {}
        for progress in self._progress.values():
            progress.close()
        self._progress = {}
        if self._health is not None:
            self._health.close()

    def _consumer(self, topic, partitions):
        from kafka import TopicPartition
        consumer = self._consumers.get(topic)
        if consumer is None:
            consumer = self._config.consumer(max_poll_records=self._max_records)
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            self._consumers[topic] = consumer
            self._health.watch(consumer)
        return consumer

    def _maybe_commit(self, consumer, topic, offsets, force):
        if not self._config.group_id or not self._commit_offsets:
            return True
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        now = time.monotonic()
        last_offsets, last_time = self._last_commit.get(topic, ({}, 0.0))
        changed = {p: o for p, o in offsets.items() if o > last_offsets.get(p, -1)}
        if changed and (force or now - last_time >= self._commit_interval):
            from kafka.errors import KafkaError
            try:
                consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                                 for p, o in changed.items()}, timeout_ms=5000)
            except KafkaError as exc:  # e.g. the broker is down: retried at a later call
                _LOG.warning("committing offsets %s of %s failed (%s: %s); retrying later",
                             changed, topic, type(exc).__name__, exc)
                return False
            self._last_commit[topic] = ({**last_offsets, **changed}, now)
        return True

    def process(self, desc, tracker=beam.DoFn.RestrictionParam(_RESTRICTIONS),
                watermark=beam.DoFn.WatermarkEstimatorParam(_WATERMARKS)):
        return self._read(desc, tracker, watermark)

    def _read(self, desc, tracker, watermark):
        from kafka import TopicPartition
        ranges = tracker.current_restriction().ranges
        starts = {p: s for p, s, _ in ranges}
        ends = dict(zip(desc.partitions, desc.end_offsets)) if desc.end_offsets else None
        from kafka.errors import KafkaError
        try:
            consumer = self._consumer(desc.topic, desc.partitions)
        except KafkaError as exc:  # no broker to bootstrap from (an outage): try again later
            self._health.down(exc)
            for p in desc.partitions:
                watermark.hold(p)
            tracker.defer_remainder(Duration(seconds=_OUTAGE_RESUME_S))
            return
        # Everything before each start was read by bundles the runner committed.
        at_commit_point = ends is not None and all(starts[p] >= ends[p] for p in starts)
        committed = self._maybe_commit(consumer, desc.topic, starts, force=at_commit_point)
        if at_commit_point and not committed:  # the final commit must not be skipped
            tracker.defer_remainder(Duration(seconds=_OUTAGE_RESUME_S))
            return
        if at_commit_point:
            for p in starts:
                tracker.try_claim((p, starts[p]))  # the commit points: nothing to read
            return
        positions = self._positions.setdefault(desc.topic, {})
        for p, start in starts.items():
            if positions.get(p) != start:
                consumer.seek(TopicPartition(desc.topic, p), start)
                positions[p] = start
        open_parts = {p for p in starts if ends is None or starts[p] < ends[p]}
        if ends is not None:  # finished partitions are not polled again
            consumer.pause(*[TopicPartition(desc.topic, p) for p in starts if p not in open_parts])
        emitted = 0
        last = {}
        run_starts = dict(zip(desc.partitions, desc.start_offsets))
        mark = watermark.reported()
        watermark_ms = None if mark <= MIN_TIMESTAMP else mark.micros // 1000
        # A call ends after max_records or max_seconds: what it read reaches
        # the next stages only when its bundle ends, so a slow steady feed
        # (50 articles/s fill 500 records in 10 s) must not hold it back.
        deadline = time.monotonic() + self._max_seconds
        while emitted < self._max_records and open_parts and time.monotonic() < deadline:
            try:
                polled = consumer.poll(timeout_ms=self._poll_timeout_ms,
                                       max_records=self._max_records - emitted)
            except KafkaError as exc:  # the consumer retries by itself: read on next call
                _LOG.debug("poll of %s failed: %s", desc.topic, exc)
                polled = None
            if not polled:
                break
            for tp, records in polled.items():
                p = tp.partition
                for rec in records:
                    if ends is not None and rec.offset >= ends[p]:
                        break
                    if not tracker.try_claim((p, rec.offset)):
                        self._positions.pop(desc.topic, None)
                        return
                    emitted += 1
                    positions[p] = rec.offset + 1
                    watermark.record(p, rec.timestamp)
                    # The restriction resumes one past the last claimed offset:
                    # every offset between that and this one holds no record.
                    prev = last[p].offset if p in last else starts[p] - 1
                    last[p] = rec
                    yield beam.window.TimestampedValue(
                        KafkaRecord(rec.topic, p, rec.offset, rec.key, rec.value, rec.timestamp,
                                    prev, prev + 1 == run_starts[p], watermark_ms),
                        Timestamp(micros=rec.timestamp * 1000))
                if ends is not None and positions[p] >= ends[p]:
                    open_parts.discard(p)
                    consumer.pause(tp)
        if ends is not None:
            for p in list(open_parts):
                tp = TopicPartition(desc.topic, p)
                if positions[p] < ends[p] <= consumer.position(tp):
                    # The offsets left before the end hold no records (transaction
                    # markers, compaction): claim up to the end.
                    if not tracker.try_claim((p, ends[p] - 1)):
                        return
                    positions[p] = ends[p]
                    emitted += 1
            consumer.resume(*consumer.paused())
        reachable = self._health.observe(consumer) is not False
        for p in open_parts:
            high = consumer.highwater(TopicPartition(desc.topic, p))
            # Idle means caught up: a partition whose end is not known yet (no
            # fetch answered since start-up) or not reached does not follow the clock.
            if not reachable or high is None or positions.get(p, starts[p]) < high:
                watermark.hold(p)
        self._report(desc, consumer, positions, last, watermark, reachable)
        if emitted == 0:
            tracker.defer_remainder(Duration(seconds=self._resume_delay))
        else:
            tracker.defer_remainder()

    def _report(self, desc, consumer, positions, last, watermark, reachable=True):
        from kafka import TopicPartition
        for p in desc.partitions:
            progress = self._progress.get((desc.topic, p))
            if progress is None:
                progress = self._progress[(desc.topic, p)] = PartitionProgress(
                    self._config, TopicPartition(desc.topic, p))
            progress.update(consumer, positions.get(p), last.get(p),
                            watermark.partition_watermark(p), reachable)


class _ReadUnboundedTopicFn(_ReadTopicFn):
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
      max_seconds_per_call: or after this long, whichever comes first
        (default 1): a call's records reach the next stages only when its
        bundle ends, so this bounds the latency a slow feed adds.
      consumer_config: extra ``KafkaConsumer`` settings, e.g. security options.
      commit_offsets: commit each partition's progress to ``group_id`` when
        the runner has committed the bundle that read it (default True).
        False when a later stage commits instead, only once what it read is
        durably counted (the pipeline's checkpoints: ``pipeline/aggregate.py``).

    Example::

        records = p | 'ReadArticles' >> ReadFromKafka(
            bootstrap_servers='127.0.0.1:19092', topic='articles', group_id='entitystream')
    """

    def __init__(self, *, bootstrap_servers, topic, group_id=None, bounded=False,
                 start_from="committed", idle_timeout_seconds=5.0,
                 max_records_per_call=500, max_seconds_per_call=1.0, poll_timeout_ms=200,
                 resume_delay_seconds=0.2, commit_interval_seconds=1.0,
                 metadata_timeout_seconds=30.0, consumer_config=None, commit_offsets=True):
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
        self._max_seconds = max_seconds_per_call
        self._poll_timeout_ms = poll_timeout_ms
        self._resume_delay = resume_delay_seconds
        self._commit_interval = commit_interval_seconds
        self._metadata_timeout = metadata_timeout_seconds
        self._commit_offsets = commit_offsets

    def expand(self, pbegin):
        reader = _ReadTopicFn if self._bounded else _ReadUnboundedTopicFn
        read_fn = reader(self._config, self._max_records, self._poll_timeout_ms,
                         self._resume_delay, self._commit_interval, self._commit_offsets,
                         self._max_seconds)
        return (pbegin
                | "Impulse" >> beam.Impulse()
                | "ListPartitions" >> beam.ParDo(_ListPartitionsFn(
                    self._config, self._topic, self._bounded, self._start_from,
                    self._metadata_timeout, self._idle))
                | "ReadTopic" >> beam.ParDo(read_fn))
