"""Stage 4: count entity mentions per event-time window, pane by pane.

Articles are assigned to fixed event-time windows by publication time. A
stateful DoFn keeps each open window's running tally (``EntityTallyFn``
accumulators) and emits ``WindowPane`` records:

- EARLY panes on a processing-time cadence (``early_firing_seconds``) while
  new articles arrive before the window closes (streaming only);
- the ON_TIME pane when the watermark passes the end of the window;
- LATE panes for articles that arrive after that but within
  ``allowed_lateness_seconds``, on the same cadence, the last one final.

Panes accumulate: every pane holds the window's full counts so far, so a
reader needs only the latest pane of a window. ``is_final`` marks the pane
after which the window's counts never change.

Articles for a window that has already expired are not counted: they leave
on the ``too_late`` output (and ``entitystream_late_articles_total``).

Why a stateful DoFn rather than ``WindowInto(trigger=...)``: Prism 2.75
panics on ``AfterProcessingTime`` early firings when a window expires with a
firing pending (engine/elementmanager.go, buildProcessingTimeBundle), and
the pane rules here are then identical on every runner.
"""
import time

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from prometheus_client import Counter

from pipeline.records import WindowPane

__all__ = ["CountMentions", "tally_article", "EntityTallyFn", "ENTITY_COUNTS"]

ENTITY_COUNTS = "entity_counts"
_ALL = "all"  # one key: every window's table in one state cell, one pane per window

PANES = Counter("entitystream_panes_emitted",
                "Window panes emitted, by aggregate kind and timing.",
                ["kind", "timing"])
TOO_LATE = Counter("entitystream_late_articles",
                   "Articles that arrived after their window expired (beyond the allowed "
                   "lateness), not counted.", ["kind"])
TOO_LATE_TAG = "too_late"


def tally_article(article_entities):
    """Per-entity tally of one article: ``{id: (mentions, label, {text: n})}``."""
    tally = {}
    for m in article_entities.mentions:
        count, label, texts = tally.get(m.entity_id, (0, m.label, {}))
        texts[m.text] = texts.get(m.text, 0) + 1
        tally[m.entity_id] = (count + 1, label, texts)
    return tally


class EntityTallyFn(beam.CombineFn):
    """Combines article tallies into ``{id: [mentions, articles, label, {text: n}]}``."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, tally):
        for entity_id, (count, label, texts) in tally.items():
            entry = acc.get(entity_id)
            if entry is None:
                entry = acc[entity_id] = [0, 0, label, {}]
            entry[0] += count
            entry[1] += 1
            for text, n in texts.items():
                entry[3][text] = entry[3].get(text, 0) + n
        return acc

    def merge_accumulators(self, accs):
        merged = {}
        for acc in accs:
            for entity_id, (mentions, articles, label, texts) in acc.items():
                entry = merged.get(entity_id)
                if entry is None:
                    entry = merged[entity_id] = [0, 0, label, {}]
                entry[0] += mentions
                entry[1] += articles
                for text, n in texts.items():
                    entry[3][text] = entry[3].get(text, 0) + n
        return merged

    def extract_output(self, acc):
        rows = []
        for entity_id, (mentions, articles, label, texts) in acc.items():
            # The most frequent surface form; ties broken alphabetically.
            text = min(texts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            rows.append({"entity_id": entity_id, "entity_text": text,
                         "entity_label": label, "mentions": mentions,
                         "articles": articles})
        rows.sort(key=lambda r: (-r["mentions"], r["entity_id"]))
        return tuple(rows)


def _at_ms(ms: int) -> Timestamp:
    """The last millisecond before ``ms`` (timers have millisecond precision):
    a window [s, e) is complete when the watermark reaches e - 1 ms."""
    return Timestamp(micros=(ms - 1) * 1000)


class _EmitPanesFn(beam.DoFn):
    """(key, (window_start_ms, window_end_ms, article_id, tally)) -> WindowPane.

    All windows of one key live in one state cell in the global window, and
    this DoFn decides itself when a window is complete, late or expired: the
    ``tick`` event-time timer is always set to the next window boundary, and
    ``closed_through_ms`` records the latest boundary the watermark passed.
    Runners differ in how they garbage-collect windowed state and drop
    expired data (Prism 2.75 drops a stateful DoFn's window state at the end
    of the window despite allowed lateness; neither Prism nor the Python
    DirectRunner drops input for expired windows), so the rules are kept here
    and hold on every runner.
    """

    # {(start_ms, end_ms): [accumulator, dirty, on_time_fired, next_pane_index]}
    WINDOWS = userstate.ReadModifyWriteStateSpec("windows", coders.PickleCoder())
    CLOSED_THROUGH = userstate.ReadModifyWriteStateSpec("closed_through_ms", coders.VarIntCoder())
    NEXT_TICK = userstate.ReadModifyWriteStateSpec("next_tick_ms", coders.VarIntCoder())
    PENDING = userstate.ReadModifyWriteStateSpec("firing_pending", coders.BooleanCoder())
    FIRING = userstate.TimerSpec("firing", TimeDomain.REAL_TIME)
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, kind, early_firing_seconds, allowed_lateness_seconds):
        self._kind = kind
        self._early = early_firing_seconds
        self._lateness_ms = int(allowed_lateness_seconds * 1000)
        self._combine = EntityTallyFn()

    def process(self, keyed, windows_state=beam.DoFn.StateParam(WINDOWS),
                closed_state=beam.DoFn.StateParam(CLOSED_THROUGH),
                next_tick=beam.DoFn.StateParam(NEXT_TICK),
                pending=beam.DoFn.StateParam(PENDING),
                firing=beam.DoFn.TimerParam(FIRING), tick=beam.DoFn.TimerParam(TICK)):
        start_ms, end_ms, article_id, tally = keyed[1]
        closed_through = closed_state.read() or 0
        if end_ms + self._lateness_ms <= closed_through:
            # The window expired: counting this would change a final pane.
            TOO_LATE.labels(self._kind).inc()
            yield beam.pvalue.TaggedOutput(TOO_LATE_TAG, {
                "kind": self._kind, "article_id": article_id, "window_start": start_ms,
                "window_end": end_ms,
                # A lower bound: the runner does not tell a DoFn its watermark,
                # only that a boundary timer fired (closed_through_ms).
                "late_by_at_least_ms": closed_through - end_ms})
            return
        windows = windows_state.read() or {}
        entry = windows.get((start_ms, end_ms))
        if entry is None:
            entry = windows[(start_ms, end_ms)] = [self._combine.create_accumulator(),
                                                   False, False, 0]
        entry[0] = self._combine.add_input(entry[0], tally)
        entry[1] = True
        windows_state.write(windows)
        target = end_ms if not entry[2] else end_ms + self._lateness_ms
        current = next_tick.read()
        if current is None or target < current:
            tick.set(_at_ms(target))
            next_tick.write(target)
        if self._early is not None and not pending.read():
            firing.set(Timestamp.now() + Duration(seconds=self._early))
            pending.write(True)

    @userstate.on_timer(FIRING)
    def on_firing(self, windows_state=beam.DoFn.StateParam(WINDOWS),
                  pending=beam.DoFn.StateParam(PENDING)):
        pending.write(False)
        windows = windows_state.read() or {}
        for (start_ms, end_ms), entry in sorted(windows.items()):
            if entry[1]:
                yield self._pane(start_ms, end_ms, entry, "LATE" if entry[2] else "EARLY", False)
        windows_state.write(windows)

    @userstate.on_timer(TICK)
    def on_tick(self, fired=beam.DoFn.TimestampParam,
                windows_state=beam.DoFn.StateParam(WINDOWS),
                closed_state=beam.DoFn.StateParam(CLOSED_THROUGH),
                next_tick=beam.DoFn.StateParam(NEXT_TICK),
                tick=beam.DoFn.TimerParam(TICK)):
        # The watermark has reached `fired`: every boundary up to it has passed.
        through = max(closed_state.read() or 0, Timestamp.of(fired).micros // 1000 + 1)
        closed_state.write(through)
        windows = windows_state.read() or {}
        for key in sorted(windows):
            start_ms, end_ms = key
            entry = windows[key]
            if not entry[2] and end_ms <= through:
                entry[2] = True
                final = self._lateness_ms == 0
                yield self._pane(start_ms, end_ms, entry, "ON_TIME", final)
                if final:
                    del windows[key]
                    continue
            if entry[2] and end_ms + self._lateness_ms <= through:
                # Expiry closes the window with a final pane (LATE: after ON_TIME).
                yield self._pane(start_ms, end_ms, entry, "LATE", True)
                del windows[key]
        windows_state.write(windows)
        targets = [end if not e[2] else end + self._lateness_ms for (_, end), e in windows.items()]
        if targets:
            tick.set(_at_ms(min(targets)))
            next_tick.write(min(targets))
        else:
            next_tick.clear()

    def _pane(self, start_ms, end_ms, entry, timing, is_final):
        pane_index = entry[3]
        entry[3] += 1
        entry[1] = False
        PANES.labels(self._kind, timing).inc()
        return WindowPane(self._kind, start_ms, end_ms, timing, pane_index, is_final,
                          int(time.time() * 1000), self._combine.extract_output(entry[0]))


class CountMentions(beam.PTransform):
    """``ArticleEntities`` (timestamped by publication) -> outputs ``panes``
    (``WindowPane``) and ``too_late`` (dicts: kind, article_id, window, late_by_at_least_ms).

    Args:
      window_seconds: size of the fixed event-time windows (default 3600).
      early_firing_seconds: processing-time delay between panes while data
        flows; ``None`` for no early or late panes (batch runs).
      allowed_lateness_seconds: how long after the end of a window late
        articles still update it (default 0: the ON_TIME pane is final).

    Example::

        counted = found | 'CountMentions' >> CountMentions(window_seconds=3600)
        counted.panes, counted.too_late
    """

    def __init__(self, *, window_seconds=3600, early_firing_seconds=5.0,
                 allowed_lateness_seconds=0):
        super().__init__()
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
        if allowed_lateness_seconds < 0:
            raise ValueError(f"allowed_lateness_seconds must be >= 0, got {allowed_lateness_seconds}")
        if early_firing_seconds is not None and early_firing_seconds <= 0:
            raise ValueError(f"early_firing_seconds must be > 0 or None, got {early_firing_seconds}")
        self._window_seconds = window_seconds
        self._early = early_firing_seconds
        self._lateness = allowed_lateness_seconds

    def expand(self, found):
        size_ms = self._window_seconds * 1000

        def assign(article):
            start = article.published_at_ms - article.published_at_ms % size_ms
            return (_ALL, (start, start + size_ms, article.article_id, tally_article(article)))

        return (found
                | "TallyInWindow" >> beam.Map(assign)
                | "EmitPanes" >> beam.ParDo(
                    _EmitPanesFn(ENTITY_COUNTS, self._early, self._lateness))
                .with_outputs(TOO_LATE_TAG, main="panes"))
