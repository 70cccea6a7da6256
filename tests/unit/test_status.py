"""The replay progress bar and the run status line (pipeline/status.py)."""
import io
import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.status import StatusReporter, progress_bar, snapshot, status_line


def test_progress_bar_shows_count_rate_and_eta():
    assert progress_bar(250, 1000, 5.0, width=20) == \
        "[#####---------------]  250/1000 articles     50/s  ETA 15s"
    assert progress_bar(1000, 1000, 8.0, width=10) == \
        "[##########] 1000/1000 articles    125/s  ETA 0s"
    assert progress_bar(0, 1000, 0.0, width=4) == "[----]    0/1000 articles      0/s  ETA ?"
    assert progress_bar(60, 7260, 1.0, width=2).endswith("ETA 2m00s")


def _registry():
    registry = CollectorRegistry()
    consumed = Counter("entitystream_articles_consumed", "", ["topic", "partition"],
                       registry=registry)
    lag = Gauge("entitystream_consumer_lag_seconds", "", ["topic", "partition"],
                registry=registry)
    Gauge("entitystream_watermark_lag_seconds", "", ["topic", "partition"],
          registry=registry).labels("t", "0").set(3.25)
    Counter("entitystream_dead_letters", "", ["reason"], registry=registry).labels("x").inc(2)
    return registry, consumed, lag


def test_status_line_reports_rate_totals_and_the_worst_lag():
    registry, consumed, lag = _registry()
    consumed.labels("t", "0").inc(10)
    before = dict(snapshot(registry), at=100.0)
    consumed.labels("t", "0").inc(30)
    consumed.labels("t", "1").inc(20)
    lag.labels("t", "0").set(1.5)
    lag.labels("t", "1").set(7.0)
    after = dict(snapshot(registry), at=110.0)
    line = status_line(before, after)
    assert "5.0 articles/s (60 total)" in line
    assert "lag 0 records, 7.0 s" in line  # the worst partition
    assert "watermark lag 3.2 s" in line
    assert "dead letters 2" in line


def test_long_lags_read_as_durations():
    registry, _, lag = _registry()
    lag.labels("t", "0").set(47_029_081.4)  # a replay of articles from last year
    line = status_line(dict(snapshot(registry), at=0.0), dict(snapshot(registry), at=1.0))
    assert "lag 0 records, 544d07h" in line


def test_status_line_without_progress_metrics_says_not_available():
    registry = CollectorRegistry()
    a, b = dict(snapshot(registry), at=0.0), dict(snapshot(registry), at=10.0)
    assert "lag 0 records, n/a  watermark lag n/a" in status_line(a, b)


def test_reporter_prints_one_line_per_interval():
    registry, consumed, _ = _registry()
    out = io.StringIO()
    reporter = StatusReporter(0.2, out=out, registry=registry).start()
    consumed.labels("t", "0").inc(4)
    time.sleep(0.5)
    reporter.stop()
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 3
    assert all(line.startswith("status ") for line in lines)
    assert "(4 total)" in lines[-1]
