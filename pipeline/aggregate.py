"""Stage 4: aggregate entities per event-time window, pane by pane.

From each article's mentions (``ArticleEntities``) this stage keeps:

=========================  ===========  ==========================================
kind                       windows      records (schema)
=========================  ===========  ==========================================
``entity_counts``          tumbling     mentions per entity (entity_count)
``sliding_entity_counts``  sliding      mentions per entity (entity_count)
``running_entity_counts``  running      mentions per entity since the start
``cooccurrence``           tumbling     entity pairs per sentence and per article,
                                        and tracked tuples (cooccurrence)
``running_cooccurrence``   running      the same since the start
=========================  ===========  ==========================================

Panes (one ``WindowPane`` per kind, window and firing) accumulate: each holds
the window's full counts so far. EARLY panes come on a processing-time
cadence (``early_firing_seconds``) while articles arrive; the ON_TIME pane
when the watermark passes the end of the window (final if
``allowed_lateness_seconds`` is 0); LATE panes for articles within the
lateness, and a final LATE pane when the window expires. The running window
never closes while the stream runs: its panes are all EARLY until the input
ends (bounded runs), when it gets a final ON_TIME pane.

An article whose (tumbling or sliding) window has already expired cannot be
counted there: it leaves on the ``late_articles`` output, with how late it
was, and ``entitystream_late_articles_total`` counts it; the windows still
open (and the running totals) count it. An article id seen again in the same
tumbling window is a duplicate: not counted again
(``entitystream_duplicates_suppressed_total``).

Bounds on state: co-occurrence pairs come from an article's top
``max_entities_per_article`` entities (default 20: at most 190 pairs per
article), and a window's pairs are a Misra-Gries summary of ``top_k_pairs``
counters (default 1,000; ``pipeline/heavy_hitters.py``): each pair record
carries ``count_lower``/``count_upper`` and ``articles_lower``/
``articles_upper`` bounds that hold whatever the arrival order. Tracked
tuples and mention counts are exact.

How: the rules live in ``pipeline/window_book.py`` (a pure ``WindowBook``:
time passed in, unit-tested alone); the state under the one key and where
it is kept in ``pipeline/aggregation_state.py``; checkpoints, restore and
the offset commit in ``pipeline/checkpointer.py``. ``_EmitPanesFn`` below
only maps elements and timers onto them: an event-time ``tick`` timer at
the book's ``next_event_time``, processing-time timers for EARLY panes, the
checkpoint interval and a deferred close. Why not ``WindowInto(trigger=...)``
or window-scoped state: PRISM-1 and PRISM-2 in docs/runner-notes.md (the
rules are kept here so that they are the same on every runner).
"""
import contextlib
import logging
import re
import time
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp
from prometheus_client import Counter

from pipeline.aggregation_state import (AggregationState, Cells, StateStore, close_action,
                                        CLOSE_GRACE_SECONDS, SHARDS)
from pipeline.checkpointer import Checkpointer
from pipeline.cooccurrence import DEFAULT_TUPLES, article_cooccurrence
from pipeline.ledger import SourcePosition
from pipeline.surges import SurgeDetector, surge_panes
from pipeline.stories import (DEFAULT_HORIZON_SECONDS, DEFAULT_MAX_ARTICLES, DEFAULT_THRESHOLD,
                              StoryIndex)
from pipeline.tallies import tally_article
from pipeline.window_book import KINDS, LATE_ARTICLES, WindowBook
from pipeline.windows import WindowSpec

__all__ = ["AggregateEntities", "tally_article", "KINDS", "ENTITY_COUNTS", "COOCCURRENCE",
           "LATE_ARTICLES"]

ENTITY_COUNTS = "entity_counts"
COOCCURRENCE = "cooccurrence"
_ALL = "all"  # one key: every open window under it (pipeline/aggregation_state.py)
_LOG = logging.getLogger(__name__)

PANES = Counter("entitystream_panes_emitted",
                "Window panes emitted, by aggregate kind and timing.", ["kind", "timing"])
LATE = Counter("entitystream_late_articles",
               "Articles that arrived after one of their windows expired (beyond the "
               "allowed lateness); not counted in the expired windows.")
DUPLICATES = Counter("entitystream_duplicates_suppressed",
                     "Articles whose id was already counted in the same window.")
TUPLE_ARTICLES = Counter("entitystream_tracked_tuple_articles",
                         "Articles holding every member of a tracked tuple.", ["tuple"])
SETTLED = Counter("entitystream_messages_settled",
                  "Messages read, by where they ended: aggregated (counted in all their "
                  "windows), late (missed an expired window), duplicate, dead_letter, or "
                  "replayed (already counted before a restart). Their sum is every message "
                  "read.", ["outcome"])
AGGREGATED_LANGUAGES = Counter("entitystream_articles_aggregated",
                               "Articles counted in their windows (aggregated or late), by "
                               "language.", ["language"])
CHECKPOINT_FAILURES = Counter("entitystream_checkpoint_failures",
                              "Aggregation checkpoints that could not be written (retried).")
_LANGUAGE = re.compile(r"[a-z]{2,3}")


def _language_label(language):
    """Low-cardinality language label: ISO 639 codes as such, anything else ``other``."""
    language = (language or "").strip().lower().split("-")[0].split("_")[0]
    return language if _LANGUAGE.fullmatch(language) else "other"


class _Input(NamedTuple):
    """What the pane DoFn receives: an article's tallies, or (``article_id``
    None) a dead letter to settle in the ledger."""
    article_id: Optional[str]
    published_ms: int
    tally: Optional[dict]
    cooc: object
    language: str
    position: Optional[SourcePosition]
    source: Optional[str] = None      # the outlet
    signature: Optional[object] = None  # pipeline/stories.py
    story_id: Optional[str] = None    # set by the pane DoFn from its StoryIndex


def _checkpoint_failed():
    CHECKPOINT_FAILURES.inc()


def _at_ms(ms: int) -> Timestamp:
    """The last millisecond before ``ms`` (timers have millisecond precision):
    a window [s, e) is complete when the watermark reaches e - 1 ms."""
    return Timestamp(micros=(ms - 1) * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _after_ms(delay_ms: int) -> Timestamp:
    """A processing-time timer ``delay_ms`` from now."""
    return Timestamp(micros=(_now_ms() + delay_ms) * 1000)


def _emitted(state, panes):
    """``panes``, counted and kept as pending until the next checkpoint."""
    for pane in panes:
        PANES.labels(pane.kind, pane.pane_timing).inc()
        Checkpointer.remember(state, (pane.kind, pane.window_start_ms, pane.window_end_ms), pane)
    return panes


def _book_article(state, item, now_ms):
    """Settle ``item`` in the ledger and count it in the book, with its metrics:
    ``(Added or None when not counted, outputs)``."""
    if item.position is not None and state.ledger.is_settled(item.position):
        SETTLED.labels("replayed").inc()  # counted before a restart
        return None, []
    if item.position is not None:
        state.ledger.settle(item.position)
    if item.article_id is None:
        SETTLED.labels("dead_letter").inc()
        return None, []
    if state.stories is not None:  # near-duplicates: one story (pipeline/stories.py)
        item = item._replace(story_id=state.stories.assign(
            item.article_id, item.published_ms, item.signature))
    else:
        item = item._replace(story_id=item.article_id)
    added = state.book.add(item, now_ms)
    SETTLED.labels(added.outcome).inc()
    if added.outcome == "duplicate":
        DUPLICATES.inc()
        return None, []
    AGGREGATED_LANGUAGES.labels(_language_label(item.language)).inc()
    if added.late is None:
        return added, []
    LATE.inc()
    Checkpointer.remember(state, (LATE_ARTICLES, item.article_id), added.late)
    return added, [beam.pvalue.TaggedOutput(LATE_ARTICLES, added.late)]


def _set_tick(state, tick):
    """The tick timer at the book's next close (moved later only here: PRISM-5)."""
    state.timers.next_tick = state.book.next_event_time()
    if state.timers.next_tick is not None:
        tick.set(_at_ms(state.timers.next_tick))


def _arm_close(state, close):
    """Make sure the close timer fires CLOSE_GRACE_SECONDS from now (or sooner)."""
    if not state.timers.close:
        close.set(_after_ms(int(CLOSE_GRACE_SECONDS * 1000)))
        state.timers.close = True


class _PaneRules:
    """What ``_EmitPanesFn`` does with the state of one call, apart from
    Beam's state and timer parameters: a new state, the checkpoint cadence,
    the restore, counting an article and closing windows. The timers are
    Beam's, passed in."""

    def __init__(self, *, book_settings, story_settings, surge_settings, checkpointer,
                 checkpoint_interval_s):
        self._book_settings = dict(book_settings)
        self._story_settings = None if story_settings is None else dict(story_settings)
        self._surge_settings = None if surge_settings is None else dict(surge_settings)
        self._early_ms = book_settings["early_firing_ms"]  # None: bounded, no processing time
        self._checkpointer = checkpointer
        self._interval_ms = int(checkpoint_interval_s * 1000)

    @property
    def checkpointing(self):
        return self._checkpointer is not None

    @property
    def live_feed(self):
        """Processing-time panes (EARLY) and timers: a streaming run, not a bounded one."""
        return self._early_ms is not None

    def new_state(self):
        stories = (None if self._story_settings is None
                   else StoryIndex(**self._story_settings))
        surges = (None if self._surge_settings is None
                  else SurgeDetector(**self._surge_settings))
        return AggregationState(WindowBook(**self._book_settings), stories=stories, surges=surges)

    def checkpoint(self, state, save, due=False, wait=False):
        """Save when ``due`` or the interval has passed, else make sure the save timer is set."""
        cp, now_s = self._checkpointer, time.monotonic()
        if cp is not None and (due or cp.is_due(now_s)):
            cp.save(state, now_s, wait=wait)
        elif cp is not None and self.live_feed and not state.timers.save:
            save.set(_after_ms(self._interval_ms))
            state.timers.save = True

    def restore(self, store, cells, tick):
        """A job's first call in this process: start from the latest checkpoint."""
        restored = self._checkpointer.restore(self._book_settings, self._story_settings,
                                              self._surge_settings)
        if restored is None:
            return []
        state, outputs = restored
        _set_tick(state, tick)
        store.store(state, cells)
        return outputs

    def count(self, state, item, now_ms, firing, tick):
        added, out = _book_article(state, item, now_ms)
        if added is None:
            return out
        timers = state.timers
        if added.target_ms is not None and (timers.next_tick is None
                                            or added.target_ms < timers.next_tick):
            tick.set(_at_ms(added.target_ms))  # only ever earlier here (PRISM-5)
            timers.next_tick = added.target_ms
        if self.live_feed:
            due = state.book.next_processing_time()
            if now_ms >= due:  # from here, not only the timer (PRISM-8)
                out += _emitted(state, state.book.dirty_panes(now_ms))
            elif not timers.firing:
                firing.set(Timestamp(micros=due * 1000))
                timers.firing = True
        return out

    def close(self, state, through, tick, save):
        """Panes of every boundary up to ``through``; re-arm the tick; when every
        window has closed (the end of a bounded input), checkpoint and wait for
        the commit."""
        had_windows, now_ms = len(state.book) > 0, _now_ms()
        panes = state.book.close_through(through, now_ms)
        if state.surges is not None:
            panes += surge_panes(state.surges, panes, now_ms)
        out = _emitted(state, panes)
        _set_tick(state, tick)
        state.complete = had_windows and not len(state.book)
        self.checkpoint(state, save, due=state.complete, wait=state.complete)
        return out


class _EmitPanesFn(beam.DoFn):
    """(key, _Input) -> WindowPane, plus ``late_articles`` dicts: elements and
    timers mapped onto the ``WindowBook`` (module docstring)."""

    # The runner-state layout (pipeline/aggregation_state.py RunnerLayout).
    VERSION = userstate.ReadModifyWriteStateSpec("windows_version", coders.VarIntCoder())
    HEADER = userstate.ReadModifyWriteStateSpec("header", coders.PickleCoder())
    PENDING = userstate.BagStateSpec("pending", coders.PickleCoder())
    RUNNING = userstate.ReadModifyWriteStateSpec("running", coders.PickleCoder())
    S0, S1, S2, S3 = (userstate.ReadModifyWriteStateSpec(f"shard{i}", coders.PickleCoder())
                      for i in range(SHARDS))
    STORIES = userstate.BagStateSpec("stories", coders.PickleCoder())
    FIRING = userstate.TimerSpec("firing", TimeDomain.REAL_TIME)
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)
    SAVE = userstate.TimerSpec("checkpoint", TimeDomain.REAL_TIME)
    CLOSE = userstate.TimerSpec("close", TimeDomain.REAL_TIME)

    def __init__(self, *, book_settings, store, checkpointer=None, checkpoint_interval_s=5.0,
                 story_settings=None, surge_settings=None):
        self._rules = _PaneRules(book_settings=book_settings, story_settings=story_settings,
                                 surge_settings=surge_settings, checkpointer=checkpointer,
                                 checkpoint_interval_s=checkpoint_interval_s)
        self._store = store
        self._token = None

    def start_bundle(self):
        self._token = object()  # which bundle stores (StateStore.bundle, SDK-3)

    def teardown(self):
        self._store.drop()

    @contextlib.contextmanager
    def _session(self, cells):
        """The state for one call, stored back when the call succeeds."""
        with self._store.bundle(self._token):
            state = self._store.load(cells, self._rules.new_state)
            yield state
            self._store.store(state, cells)

    def process(self, keyed, version_cell=beam.DoFn.StateParam(VERSION),
                header=beam.DoFn.StateParam(HEADER), pending=beam.DoFn.StateParam(PENDING),
                running=beam.DoFn.StateParam(RUNNING), s0=beam.DoFn.StateParam(S0),
                s1=beam.DoFn.StateParam(S1), s2=beam.DoFn.StateParam(S2),
                s3=beam.DoFn.StateParam(S3), stories=beam.DoFn.StateParam(STORIES),
                firing=beam.DoFn.TimerParam(FIRING), tick=beam.DoFn.TimerParam(TICK),
                save=beam.DoFn.TimerParam(SAVE)):
        cells = Cells(version_cell, header, pending, running, (s0, s1, s2, s3), stories)
        item, out, now_ms = keyed[1], [], _now_ms()
        with self._store.bundle(self._token):
            live = self._store.live
            if self._rules.checkpointing and not live.started and version_cell.read() is None:
                out += self._rules.restore(self._store, cells, tick)
            live.started = True  # once per process and step (PRISM-3: old snapshots)
        with self._session(cells) as state:
            out += self._rules.count(state, item, now_ms, firing, tick)
            self._rules.checkpoint(state, save)
        yield from out

    @userstate.on_timer(FIRING)
    def on_firing(self, version_cell=beam.DoFn.StateParam(VERSION),
                  header=beam.DoFn.StateParam(HEADER), pending=beam.DoFn.StateParam(PENDING),
                  running=beam.DoFn.StateParam(RUNNING), s0=beam.DoFn.StateParam(S0),
                  s1=beam.DoFn.StateParam(S1), s2=beam.DoFn.StateParam(S2),
                  s3=beam.DoFn.StateParam(S3), stories=beam.DoFn.StateParam(STORIES)):
        cells = Cells(version_cell, header, pending, running, (s0, s1, s2, s3), stories)
        with self._session(cells) as state:
            state.timers.firing = False
            out = _emitted(state, state.book.dirty_panes(_now_ms()))
        yield from out

    @userstate.on_timer(SAVE)
    def on_save(self, version_cell=beam.DoFn.StateParam(VERSION),
                header=beam.DoFn.StateParam(HEADER), pending=beam.DoFn.StateParam(PENDING),
                running=beam.DoFn.StateParam(RUNNING), s0=beam.DoFn.StateParam(S0),
                s1=beam.DoFn.StateParam(S1), s2=beam.DoFn.StateParam(S2),
                s3=beam.DoFn.StateParam(S3), stories=beam.DoFn.StateParam(STORIES),
                save=beam.DoFn.TimerParam(SAVE)):
        cells = Cells(version_cell, header, pending, running, (s0, s1, s2, s3), stories)
        with self._session(cells) as state:
            state.timers.save = False
            self._rules.checkpoint(state, save, due=True)  # set an interval ago

    @userstate.on_timer(TICK)
    def on_tick(self, fired=beam.DoFn.TimestampParam,
                version_cell=beam.DoFn.StateParam(VERSION),
                header=beam.DoFn.StateParam(HEADER), pending=beam.DoFn.StateParam(PENDING),
                running=beam.DoFn.StateParam(RUNNING), s0=beam.DoFn.StateParam(S0),
                s1=beam.DoFn.StateParam(S1), s2=beam.DoFn.StateParam(S2),
                s3=beam.DoFn.StateParam(S3), stories=beam.DoFn.StateParam(STORIES),
                tick=beam.DoFn.TimerParam(TICK), save=beam.DoFn.TimerParam(SAVE),
                close=beam.DoFn.TimerParam(CLOSE)):
        out, cells = [], Cells(version_cell, header, pending, running, (s0, s1, s2, s3), stories)
        with self._session(cells) as state:
            # The watermark has reached `fired`: every boundary up to it has passed.
            through = max(state.book.closed_through, Timestamp.of(fired).micros // 1000 + 1)
            action, timers = close_action(state, through, self._rules.live_feed), state.timers
            if action == "defer":  # PRISM-7
                timers.deferred_through = max(timers.deferred_through, through)
                _arm_close(state, close)
            elif action == "retry":  # PRISM-7, bounded: fire again after what arrived
                timers.close_retries += 1
                tick.set(fired)
            else:
                timers.close_retries = 0
                out = self._rules.close(state, through, tick, save)
        yield from out

    @userstate.on_timer(CLOSE)
    def on_close(self, version_cell=beam.DoFn.StateParam(VERSION),
                 header=beam.DoFn.StateParam(HEADER), pending=beam.DoFn.StateParam(PENDING),
                 running=beam.DoFn.StateParam(RUNNING), s0=beam.DoFn.StateParam(S0),
                 s1=beam.DoFn.StateParam(S1), s2=beam.DoFn.StateParam(S2),
                 s3=beam.DoFn.StateParam(S3), stories=beam.DoFn.StateParam(STORIES),
                 tick=beam.DoFn.TimerParam(TICK), save=beam.DoFn.TimerParam(SAVE),
                 close=beam.DoFn.TimerParam(CLOSE)):
        out, cells = [], Cells(version_cell, header, pending, running, (s0, s1, s2, s3), stories)
        with self._session(cells) as state:
            state.timers.close = False
            if state.ledger.has_gaps():
                _arm_close(state, close)  # wait again while the gap stays open
            else:
                through = max(state.book.closed_through, state.timers.deferred_through)
                out = self._rules.close(state, through, tick, save)
        yield from out



def _ordered(keyed, position, timestamp):
    """``keyed`` stamped with the reader's watermark when it read the record,
    if that is earlier than the element's own time (PRISM-6).

    The pane DoFn counts articles by their publication time (``_Input``), not
    by the element's timestamp, which only orders a key's elements against its
    timers. Stamped with the reader's watermark (which the runner's watermark
    has passed when they arrive), everything read by the time a window-closing
    timer is ready goes before it, in one bundle. Never later than the
    element's own time: an element only moves ahead of timers it would have
    followed and that are not ready yet, so no window closes earlier."""
    mark = None if position is None else position.watermark_ms
    if mark is None or timestamp.micros <= mark * 1000:
        return keyed
    return beam.window.TimestampedValue(keyed, Timestamp(micros=mark * 1000))


@beam.typehints.with_output_types(beam.typehints.KV[str, _Input])
class _TallyArticleFn(beam.DoFn):
    """ArticleEntities -> (key, _Input: id, published_at_ms, mention tally, co-occurrence),
    stamped by ``_ordered``.

    A module-level DoFn, not a closure: a pickled closure would carry its own
    copy of the module's Prometheus counter, invisible to the endpoint."""

    def __init__(self, max_entities, tuples):
        self._max_entities = max_entities
        self._tuples = tuples
        self._names = {tuple(sorted(t)): "x".join(sorted(t)) for t in tuples}

    def process(self, article, timestamp=beam.DoFn.TimestampParam):
        cooc = article_cooccurrence(article.mentions, self._max_entities, self._tuples)
        for (scope, key) in cooc.tuples:
            if scope == "article":
                TUPLE_ARTICLES.labels(self._names[key]).inc()
        yield _ordered((_ALL, _Input(article.article_id, article.published_at_ms,
                                     tally_article(article), cooc, article.language,
                                     article.position, article.source, article.signature)),
                       article.position, timestamp)


@beam.typehints.with_output_types(beam.typehints.KV[str, _Input])
class _DeadLetterInputFn(beam.DoFn):
    """A published dead letter -> (key, _Input) that only settles its position."""

    def process(self, dead_letter, timestamp=beam.DoFn.TimestampParam):
        position = dead_letter.get("_position")
        yield _ordered((_ALL, _Input(None, 0, None, None, "", position)), position, timestamp)


class AggregateEntities(beam.PTransform):
    """``ArticleEntities`` -> outputs ``panes`` (``WindowPane`` of every kind)
    and ``late_articles`` (dicts shaped by ``schemas/late_article.avsc``).

    Applied to a PCollection of ``ArticleEntities``, or to a dict
    ``{"articles": ..., "dead_letters": ...}`` whose dead letters (dicts with
    a ``_position``, after they were published) are settled in the ledger
    too, so that checkpoints can commit past them.

    Args:
      window_seconds: tumbling window size (default 3600).
      sliding_window_seconds, sliding_period_seconds: sliding windows
        (default 86400 every 3600); 0 for none.
      early_firing_seconds: processing-time delay between panes while data
        flows; ``None`` for none (batch runs).
      allowed_lateness_seconds: how long after its end a window still takes
        late articles (default 0: the ON_TIME pane is final).
      max_entities_per_article: entities per article used for pairs (default 20).
      top_k_pairs: co-occurrence pairs reported per window, with bounds
        (default 1000; ``pipeline/heavy_hitters.py``).
      tracked_tuples: tuples of entity ids counted exactly (default
        RUSSIA x NORTH_KOREA x BRIDGE).
      checkpoint: where checkpoints go (``connectors.checkpoint_files.
        CheckpointFiles``), or None (default) for none: a restarted job then
        starts with empty windows.
      checkpoint_interval_seconds: at most this long between checkpoints
        while the state changes (default 5).
      on_checkpoint: called after each checkpoint with ``({(topic,
        partition): next offset}, wait=bool)``: commit them
        (``connectors.kafka_offsets.CommitOffsets``).
      story_threshold, story_horizon_seconds, story_index_size: near-duplicate
        stories (``pipeline/stories.py``; an article needs its ``signature``
        from ``SignStories`` to be matched); ``story_threshold=0``: off, each
        article its own story.
      tracked_entity_ids: the tracked entities' ids (``--tracked-entities``):
        the subjects of surges and of the per-outlet breakdown.
      by_source: also emit ``source_counts`` panes (tumbling windows): per
        outlet, the tracked entities and tuples (default False).
      surge_threshold, surge_baseline_windows: surges of the tracked entities
        and tuples (``pipeline/surges.py``); ``surge_threshold=0``: none.
      surge_top_pairs: also score each closed tumbling window's N largest
        article-scope pairs, on the pair table's bounds (default 0: none).
      state_in_process: keep the open windows in this process (and the
        checkpoints) rather than in the runner's state (default False). Only
        for runners whose SDK worker runs in the launching process and fail
        the job on a failed bundle (Prism LOOPBACK, FnApiRunner): each bundle
        then no longer encodes every open window at its commit.

    Example::

        agg = found | 'AggregateEntities' >> AggregateEntities(window_seconds=3600)
        agg.panes, agg.late_articles
    """

    def __init__(self, *, window_seconds=3600, sliding_window_seconds=86400,
                 sliding_period_seconds=3600, early_firing_seconds=5.0,
                 allowed_lateness_seconds=0, max_entities_per_article=20, top_k_pairs=1000,
                 tracked_tuples=DEFAULT_TUPLES, checkpoint=None, checkpoint_interval_seconds=5.0,
                 on_checkpoint=None, state_in_process=False, story_threshold=DEFAULT_THRESHOLD,
                 story_horizon_seconds=DEFAULT_HORIZON_SECONDS,
                 story_index_size=DEFAULT_MAX_ARTICLES, tracked_entity_ids=(),
                 by_source=False, surge_threshold=3.5, surge_baseline_windows=24,
                 surge_top_pairs=0):
        super().__init__()
        self._by_source = tuple(sorted(tracked_entity_ids)) if by_source else None
        self._surges = None if not surge_threshold else dict(
            entity_ids=tuple(sorted(tracked_entity_ids)),
            tuples=tuple(tuple(sorted(t)) for t in tracked_tuples),
            threshold=surge_threshold, baseline_windows=surge_baseline_windows,
            min_history=min(6, surge_baseline_windows), top_pairs=surge_top_pairs,
            top_k_pairs=top_k_pairs)
        if self._surges is not None:
            SurgeDetector(**self._surges)  # validated when the transform is built
        # Validated here, when the transform is built (0: stories off).
        self._stories = None if not story_threshold else dict(
            threshold=story_threshold, horizon_ms=int(story_horizon_seconds * 1000),
            max_articles=story_index_size)
        if self._stories is not None:
            StoryIndex(**self._stories)
        if checkpoint_interval_seconds <= 0:
            raise ValueError(f"checkpoint_interval_seconds must be > 0, got "
                             f"{checkpoint_interval_seconds}")
        if allowed_lateness_seconds < 0:
            raise ValueError(f"allowed_lateness_seconds must be >= 0, got {allowed_lateness_seconds}")
        if early_firing_seconds is not None and early_firing_seconds <= 0:
            raise ValueError(f"early_firing_seconds must be > 0 or None, got {early_firing_seconds}")
        if max_entities_per_article < 2 or top_k_pairs < 1:
            raise ValueError("max_entities_per_article must be >= 2 and top_k_pairs >= 1, got "
                             f"{max_entities_per_article} and {top_k_pairs}")
        specs = [WindowSpec.tumbling(window_seconds), WindowSpec.running()]
        if sliding_window_seconds:
            specs.insert(1, WindowSpec.sliding(sliding_window_seconds, sliding_period_seconds))
        self._specs = tuple(specs)
        self._early = early_firing_seconds
        self._lateness = allowed_lateness_seconds
        self._max_entities = max_entities_per_article
        self._top_k = top_k_pairs
        self._tuples = tuple(tuple(sorted(t)) for t in tracked_tuples)
        self._checkpoint = (checkpoint, checkpoint_interval_seconds, on_checkpoint)
        self._state_in_process = state_in_process

    def expand(self, found):
        found, dead_letters = ((found["articles"], found.get("dead_letters"))
                               if isinstance(found, dict) else (found, None))
        tallied = found | "TallyArticle" >> beam.ParDo(
            _TallyArticleFn(self._max_entities, self._tuples))
        if dead_letters is not None:
            settled = dead_letters | "SettleDeadLetters" >> beam.ParDo(_DeadLetterInputFn())
            tallied = (tallied, settled) | "WithDeadLetters" >> beam.Flatten()
        files, interval_s, on_checkpoint = self._checkpoint
        checkpointer = None if files is None else Checkpointer(
            files=files, interval_seconds=interval_s, on_commit=on_checkpoint,
            on_failure=_checkpoint_failed)
        book_settings = dict(
            specs=self._specs, allowed_lateness_ms=int(self._lateness * 1000),
            early_firing_ms=None if self._early is None else int(self._early * 1000),
            top_k_pairs=self._top_k, by_source_ids=self._by_source)
        return tallied | "EmitPanes" >> beam.ParDo(_EmitPanesFn(
            book_settings=book_settings,
            store=StateStore(state_in_process=self._state_in_process,
                             book_settings=book_settings),
            checkpointer=checkpointer, checkpoint_interval_s=interval_s,
            story_settings=self._stories, surge_settings=self._surges)
        ).with_outputs(LATE_ARTICLES, main="panes")

