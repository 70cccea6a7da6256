"""The window book: every open event-time window and its panes, as plain data.

No Beam, no metrics, no clock: every call that needs the time takes it
(``now_ms``, wall clock in ms; ``through``/``watermark``, event time in ms).
``pipeline/aggregate.py`` maps a stateful DoFn's elements and timers onto it.

- ``add(article, now_ms)`` counts one article (``article_id``,
  ``published_ms``, ``tally``, ``cooc``) in every open window of every
  family; it returns whether it was ``aggregated``, ``late`` (one of its
  windows had expired: the late-article record) or a ``duplicate`` (its id
  already counted in its tumbling window).
- ``close_through(watermark, now_ms)``: the watermark has passed every
  boundary up to ``watermark``: ON_TIME panes (final when
  ``allowed_lateness_ms`` is 0, and always for the running window), and a
  final LATE pane when a window expires (end + lateness).
- ``dirty_panes(now_ms)``: EARLY (after ON_TIME: LATE) panes of every window
  with news since its last pane.
- ``next_event_time()``: when the next window closes (event time), batched to
  the newest boundary counted articles have passed (a replay closes many
  boundaries with one timer; docs/architecture.md "Windows and panes");
  ``next_processing_time()``: when EARLY panes are next due.
- ``snapshot()`` / ``WindowBook.restore(snapshot, ...)``: for checkpoints.

State is kept per family (tumbling, sliding, running) as **sub-buckets**
of the family's period: an article updates one bucket per family (not the
``size / period`` sliding windows it belongs to); a sliding window's pane
adds up its buckets when it is emitted. A window records only its pane
index, whether ON_TIME has fired and the book's sequence number at its last
pane: it is dirty when one of its buckets changed after that.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Set

from pipeline.records import WindowPane
from pipeline.tallies import CooccurrenceTally, MentionTally
from pipeline.windows import RUNNING, RUNNING_END_MS, SLIDING, TUMBLING, WindowSpec

__all__ = ["WindowBook", "Added", "KINDS", "FAMILY_OF_KIND", "LATE_ARTICLES"]

LATE_ARTICLES = "late_articles"
# Per window family: (mention kind, co-occurrence kind or None).
KINDS = {TUMBLING: ("entity_counts", "cooccurrence"),
         SLIDING: ("sliding_entity_counts", None),
         RUNNING: ("running_entity_counts", "running_cooccurrence")}
FAMILY_OF_KIND = {kind: family for family, kinds in KINDS.items() for kind in kinds if kind}


class Added(NamedTuple):
    """What ``WindowBook.add`` did with an article."""
    outcome: str                 # aggregated | late | duplicate
    late: Optional[dict] = None  # the late-article record (schemas/late_article.avsc)
    target_ms: Optional[int] = None  # the earliest close among the windows it is in


@dataclass(slots=True)
class Bucket:
    """One period of one family: what its articles brought."""
    mentions: MentionTally
    cooc: Optional[CooccurrenceTally]
    ids: Optional[Set[str]]  # tumbling only: the article ids (duplicates)
    changed: int = 0         # the book's sequence number when last added to


@dataclass(slots=True)
class Window:
    start_ms: int
    end_ms: int
    pane_index: int = 0
    on_time_fired: bool = False
    emitted: int = -1        # the book's sequence number at its last pane


@dataclass(slots=True)
class _Family:
    """One family's buckets and windows (geometry from its ``WindowSpec``)."""
    spec: WindowSpec
    buckets: Dict[int, Bucket] = field(default_factory=dict)
    windows: Dict[int, Window] = field(default_factory=dict)

    def bucket_of(self, t_ms):
        return 0 if self.spec.family == RUNNING else t_ms - t_ms % self.spec.period_ms

    def starts_over(self, bucket):
        """Starts of the windows holding ``bucket``, earliest first."""
        if self.spec.family == RUNNING:
            return range(0, 1)
        size, period = self.spec.size_ms, self.spec.period_ms
        return range(bucket - size + period, bucket + 1, period)

    def end_of(self, start):
        return RUNNING_END_MS if self.spec.family == RUNNING else start + self.spec.size_ms

    def buckets_of(self, window):
        if self.spec.family == RUNNING:
            return [self.buckets.get(0)]
        period = self.spec.period_ms
        return [self.buckets.get(b) for b in range(window.start_ms, window.end_ms, period)]

    def target(self, window, lateness_ms):
        """When ``window`` next needs the watermark: its end, or its expiry."""
        if window.on_time_fired and self.spec.family != RUNNING:
            return window.end_ms + lateness_ms
        return window.end_ms

    def is_dirty(self, window):
        return any(b is not None and b.changed > window.emitted for b in self.buckets_of(window))

    def pane(self, window, timing, is_final, now_ms, seq) -> List[WindowPane]:
        buckets = [b for b in self.buckets_of(window) if b is not None]
        mention_kind, cooc_kind = KINDS[self.spec.family]
        if len(buckets) == 1:
            mentions, cooc = buckets[0].mentions, buckets[0].cooc
        else:  # a sliding window: the sum of its buckets
            mentions = MentionTally()
            cooc = (None if buckets[0].cooc is None
                    else CooccurrenceTally.empty(buckets[0].cooc.pairs.capacity))
            for b in buckets:
                mentions.merge(b.mentions)
                if cooc is not None:
                    cooc.merge(b.cooc)
        args = (window.start_ms, window.end_ms, timing, window.pane_index, is_final, now_ms)
        panes = [WindowPane(mention_kind, *args, mentions.rows())]
        if cooc_kind is not None:
            panes.append(WindowPane(cooc_kind, *args, cooc.rows()))
        window.pane_index += 1
        window.emitted = seq
        return panes

    def count(self, b, starts, article, seq, top_k, lateness_ms):
        """Add ``article`` to bucket ``b`` (opening it and its windows ``starts``);
        return the earliest target among those windows."""
        bucket = self.buckets.get(b)
        if bucket is None:
            fam = self.spec.family
            bucket = self.buckets[b] = Bucket(
                MentionTally(), CooccurrenceTally.empty(top_k) if KINDS[fam][1] else None,
                set() if fam == TUMBLING else None)
            for s in starts:
                if s not in self.windows:
                    self.windows[s] = Window(s, self.end_of(s))
        bucket.mentions.add(article.tally)
        if bucket.cooc is not None:
            bucket.cooc.add(article.cooc)
        if bucket.ids is not None:
            bucket.ids.add(article.article_id)
        bucket.changed = seq
        windows = [self.windows.get(s) for s in starts]
        return min((self.target(w, lateness_ms) for w in windows if w is not None), default=None)

    def keeps_pane(self, start_ms, end_ms, pane_index, closed_through, lateness_ms):
        """Whether a pane file of this family is accounted for (see WindowBook)."""
        running = self.spec.family == RUNNING
        w = self.windows.get(0 if running else start_ms)
        if w is not None:
            return pane_index < w.pane_index
        # Not open: closed before (keep), or opened after the snapshot.
        end_ms, lateness_ms = (RUNNING_END_MS, 0) if running else (end_ms, lateness_ms)
        return end_ms + lateness_ms <= closed_through

    def drop_closed_buckets(self, through, lateness_ms):
        """Buckets no open window holds any more (the last one holding a bucket
        starts at it)."""
        if self.spec.family == RUNNING:
            if not self.windows:
                self.buckets.clear()
            return
        size = self.spec.size_ms
        for b in [b for b in self.buckets if b + size + lateness_ms <= through]:
            del self.buckets[b]


class WindowBook:
    """The open windows of every family, and the rules that open and close them.

    Args (keyword-only):
      specs: the ``WindowSpec`` of each family (``pipeline/windows.py``).
      allowed_lateness_ms: how long after its end a window takes late articles.
      early_firing_ms: the EARLY pane cadence (processing time); None: none.
      top_k_pairs: co-occurrence pairs reported per window (``FrequentItems``).

    Example::

        book = WindowBook(specs=[WindowSpec.tumbling(3600)], allowed_lateness_ms=0,
                          early_firing_ms=None, top_k_pairs=1000)
        book.add(article, now_ms=...)            # Added("aggregated", ...)
        panes = book.close_through(watermark_ms, now_ms=...)
    """

    def __init__(self, *, specs, allowed_lateness_ms, early_firing_ms, top_k_pairs):
        self._families = {s.family: _Family(s) for s in sorted(specs)}
        periods = [s.period_ms for s in specs if s.period_ms]
        # Every window boundary is a multiple of this (see next_event_time).
        self._grid_ms = math.gcd(*periods) if periods else None
        self._lateness_ms = allowed_lateness_ms
        self._early_ms = early_firing_ms
        self._top_k = top_k_pairs
        self.closed_through = 0  # ms: every boundary up to here has passed
        self.newest_ms = None    # the newest publication time counted (at most the clock)
        self.last_emit_ms = 0    # when EARLY panes last went out
        self._seq = 0            # articles counted: orders bucket changes and panes

    def __len__(self):
        return sum(len(f.windows) for f in self._families.values())

    def add(self, article, now_ms) -> Added:
        t, lateness, closed = article.published_ms, self._lateness_ms, self.closed_through
        placed, expired_ends, counted = [], [], 0
        for family in self._families.values():
            b = family.bucket_of(t)
            every = family.starts_over(b)
            starts = [s for s in every if family.spec.family == RUNNING
                      or s + family.spec.size_ms + lateness > closed]
            if len(starts) < len(every):
                expired_ends.append(family.end_of(b - family.spec.size_ms + family.spec.period_ms))
            counted += len(starts)
            if starts:
                placed.append((family, b, starts))
        for family, b, _ in placed:
            bucket = family.buckets.get(b)
            if family.spec.family == TUMBLING and bucket and article.article_id in bucket.ids:
                return Added("duplicate")
        self._seq += 1
        targets = [family.count(b, starts, article, self._seq, self._top_k, lateness)
                   for family, b, starts in placed]
        target = min((t for t in targets if t is not None), default=None)
        newest = min(t, now_ms)  # a future article: the clock
        if self.newest_ms is None or newest > self.newest_ms:
            self.newest_ms = newest
        if not expired_ends:
            return Added("aggregated", None, target)
        every = sum(len(f.starts_over(f.bucket_of(t))) for f in self._families.values())
        late = {"article_id": article.article_id, "published_at": t,
                "expired_windows": every - counted, "counted_windows": counted,
                # A lower bound: the book is told only that boundaries passed.
                "late_by_at_least_ms": closed - min(expired_ends) - lateness,
                "detected_at": now_ms}
        return Added("late", late, target)

    def close_through(self, watermark, now_ms) -> List[WindowPane]:
        """Panes of every window whose end (ON_TIME) or expiry (final LATE) is
        at or before ``watermark``; closed windows are forgotten."""
        self.closed_through = watermark
        panes, lateness = [], self._lateness_ms
        for family in self._families.values():
            running = family.spec.family == RUNNING
            for s in sorted(family.windows):
                w = family.windows[s]
                if not w.on_time_fired and w.end_ms <= watermark:
                    w.on_time_fired = True
                    final = lateness == 0 or running
                    panes += family.pane(w, "ON_TIME", final, now_ms, self._seq)
                    if final:
                        del family.windows[s]
                        continue
                if w.on_time_fired and w.end_ms + lateness <= watermark:
                    panes += family.pane(w, "LATE", True, now_ms, self._seq)
                    del family.windows[s]
            family.drop_closed_buckets(watermark, lateness)
        return panes

    def dirty_panes(self, now_ms) -> List[WindowPane]:
        """EARLY (after ON_TIME: LATE) panes of the windows with news."""
        self.last_emit_ms = now_ms
        panes = []
        for family in self._families.values():
            for s in sorted(family.windows):
                w = family.windows[s]
                if family.is_dirty(w):
                    panes += family.pane(w, "LATE" if w.on_time_fired else "EARLY", False,
                                         now_ms, self._seq)
        return panes

    def next_event_time(self) -> Optional[int]:
        """The earliest window target (end, or end + lateness after ON_TIME) or,
        when counted articles are already past it (a replay, a catch-up), the
        last boundary at or before the newest of them: one firing then closes
        every window up to there. None when no window is open."""
        targets = [f.target(w, self._lateness_ms)
                   for f in self._families.values() for w in f.windows.values()]
        if not targets:
            return None
        earliest, newest = min(targets), self.newest_ms
        if newest is None or self._grid_ms is None or earliest >= newest:
            return earliest
        return max(earliest, newest - newest % self._grid_ms)

    def next_processing_time(self) -> Optional[int]:
        """When EARLY panes are next due (``last_emit_ms`` + the cadence)."""
        return None if self._early_ms is None else self.last_emit_ms + self._early_ms

    def keeps_pane(self, kind, start_ms, end_ms, pane_index) -> bool:
        """Whether the book accounts for this pane (a restore keeps its file)."""
        family = self._families.get(FAMILY_OF_KIND.get(kind))
        return family is None or family.keeps_pane(start_ms, end_ms, pane_index,
                                                   self.closed_through, self._lateness_ms)

    def snapshot(self) -> dict:
        """The book as plain picklable data (shared, not copied: pickle it
        before the book changes again)."""
        return {"families": {n: (f.spec, f.buckets, f.windows) for n, f in self._families.items()},
                "closed_through": self.closed_through, "newest_ms": self.newest_ms,
                "last_emit_ms": self.last_emit_ms, "seq": self._seq}

    @classmethod
    def restore(cls, snapshot, **settings) -> "WindowBook":
        """A book with ``settings`` (as for the constructor) and ``snapshot``'s state."""
        book = cls(**settings)
        saved = {n: spec for n, (spec, _, _) in snapshot["families"].items()}
        if saved != {n: f.spec for n, f in book._families.items()}:
            raise ValueError(f"the checkpoint's windows {sorted(saved.values())} differ from "
                             f"this run's {sorted(f.spec for f in book._families.values())}; "
                             "run with the same window flags or move the checkpoint away")
        for name, (_, buckets, windows) in snapshot["families"].items():
            book._families[name].buckets, book._families[name].windows = buckets, windows
        book.closed_through, book.newest_ms = snapshot["closed_through"], snapshot["newest_ms"]
        book.last_emit_ms, book._seq = snapshot["last_emit_ms"], snapshot["seq"]
        return book
