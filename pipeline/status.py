"""Terminal output for people: the replay progress bar and the run status line.

``progress_bar(sent, total, elapsed_s)`` is what ``entitystream replay``
redraws on stderr::

    [##########--------------]   2100/5000 articles   840/s  ETA 3s

``StatusReporter(interval_seconds)`` is what ``entitystream run`` prints
every interval, from this process's Prometheus registry (the counts the
/metrics endpoint serves)::

    status 12:00:05  12.4 articles/s (620 total)  lag 0 records, 0.0 s  watermark lag 3.1 s  dead letters 1  late 0  panes 14
"""
import math
import sys
import threading
import time

from prometheus_client import REGISTRY

__all__ = ["progress_bar", "snapshot", "status_line", "StatusReporter"]


def _duration(seconds):
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def progress_bar(sent, total, elapsed_s, width=24):
    """One line: a bar, the count, the rate and the time left."""
    fraction = min(1.0, sent / total) if total else 1.0
    filled = int(round(fraction * width))
    rate = sent / elapsed_s if elapsed_s > 0 else 0.0
    eta = (total - sent) / rate if rate > 0 else None
    digits = len(str(total))
    return (f"[{'#' * filled}{'-' * (width - filled)}] {sent:>{digits}}/{total} articles "
            f"{rate:>6.0f}/s  ETA {_duration(eta) if sent < total else '0s'}")


def snapshot(registry=REGISTRY):
    """The figures of a status line, summed over labels, from ``registry``."""
    totals = {"consumed": 0.0, "dead_letters": 0.0, "late": 0.0, "panes": 0.0,
              "lag_records": 0.0, "lag_seconds": None, "watermark_lag_seconds": None}
    names = {"entitystream_articles_consumed_total": "consumed",
             "entitystream_dead_letters_total": "dead_letters",
             "entitystream_late_articles_total": "late",
             "entitystream_panes_emitted_total": "panes",
             "entitystream_consumer_lag_records": "lag_records"}
    maxima = {"entitystream_consumer_lag_seconds": "lag_seconds",
              "entitystream_watermark_lag_seconds": "watermark_lag_seconds"}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in names:
                totals[names[sample.name]] += sample.value
            elif sample.name in maxima:
                key = maxima[sample.name]
                totals[key] = max(totals[key] or 0.0, sample.value)
    return dict(totals, at=time.time())


def status_line(previous, current):
    """Compare two snapshots: the rate over the interval and the current state."""
    interval = max(1e-9, current["at"] - previous["at"])
    rate = (current["consumed"] - previous["consumed"]) / interval

    def seconds(value):  # a replay of old articles has a watermark lag of months
        if value is None:
            return "n/a"
        return f"{value:.1f} s" if value < 120 else _duration(value)

    return (f"status {time.strftime('%H:%M:%S', time.localtime(current['at']))}  "
            f"{rate:.1f} articles/s ({current['consumed']:.0f} total)  "
            f"lag {current['lag_records']:.0f} records, {seconds(current['lag_seconds'])}  "
            f"watermark lag {seconds(current['watermark_lag_seconds'])}  "
            f"dead letters {current['dead_letters']:.0f}  late {current['late']:.0f}  "
            f"panes {current['panes']:.0f}")


class StatusReporter:
    """Prints a status line to ``out`` every ``interval_seconds`` until ``stop()``."""

    def __init__(self, interval_seconds=10.0, out=None, registry=REGISTRY):
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds}")
        self._interval = interval_seconds
        self._out = out
        self._registry = registry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="entitystream-status",
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _loop(self):
        previous = snapshot(self._registry)
        while not self._stop.wait(self._interval):
            current = snapshot(self._registry)
            print(status_line(previous, current), file=self._out or sys.stderr, flush=True)
            previous = current
