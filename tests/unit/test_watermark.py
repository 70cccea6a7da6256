"""The Kafka source's per-partition watermark: max timestamp, idle advance."""
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from connectors import kafka_read
from connectors.kafka_read import _IdleAwareWatermarkEstimator


def test_watermark_is_max_timestamp_seen(monkeypatch):
    monkeypatch.setattr(kafka_read.time, "time", lambda: 1000.0)
    est = _IdleAwareWatermarkEstimator((MIN_TIMESTAMP, 1000.0, 5.0))
    for t in (10, 30, 20):
        est.observe_timestamp(Timestamp(t))
    assert est.current_watermark() == Timestamp(30)


def test_idle_partition_follows_the_clock_after_timeout(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(kafka_read.time, "time", lambda: now[0])
    est = _IdleAwareWatermarkEstimator((MIN_TIMESTAMP, 1000.0, 5.0))
    est.observe_timestamp(Timestamp(30))
    now[0] = 1004.0                      # 4 s quiet: not idle yet
    est.mark_idle_check()
    assert est.current_watermark() == Timestamp(30)
    now[0] = 1010.0                      # 10 s quiet: watermark = now - 5 s
    est.mark_idle_check()
    assert est.current_watermark() == Timestamp(1005)
    # State survives a checkpoint: (watermark, last activity, idle timeout).
    assert est.get_estimator_state() == (Timestamp(1005), 1000.0, 5.0)


def test_idle_advance_never_moves_backwards(monkeypatch):
    monkeypatch.setattr(kafka_read.time, "time", lambda: 100.0)
    est = _IdleAwareWatermarkEstimator((Timestamp(5000), 0.0, 5.0))
    est.mark_idle_check()                # now - 5 = 95 < 5000
    assert est.current_watermark() == Timestamp(5000)
