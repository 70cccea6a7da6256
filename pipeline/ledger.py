"""Which source messages the aggregation has settled: the books of exactly-once.

Every message read from Kafka ends in exactly one place: counted in its
windows, dead-lettered, late, or a duplicate. The aggregation settles each
one here, by its position, and its checkpoints (``pipeline.aggregate``) save
this ledger together with the windows that hold those messages. After a
crash the pipeline restores the latest checkpoint and reads again from the
committed offsets; a message the ledger already holds is skipped, so nothing
is lost and nothing is counted twice.

A position is ``SourcePosition(topic, partition, offset, prev_offset,
starts_run)``, stamped by the Kafka reader: ``prev_offset`` is the offset of
the record it read before this one on the same partition (or one before its
starting offset), so a record settles the whole range ``(prev_offset,
offset]`` (offsets between them hold no record: transaction markers,
compaction). ``starts_run`` marks the first record of a partition in a run:
everything before it was settled earlier (a previous run, committed) or is
deliberately not read (``--start-from latest``).

Per partition the ledger keeps sorted, disjoint ``[lo, hi)`` ranges. Records
arrive out of order (batches, bundles), so there may be a few ranges; once
the gaps fill, one range ``[0, n)`` remains, and ``n`` is the offset to
commit: the next one to read after a restart.
"""
import bisect
import logging
from typing import Dict, List, NamedTuple, Optional, Tuple

__all__ = ["SourcePosition", "SourceLedger"]

_LOG = logging.getLogger(__name__)


class SourcePosition(NamedTuple):
    topic: str
    partition: int
    offset: int
    prev_offset: int
    starts_run: bool = False
    watermark_ms: Optional[int] = None  # the reader's when it read this (KafkaRecord)


class _Ranges:
    """Sorted disjoint ``[lo, hi)`` integer ranges (lists, so they pickle small)."""

    __slots__ = ("los", "his")

    def __init__(self):
        self.los: List[int] = []
        self.his: List[int] = []

    def __getstate__(self):
        return (self.los, self.his)

    def __setstate__(self, state):
        self.los, self.his = state

    def contains(self, x: int) -> bool:
        i = bisect.bisect_right(self.los, x) - 1
        return i >= 0 and x < self.his[i]

    def add(self, lo: int, hi: int):
        if hi <= lo:
            return
        # Every range that touches or overlaps [lo, hi) merges into it.
        i = bisect.bisect_left(self.his, lo)
        j = bisect.bisect_right(self.los, hi)
        if i < j:
            lo = min(lo, self.los[i])
            hi = max(hi, self.his[j - 1])
        self.los[i:j] = [lo]
        self.his[i:j] = [hi]

    def prefix_end(self) -> Optional[int]:
        """``n`` when ``[0, n)`` is settled, else None."""
        if self.los and self.los[0] <= 0:
            return self.his[0]
        return None

    def __len__(self):
        return len(self.los)


class SourceLedger:
    """The settled positions of every partition read; picklable (checkpoints).

    Example::

        ledger = SourceLedger()
        pos = SourcePosition("articles", 0, offset=7, prev_offset=6, starts_run=True)
        if not ledger.is_settled(pos):
            ...count it...
            ledger.settle(pos)
        ledger.commit_offsets()   # {("articles", 0): 8}
    """

    def __init__(self):
        self._parts: Dict[Tuple[str, int], _Ranges] = {}

    def __getstate__(self):
        return self._parts

    def __setstate__(self, state):
        self._parts = state

    def is_settled(self, pos: SourcePosition) -> bool:
        ranges = self._parts.get((pos.topic, pos.partition))
        return ranges is not None and ranges.contains(pos.offset)

    def settle(self, pos: SourcePosition):
        ranges = self._parts.setdefault((pos.topic, pos.partition), _Ranges())
        if pos.starts_run:
            done = ranges.prefix_end() or 0
            if pos.prev_offset + 1 > done and done:
                _LOG.warning("%s/%d: this run starts at offset %d, after the checkpoint's %d: "
                             "offsets %d..%d were committed by another reader of the group and "
                             "are not counted here", pos.topic, pos.partition,
                             pos.prev_offset + 1, done, done, pos.prev_offset)
            ranges.add(0, pos.prev_offset + 1)
        ranges.add(pos.prev_offset + 1, pos.offset + 1)

    def commit_offsets(self) -> Dict[Tuple[str, int], int]:
        """``{(topic, partition): next offset to read}`` for every partition
        whose settled positions start at offset 0 without a gap."""
        out = {}
        for tp, ranges in self._parts.items():
            end = ranges.prefix_end()
            if end is not None:
                out[tp] = end
        return out

    def has_gaps(self) -> bool:
        """True while some partition's settled positions are not one range from
        offset 0: messages read before others have not been settled yet."""
        return any(len(r) != 1 or r.prefix_end() is None for r in self._parts.values())

    def open_ranges(self) -> int:
        """How many separate ranges are held (1 per partition when no gap is open)."""
        return sum(len(r) for r in self._parts.values())
