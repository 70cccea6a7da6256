"""The Kafka source's watermark: per partition the newest timestamp (or the
clock once idle), the minimum over partitions, never moving back."""
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from connectors import kafka_read
from connectors.kafka_read import _TopicWatermarkEstimator


def estimator(now, partitions=(0, 1), idle=5.0):
    return _TopicWatermarkEstimator(((), tuple((p, now) for p in partitions), idle,
                                     MIN_TIMESTAMP))


def test_slowest_partition_holds_the_watermark(monkeypatch):
    monkeypatch.setattr(kafka_read.time, "time", lambda: 1000.0)
    est = estimator(1000.0)
    est.record(0, 30_000)
    est.record(0, 50_000)
    assert est.current_watermark() == MIN_TIMESTAMP   # partition 1 has nothing yet
    est.record(1, 20_000)
    assert est.current_watermark() == Timestamp(20)   # min(50 s, 20 s)
    est.record(1, 60_000)
    assert est.current_watermark() == Timestamp(50)


def test_idle_partition_follows_the_clock_after_timeout(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(kafka_read.time, "time", lambda: now[0])
    est = estimator(1000.0)
    est.record(0, 900_000)
    est.record(1, 30_000)
    now[0] = 1004.0                       # 4 s quiet: not idle yet
    assert est.current_watermark() == Timestamp(30)
    now[0] = 1010.0                       # 10 s quiet: each partition at now - 5 s
    # partition 0: max(900 s, 1005 s) = 1005; partition 1: max(30, 1005) = 1005
    assert est.current_watermark() == Timestamp(1005)


def test_watermark_never_moves_back_and_survives_checkpoints(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(kafka_read.time, "time", lambda: now[0])
    est = estimator(1000.0, partitions=(0,))
    est.record(0, 500_000)
    assert est.current_watermark() == Timestamp(500)
    resumed = _TopicWatermarkEstimator(est.get_estimator_state())
    resumed.record(0, 100_000)            # an older record: no step back
    assert resumed.current_watermark() == Timestamp(500)


def test_a_far_future_record_timestamp_does_not_move_the_watermark(monkeypatch):
    monkeypatch.setattr(kafka_read.time, "time", lambda: 1000.0)
    est = estimator(1000.0, partitions=(0,))
    est.record(0, 30_000)
    est.record(0, (1000 + 2 * 86_400) * 1000)      # two days ahead of the clock: ignored
    assert est.partition_watermark(0) == Timestamp(micros=30_000 * 1000)
    est.record(0, (1000 + 3600) * 1000)            # an hour ahead: counts
    assert est.partition_watermark(0) == Timestamp(micros=(1000 + 3600) * 1_000_000)


def test_reported_is_the_last_reported_watermark_not_the_idle_clock(monkeypatch):
    # A call that starts 10 s after the last one (a slow NER bundle in between)
    # must not stamp its records with the idle clock: nothing has been read yet.
    now = [1000.0]
    monkeypatch.setattr(kafka_read.time, "time", lambda: now[0])
    est = estimator(1000.0, partitions=(0,))
    est.record(0, 500_000)
    assert est.current_watermark() == Timestamp(500)       # reported at the checkpoint
    resumed = _TopicWatermarkEstimator(est.get_estimator_state())
    now[0] = 1010.0
    assert resumed.reported() == Timestamp(500)
    assert resumed.current_watermark() == Timestamp(1005)  # what idleness would give
    assert resumed.reported() == Timestamp(1005)           # once it has been reported
