"""Event-time window assignment, as plain functions of a publication time.

Three families, each a ``WindowSpec``:

- ``tumbling``: fixed windows of ``size_ms`` (default one hour);
- ``sliding``: windows of ``size_ms`` starting every ``period_ms`` (default 24
  hours every hour), so an article is in ``size_ms / period_ms`` windows;
- ``running``: one window from the epoch to the end of year 9999, the
  running total since the start of the stream.

A window is ``(start_ms, end_ms)``, start inclusive, end exclusive.
"""
from typing import List, NamedTuple, Tuple

__all__ = ["WindowSpec", "assign", "RUNNING_END_MS", "TUMBLING", "SLIDING", "RUNNING"]

RUNNING_END_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the last Avro-readable time
TUMBLING, SLIDING, RUNNING = "tumbling", "sliding", "running"


class WindowSpec(NamedTuple):
    family: str
    size_ms: int = 0
    period_ms: int = 0

    @classmethod
    def tumbling(cls, size_s):
        if size_s <= 0:
            raise ValueError(f"tumbling window size must be > 0 s, got {size_s}")
        return cls(TUMBLING, int(size_s * 1000), int(size_s * 1000))

    @classmethod
    def sliding(cls, size_s, period_s):
        if size_s <= 0 or period_s <= 0 or size_s % period_s:
            msg = (f"sliding windows need size > 0 and a period > 0 that divides it, "
                   f"got size {size_s} s every {period_s} s")
            raise ValueError(msg)
        return cls(SLIDING, int(size_s * 1000), int(period_s * 1000))

    @classmethod
    def running(cls):
        return cls(RUNNING)


def assign(spec: WindowSpec, t_ms: int) -> List[Tuple[int, int]]:
    """The windows of ``spec`` that contain time ``t_ms``, earliest first."""
    if spec.family == RUNNING:
        return [(0, RUNNING_END_MS)]
    last_start = t_ms - t_ms % spec.period_ms
    starts = range(last_start - spec.size_ms + spec.period_ms, last_start + 1, spec.period_ms)
    return [(s, s + spec.size_ms) for s in starts]
