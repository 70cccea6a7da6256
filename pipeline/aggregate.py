"""Stage 4: count entity mentions per event-time window, pane by pane.

Articles are assigned to fixed event-time windows by publication time. One
stateful DoFn per window keeps the running tally (``_EntityTallyFn``
accumulators in a combining state) and emits ``WindowPane`` records:

- EARLY panes on a processing-time cadence (``early_firing_seconds``) while
  new articles arrive before the window closes (streaming only);
- the ON_TIME pane when the watermark passes the end of the window;
- LATE panes for articles that arrive after that but within
  ``allowed_lateness_seconds``, on the same cadence, the last one final.

Panes accumulate: every pane holds the window's full counts so far, so a
reader needs only the latest pane of a window. ``is_final`` marks the pane
after which the window's counts never change.

Why a stateful DoFn rather than ``WindowInto(trigger=...)``: Prism 2.75
panics on ``AfterProcessingTime`` early firings when a window expires with a
firing pending (engine/elementmanager.go, buildProcessingTimeBundle), and
the pane rules here are then identical on every runner.
"""
import time

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms import userstate, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from prometheus_client import Counter

from pipeline.records import WindowPane

__all__ = ["CountMentions", "tally_article", "EntityTallyFn", "ENTITY_COUNTS"]

ENTITY_COUNTS = "entity_counts"
_ALL = "all"  # one key: a window's whole table is emitted as one pane

PANES = Counter("entitystream_panes_emitted",
                "Window panes emitted, by aggregate kind and timing.",
                ["kind", "timing"])


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


def _ms(ts) -> int:
    return int(Timestamp.of(ts).micros // 1000)


class _EmitPanesFn(beam.DoFn):
    """(key, tally) per window -> WindowPane, with the pane rules above."""

    COUNTS = userstate.CombiningValueStateSpec("counts", coders.PickleCoder(), EntityTallyFn())
    # Articles added since the last pane, ON_TIME fired, next pane index.
    DIRTY = userstate.ReadModifyWriteStateSpec("dirty", coders.BooleanCoder())
    CLOSED = userstate.ReadModifyWriteStateSpec("on_time_fired", coders.BooleanCoder())
    INDEX = userstate.ReadModifyWriteStateSpec("pane_index", coders.VarIntCoder())
    PENDING = userstate.ReadModifyWriteStateSpec("firing_pending", coders.BooleanCoder())
    FIRING = userstate.TimerSpec("firing", TimeDomain.REAL_TIME)
    END_OF_WINDOW = userstate.TimerSpec("end_of_window", TimeDomain.WATERMARK)
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, kind, early_firing_seconds, allowed_lateness_seconds):
        self._kind = kind
        self._early = early_firing_seconds
        self._lateness = allowed_lateness_seconds

    def process(self, keyed_tally, win=beam.DoFn.WindowParam,
                counts=beam.DoFn.StateParam(COUNTS),
                dirty=beam.DoFn.StateParam(DIRTY),
                closed=beam.DoFn.StateParam(CLOSED),
                pending=beam.DoFn.StateParam(PENDING),
                firing=beam.DoFn.TimerParam(FIRING),
                end_of_window=beam.DoFn.TimerParam(END_OF_WINDOW),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        counts.add(keyed_tally[1])
        dirty.write(True)
        if not closed.read():
            end_of_window.set(win.max_timestamp())
            if self._lateness:
                expiry.set(win.max_timestamp() + Duration(seconds=self._lateness))
        if self._early is not None and not pending.read():
            firing.set(Timestamp.now() + Duration(seconds=self._early))
            pending.write(True)

    @userstate.on_timer(FIRING)
    def on_firing(self, win=beam.DoFn.WindowParam,
                  counts=beam.DoFn.StateParam(COUNTS),
                  dirty=beam.DoFn.StateParam(DIRTY),
                  closed=beam.DoFn.StateParam(CLOSED),
                  index=beam.DoFn.StateParam(INDEX),
                  pending=beam.DoFn.StateParam(PENDING)):
        pending.write(False)
        if dirty.read():
            timing = "LATE" if closed.read() else "EARLY"
            yield self._pane(win, counts, dirty, index, timing, is_final=False)

    @userstate.on_timer(END_OF_WINDOW)
    def on_end_of_window(self, win=beam.DoFn.WindowParam,
                         counts=beam.DoFn.StateParam(COUNTS),
                         dirty=beam.DoFn.StateParam(DIRTY),
                         closed=beam.DoFn.StateParam(CLOSED),
                         index=beam.DoFn.StateParam(INDEX),
                         pending=beam.DoFn.StateParam(PENDING),
                         firing=beam.DoFn.TimerParam(FIRING)):
        closed.write(True)
        final = not self._lateness
        yield self._pane(win, counts, dirty, index, "ON_TIME", is_final=final)
        if final:
            self._clear(counts, dirty, closed, index, pending, firing)

    @userstate.on_timer(EXPIRY)
    def on_expiry(self, win=beam.DoFn.WindowParam,
                  counts=beam.DoFn.StateParam(COUNTS),
                  dirty=beam.DoFn.StateParam(DIRTY),
                  closed=beam.DoFn.StateParam(CLOSED),
                  index=beam.DoFn.StateParam(INDEX),
                  pending=beam.DoFn.StateParam(PENDING),
                  firing=beam.DoFn.TimerParam(FIRING)):
        # The window is about to be garbage-collected: close it with a final
        # pane (LATE: it follows the ON_TIME pane), whether or not late data came.
        yield self._pane(win, counts, dirty, index, "LATE", is_final=True)
        self._clear(counts, dirty, closed, index, pending, firing)

    def _pane(self, win, counts, dirty, index, timing, is_final):
        pane_index = index.read() or 0
        index.write(pane_index + 1)
        dirty.write(False)
        PANES.labels(self._kind, timing).inc()
        return WindowPane(self._kind, _ms(win.start), _ms(win.end), timing,
                          pane_index, is_final, int(time.time() * 1000),
                          counts.read())

    @staticmethod
    def _clear(counts, dirty, closed, index, pending, firing):
        for state in (counts, dirty, closed, index, pending):
            state.clear()
        firing.clear()


class CountMentions(beam.PTransform):
    """``ArticleEntities`` (timestamped by publication) -> ``WindowPane``.

    Args:
      window_seconds: size of the fixed event-time windows (default 3600).
      early_firing_seconds: processing-time delay between panes while data
        flows; ``None`` for no early or late panes (batch runs).
      allowed_lateness_seconds: how long after the end of a window late
        articles still update it (default 0: the ON_TIME pane is final).

    Example::

        panes = found | 'CountMentions' >> CountMentions(window_seconds=3600)
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
        return (found
                | "WindowByPublication" >> beam.WindowInto(
                    window.FixedWindows(self._window_seconds),
                    allowed_lateness=Duration(seconds=self._lateness))
                | "TallyArticle" >> beam.Map(lambda a: (_ALL, tally_article(a)))
                | "EmitPanes" >> beam.ParDo(
                    _EmitPanesFn(ENTITY_COUNTS, self._early, self._lateness)))
