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
article), and a window keeps its ``top_k_pairs`` (default 1,000) most frequent
pairs: when it holds twice that many, the least frequent are dropped (so
counts of pairs outside the top k are lower bounds). Tracked tuples are
always counted exactly. Mention counts keep one entry per distinct entity.

How: one stateful DoFn, under one key, in the global window, keeps every
open window and decides itself when a window is complete, late or expired.
An event-time ``tick`` timer is always set to the next window boundary and
``closed_through_ms`` records the latest boundary the watermark has passed.
Why not ``WindowInto(trigger=...)``: Prism 2.75 panics on
``AfterProcessingTime`` early firings when a window expires with a firing
pending (engine/elementmanager.go, buildProcessingTimeBundle). Why not
window-scoped state: Prism 2.75 drops a stateful DoFn's window state at the
end of the window despite allowed lateness, and neither Prism nor the Python
DirectRunner drops input for expired windows. Kept here, the rules are the
same on every runner.
"""
import contextlib
import logging
import math
import re
import threading
import time
import uuid
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.runners.worker.statecache import CacheAware
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from prometheus_client import Counter

from pipeline.cooccurrence import DEFAULT_TUPLES, article_cooccurrence
from pipeline.ledger import SourceLedger, SourcePosition
from pipeline.records import WindowPane
from pipeline.windows import RUNNING, RUNNING_END_MS, SLIDING, TUMBLING, WindowSpec, assign

__all__ = ["AggregateEntities", "tally_article", "EntityTallyFn",
           "CooccurrenceTally", "KINDS", "ENTITY_COUNTS", "COOCCURRENCE", "LATE_ARTICLES"]

ENTITY_COUNTS = "entity_counts"
COOCCURRENCE = "cooccurrence"
LATE_ARTICLES = "late_articles"
# Per window family: (mention kind, co-occurrence kind or None).
KINDS = {TUMBLING: (ENTITY_COUNTS, COOCCURRENCE),
         SLIDING: ("sliding_entity_counts", None),
         RUNNING: ("running_entity_counts", "running_cooccurrence")}
FAMILY_OF_KIND = {kind: family for family, kinds in KINDS.items() for kind in kinds if kind}
_ALL = "all"  # one key: every open window in one state cell
CLOSE_GRACE_SECONDS = 1.0  # see _EmitPanesFn.on_tick
CLOSE_RETRIES = 3  # bounded runs: tick firings a close waits for (see on_tick)
GAP_RETRIES = 10_000  # ... while messages read earlier are still on their way
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


class CooccurrenceTally:
    """Accumulates ``ArticleCooccurrence``: ``[pairs, tuples]``, each
    ``{(scope, ids): [count, articles]}``; pairs pruned to the top k."""

    def __init__(self, top_k):
        self.top_k = top_k

    def create(self):
        return [{}, {}]

    def add(self, acc, cooc):
        for table, found in ((acc[0], cooc.pairs), (acc[1], cooc.tuples)):
            for key, n in found.items():
                entry = table.get(key)
                if entry is None:
                    table[key] = [n, 1]
                else:
                    entry[0] += n
                    entry[1] += 1
        if len(acc[0]) > 2 * self.top_k:
            keep = sorted(acc[0].items(), key=lambda kv: (-kv[1][0], kv[0]))[:self.top_k]
            acc[0] = dict(keep)
        return acc

    def extract(self, acc):
        rows = []
        for tracked, table in ((True, acc[1]), (False, acc[0])):
            ranked = sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
            if not tracked:
                ranked = ranked[:self.top_k]
            for (scope, ids), (count, articles) in ranked:
                rows.append({"scope": scope, "entities": list(ids), "count": count,
                             "articles": articles, "tracked": tracked})
        return tuple(rows)


def _at_ms(ms: int) -> Timestamp:
    """The last millisecond before ``ms`` (timers have millisecond precision):
    a window [s, e) is complete when the watermark reaches e - 1 ms."""
    return Timestamp(micros=(ms - 1) * 1000)


class _OpenWindows(dict, CacheAware):
    """The open windows, as kept in state: a dict that tells Beam's state cache
    its weight without a deep walk. The SDK sizes every cached state value with
    objsize at each commit, which for this dict (every open window's tallies)
    cost more than NER itself (measured: 23 s of a 45 s run on 300 articles)."""

    _BYTES_PER_ENTRY = 4096  # a rough weight: an open window with its tallies
    # Beside the windows (set on first use; pickled with the dict):
    ledger = None   # SourceLedger: the source messages settled so far
    closed_through = 0  # ms: every window boundary up to here has passed (tick timers)
    next_tick = None    # ms: the boundary the tick timer is set for
    newest_ms = None    # ms: the newest publication time counted (at most the wall clock)
    complete = False    # every window closed at the end of a bounded input
    # Timer bookkeeping, here rather than in state cells for the same reason
    # as the windows (see _load); reset when restored into a new job.
    last_emit_ms = 0        # when EARLY panes last went out
    firing_pending = False  # the flush timer is set
    save_pending = False    # the checkpoint timer is set
    close_pending = False   # the close timer is set (a tick deferred, see on_tick)
    deferred_through = 0    # ms: the boundary that deferred tick had reached
    close_retries = 0       # tick firings that deferred the same close (bounded runs)
    pending = None  # outputs emitted since the last checkpoint (re-emitted on restore):
    #                 {(kind, start, end): WindowPane, ("late", id): late-article dict}

    def get_referents_for_cache(self):
        return []

    def __sizeof__(self):
        return dict.__sizeof__(self) + self._BYTES_PER_ENTRY * len(self)


# The open windows of each step, as last written by a committed or running
# bundle in this process: {step token: (version, windows)}. See _load.
_LIVE = {}
_STARTED = set()  # step tokens whose first bundle in this process has run (see _restore)
_LOCKS = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _exclusive(token):
    """One bundle at a time works on a step's windows in this process (see _load)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(token, threading.Lock())
    with lock:
        yield


# Window state entry fields.
_MENTIONS, _COOC, _DIRTY, _ON_TIME_FIRED, _PANE, _IDS = range(6)


class _EmitPanesFn(beam.DoFn):
    """(key, _Input) -> WindowPane, plus ``late_articles`` dicts. See the
    module docstring, and "Checkpoints" there for ``checkpoint``."""

    # {(family, start_ms, end_ms): [mentions acc, cooc acc|None, dirty,
    #                               on_time_fired, next pane index, article ids|None]}
    WINDOWS = userstate.ReadModifyWriteStateSpec("windows", coders.PickleCoder())
    VERSION = userstate.ReadModifyWriteStateSpec("windows_version", coders.VarIntCoder())
    FIRING = userstate.TimerSpec("firing", TimeDomain.REAL_TIME)
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)
    SAVE = userstate.TimerSpec("checkpoint", TimeDomain.REAL_TIME)
    CLOSE = userstate.TimerSpec("close", TimeDomain.REAL_TIME)

    def __init__(self, specs, early_firing_seconds, allowed_lateness_seconds, top_k_pairs,
                 checkpoint=None, checkpoint_interval_seconds=5.0, on_checkpoint=None,
                 state_in_process=False):
        # Identifies this step across the worker's DoFn instances (see _load).
        self._step_token = uuid.uuid4().hex
        self._specs = tuple(specs)
        # Every window boundary is a multiple of this (see _tick_at).
        periods = [s.period_ms for s in self._specs if s.period_ms]
        self._grid_ms = math.gcd(*periods) if periods else None
        self._early = early_firing_seconds
        self._lateness_ms = int(allowed_lateness_seconds * 1000)
        self._mentions = EntityTallyFn()
        self._cooc = CooccurrenceTally(top_k_pairs)
        self._checkpoint = checkpoint
        self._checkpoint_interval = checkpoint_interval_seconds
        self._on_checkpoint = on_checkpoint
        self._last_checkpoint = 0.0
        # True: the open windows live only in this process (and its
        # checkpoints); the runner's state holds just their version. For
        # runners whose SDK worker is the launching process and on which a
        # failed bundle fails the job (Prism LOOPBACK, FnApiRunner): no bundle
        # then pickles every open window at its commit (see docs/performance.md).
        self._state_in_process = state_in_process

    def setup(self):
        self._last_checkpoint = time.monotonic()

    def teardown(self):
        # The runner discards a DoFn after a failed bundle (before any retry):
        # its in-process copy may hold that bundle's changes, so drop it;
        # unless it is the only copy (state_in_process: the SDK also tears
        # down idle DoFns, and a failed bundle fails the job there).
        if not self._state_in_process:
            _LIVE.pop(self._step_token, None)

    def _load(self, windows_state, version_state):
        """The open windows and their version.

        Runners without state cache tokens (Prism 2.75) make every bundle read
        (unpickle) the whole dict again. The version cell is tiny: when it
        matches the copy this process wrote last, that copy is the state and
        the big cell is not read. A bundle that failed after changing the copy
        never committed its version, so the next one finds a mismatch and
        reads the state again.

        Callers hold ``_exclusive``: Prism 2.75 runs bundles of the one key
        at the same time (timers beside elements), each with its own
        snapshot of the state; unserialised, the last to commit would undo
        the other's changes (seen: articles missing from the ledger)."""
        version = version_state.read() or 0
        # Taken out while in use: only _store puts it back, so a call that
        # fails half-way through changing it leaves no copy behind.
        live = _LIVE.pop(self._step_token, None)
        if live is None and version and self._state_in_process:
            msg = ("the aggregation's in-process state is gone (a failed bundle, or another "
                   "worker process): with state_in_process=True a runner must fail the job "
                   "instead; restart it to resume from the last checkpoint")
            raise RuntimeError(msg)
        if live is not None and live[0] >= version:
            # Newer than (or as new as) the state the runner handed this
            # bundle: Prism may hand a bundle an older snapshot of the key's
            # state while another bundle of the key has moved on.
            windows, version = live[1], live[0]
        else:
            windows = windows_state.read() or _OpenWindows()
        if windows.ledger is None:
            windows.ledger, windows.pending = SourceLedger(), {}
        return windows, version

    def _store(self, windows, windows_state, version_state, version):
        if not self._state_in_process:
            windows_state.write(windows)
        version_state.write(version + 1)
        _LIVE[self._step_token] = (version + 1, windows)

    def _target(self, key, entry):
        family, _, end_ms = key
        if entry[_ON_TIME_FIRED] and family != RUNNING:
            return end_ms + self._lateness_ms
        return end_ms

    def _tick_at(self, windows, earliest):
        """When the tick timer fires: at the ``earliest`` window target or, when
        counted articles are already past it (a replay, a catch-up), at the
        last window boundary at or before the newest of them, so that one
        firing closes every window up to there.

        Runners fire a key's timers in timestamp order with its elements: Prism
        2.75 runs the elements before a timer, the timer, then the elements
        after it, each as a bundle of its own (and its scheduler spins while a
        timer waits for the watermark). A replay whose articles cross a
        window boundary every few articles paid two bundles per boundary.
        Never earlier than the target: windows close at or after the
        watermark passes their end, as before; a live feed, whose newest
        article is in the current window, keeps a timer at its end."""
        newest = windows.newest_ms
        if newest is None or self._grid_ms is None or earliest >= newest:
            return earliest
        return max(earliest, newest - newest % self._grid_ms)

    def _set_tick(self, windows, tick):
        targets = [self._target(k, e) for k, e in windows.items()]
        windows.next_tick = self._tick_at(windows, min(targets)) if targets else None
        if targets:
            tick.set(_at_ms(windows.next_tick))

    # --- checkpoints -------------------------------------------------------

    def _restore(self, windows_state, version_state, tick):
        """First call of a job: start from the latest checkpoint, if any.

        Once per process and step: a later bundle may also find no state (Prism
        hands concurrent bundles old snapshots, see _load) and must not restore.

        Outputs emitted since the checkpoint before it may not have been
        written when the last run died: they are emitted again (same names,
        same content). Pane files the lost run wrote after the checkpoint are
        removed: this run writes its own."""
        snapshot = self._checkpoint.load()
        if snapshot is None:
            return
        windows = snapshot
        closed_through = windows.closed_through
        pending = windows.pending
        if windows.complete:
            # The last run read its input to the end and closed every window
            # (a bounded run): new input starts new windows, as it did before
            # checkpoints; what it counted stays skipped.
            _LOG.warning("the last run over %s finished its input; new windows from the "
                         "group's committed offsets %s", self._checkpoint.path,
                         windows.ledger.commit_offsets())
            ledger, windows = windows.ledger, _OpenWindows()
            windows.ledger, windows.pending = ledger, pending
            self._store(windows, windows_state, version_state, 0)
            yield from self._reemit(pending)
            return
        # A warning, so that it shows at the CLI's default level: rare and worth knowing.
        _LOG.warning("restored the aggregation checkpoint of %s: %d open windows, closed "
                     "through %d, next offsets %s", self._checkpoint.path, len(windows),
                     closed_through, windows.ledger.commit_offsets())

        def keep(kind, start_ms, end_ms, pane_index):
            family = FAMILY_OF_KIND.get(kind)
            if family is None:
                return True
            if family == RUNNING:
                start_ms, end_ms = 0, RUNNING_END_MS
            entry = windows.get((family, start_ms, end_ms))
            if entry is not None:
                return pane_index < entry[_PANE]
            # Not open at the checkpoint: closed before it (keep), or opened after it.
            lateness = 0 if family == RUNNING else self._lateness_ms
            return end_ms + lateness <= closed_through

        self._checkpoint.discard_panes(keep)
        # No timer of this job yet; the tick set below fires again for a deferred close.
        windows.firing_pending = windows.save_pending = windows.close_pending = False
        self._set_tick(windows, tick)
        self._store(windows, windows_state, version_state, 0)
        yield from self._reemit(pending)

    @staticmethod
    def _reemit(pending):
        for key, output in sorted(pending.items(), key=lambda kv: repr(kv[0])):
            if key[0] == LATE_ARTICLES:
                yield beam.pvalue.TaggedOutput(LATE_ARTICLES, output)
            else:
                yield output

    def _maybe_checkpoint(self, windows, save, due=False, wait=False):
        """Save a checkpoint when one is ``due`` (or the interval has passed),
        then commit the offsets it settles (``wait``: until committed); else
        make sure a timer will save one."""
        if self._checkpoint is None:
            return
        now = time.monotonic()
        if not due and now - self._last_checkpoint < self._checkpoint_interval:
            if self._early is not None and not windows.save_pending:
                save.set(Timestamp.now() + Duration(seconds=self._checkpoint_interval))
                windows.save_pending = True
            return
        try:
            self._checkpoint.save(windows)
        except OSError as exc:
            CHECKPOINT_FAILURES.inc()
            _LOG.error("could not write the aggregation checkpoint %s (%s); retrying in "
                       "%.0f s; offsets are not committed meanwhile", self._checkpoint.path,
                       exc, self._checkpoint_interval)
            self._last_checkpoint = now
            return
        self._last_checkpoint = now
        windows.pending = {}
        _LOG.debug("checkpoint saved: next offsets %s", windows.ledger.commit_offsets())
        if self._on_checkpoint is not None:
            self._on_checkpoint(windows.ledger.commit_offsets(), wait=wait)

    def _emit(self, windows, panes):
        """Yield ``panes``, remembering each as pending until the next checkpoint."""
        for pane in panes:
            windows.pending[(pane.kind, pane.window_start_ms, pane.window_end_ms)] = pane
            yield pane

    # --- elements and timers -------------------------------------------------

    def process(self, keyed, windows_state=beam.DoFn.StateParam(WINDOWS),
                version_state=beam.DoFn.StateParam(VERSION),
                firing=beam.DoFn.TimerParam(FIRING), tick=beam.DoFn.TimerParam(TICK),
                save=beam.DoFn.TimerParam(SAVE)):
        with _exclusive(self._step_token):
            item = keyed[1]
            if (self._checkpoint is not None and self._step_token not in _STARTED
                    and version_state.read() is None):
                yield from self._restore(windows_state, version_state, tick)
            _STARTED.add(self._step_token)
            windows, version = self._load(windows_state, version_state)
            if item.position is not None and windows.ledger.is_settled(item.position):
                SETTLED.labels("replayed").inc()  # counted before a restart
                self._store(windows, windows_state, version_state, version)
                return
            if item.position is not None:
                windows.ledger.settle(item.position)
            if item.article_id is None:
                SETTLED.labels("dead_letter").inc()
            else:
                yield from self._add(item, windows, firing, tick)
            self._store(windows, windows_state, version_state, version)
            self._maybe_checkpoint(windows, save)

    def _add(self, item, windows, firing, tick):
        closed_through = windows.closed_through
        article_id, published_ms = item.article_id, item.published_ms
        keys = [(spec.family, s, e) for spec in self._specs for s, e in assign(spec, published_ms)]
        open_keys, expired = [], []
        for key in keys:
            if key[0] != RUNNING and key[2] + self._lateness_ms <= closed_through:
                expired.append(key)
            else:
                open_keys.append(key)
        tumbling = next((k for k in open_keys if k[0] == TUMBLING), None)
        if tumbling is not None:
            seen = windows.get(tumbling)
            if seen is not None and article_id in seen[_IDS]:
                DUPLICATES.inc()
                SETTLED.labels("duplicate").inc()
                return
        SETTLED.labels("late" if expired else "aggregated").inc()
        AGGREGATED_LANGUAGES.labels(_language_label(item.language)).inc()
        if expired:
            LATE.inc()
            late = {
                "article_id": article_id, "published_at": published_ms,
                "expired_windows": len(expired), "counted_windows": len(open_keys),
                # A lower bound: a DoFn is not told the watermark, only that a
                # window boundary timer fired (closed_through_ms).
                "late_by_at_least_ms": closed_through - min(k[2] for k in expired)
                - self._lateness_ms,
                "detected_at": int(time.time() * 1000)}
            windows.pending[(LATE_ARTICLES, article_id)] = late
            yield beam.pvalue.TaggedOutput(LATE_ARTICLES, late)
        changed_target = None
        for key in open_keys:
            entry = windows.get(key)
            if entry is None:
                has_cooc = KINDS[key[0]][1] is not None
                entry = windows[key] = [
                    self._mentions.create_accumulator(),
                    self._cooc.create() if has_cooc else None, False, False, 0,
                    set() if key[0] == TUMBLING else None]
            entry[_MENTIONS] = self._mentions.add_input(entry[_MENTIONS], item.tally)
            if entry[_COOC] is not None:
                entry[_COOC] = self._cooc.add(entry[_COOC], item.cooc)
            if entry[_IDS] is not None:
                entry[_IDS].add(article_id)
            entry[_DIRTY] = True
            target = self._target(key, entry)
            changed_target = target if changed_target is None else min(changed_target, target)
        now_ms = int(time.time() * 1000)
        newest = min(published_ms, now_ms)  # a future article: the clock
        if windows.newest_ms is None or newest > windows.newest_ms:
            windows.newest_ms = newest
        current = windows.next_tick
        if changed_target is not None and (current is None or changed_target < current):
            # Only ever earlier here (a window that closes sooner); later, in
            # on_tick (_set_tick), after it fired: Prism 2.75 mishandles a
            # timer moved later while it waits (stale firings were seen).
            tick.set(_at_ms(changed_target))
            windows.next_tick = changed_target
        if open_keys and self._early is not None:
            # While input flows, panes go out at most every early_firing_seconds,
            # from here: runners may fire processing-time timers late (Prism 2.75
            # delays them by seconds while a source keeps it busy). The timer
            # only flushes what is left when the input stops.
            if now_ms - windows.last_emit_ms >= self._early * 1000:
                windows.last_emit_ms = now_ms
                yield from self._dirty_panes(windows)
            elif not windows.firing_pending:
                firing.set(Timestamp.now() + Duration(seconds=self._early))
                windows.firing_pending = True

    @userstate.on_timer(FIRING)
    def on_firing(self, windows_state=beam.DoFn.StateParam(WINDOWS),
                  version_state=beam.DoFn.StateParam(VERSION)):
        with _exclusive(self._step_token):
            windows, version = self._load(windows_state, version_state)
            windows.firing_pending = False
            windows.last_emit_ms = int(time.time() * 1000)
            panes = list(self._dirty_panes(windows))
            self._store(windows, windows_state, version_state, version)
            yield from panes

    @userstate.on_timer(SAVE)
    def on_save(self, windows_state=beam.DoFn.StateParam(WINDOWS),
                version_state=beam.DoFn.StateParam(VERSION),
                save=beam.DoFn.TimerParam(SAVE)):
        with _exclusive(self._step_token):
            windows, version = self._load(windows_state, version_state)
            windows.save_pending = False
            self._store(windows, windows_state, version_state, version)
            # The timer was set a checkpoint interval ago: save now.
            self._maybe_checkpoint(windows, save, due=True)

    def _dirty_panes(self, windows):
        """EARLY (or, after ON_TIME, LATE) panes of every window with news."""
        for key in sorted(windows):
            entry = windows[key]
            if entry[_DIRTY]:
                timing = "LATE" if entry[_ON_TIME_FIRED] else "EARLY"
                yield from self._emit(windows, self._panes(key, entry, timing, False))

    @userstate.on_timer(TICK)
    def on_tick(self, fired=beam.DoFn.TimestampParam,
                windows_state=beam.DoFn.StateParam(WINDOWS),
                version_state=beam.DoFn.StateParam(VERSION),
                tick=beam.DoFn.TimerParam(TICK), save=beam.DoFn.TimerParam(SAVE),
                close=beam.DoFn.TimerParam(CLOSE)):
        with _exclusive(self._step_token):
            # The watermark has reached `fired`: every boundary up to it has passed.
            windows, version = self._load(windows_state, version_state)
            through = max(windows.closed_through, Timestamp.of(fired).micros // 1000 + 1)
            unseen = windows.newest_ms is None or windows.newest_ms < through - 1
            gaps = windows.ledger is not None and windows.ledger.has_gaps()
            if (unseen or gaps) and self._early is not None:
                # No article at or past the boundary counted yet, or messages
                # read before others not here yet. Prism 2.75 can move the
                # watermark past a boundary while articles read before it are
                # still on their way here, even behind articles read after them
                # (the Flatten it runs itself in front of this stage neither
                # holds the watermark nor keeps the order of its bundles): seen
                # as whole reader calls counted late. Closing waits
                # CLOSE_GRACE_SECONDS of wall clock for them (again while a gap
                # stays open).
                windows.deferred_through = max(windows.deferred_through, through)
                self._arm_close(windows, close)
                self._store(windows, windows_state, version_state, version)
                return
            if ((gaps and windows.close_retries < GAP_RETRIES)
                    or (unseen and windows.close_retries < CLOSE_RETRIES)):
                # The same in a bounded run, which sets no processing-time
                # timers: the tick fires again at once (the watermark is past
                # it), after what reached the key meanwhile, up to
                # CLOSE_RETRIES times (the end of the input passes every
                # boundary, and no article will follow).
                windows.close_retries += 1
                tick.set(fired)
                self._store(windows, windows_state, version_state, version)
                return
            windows.close_retries = 0
            yield from self._close_through(windows, through, tick, save)
            self._store(windows, windows_state, version_state, version)

    @userstate.on_timer(CLOSE)
    def on_close(self, windows_state=beam.DoFn.StateParam(WINDOWS),
                 version_state=beam.DoFn.StateParam(VERSION),
                 tick=beam.DoFn.TimerParam(TICK), save=beam.DoFn.TimerParam(SAVE),
                 close=beam.DoFn.TimerParam(CLOSE)):
        with _exclusive(self._step_token):
            windows, version = self._load(windows_state, version_state)
            windows.close_pending = False
            if windows.ledger is not None and windows.ledger.has_gaps():
                self._arm_close(windows, close)  # wait again while the gap stays open
                self._store(windows, windows_state, version_state, version)
                return
            through = max(windows.closed_through, windows.deferred_through)
            yield from self._close_through(windows, through, tick, save)
            self._store(windows, windows_state, version_state, version)

    @staticmethod
    def _arm_close(windows, close):
        """Make sure the close timer fires CLOSE_GRACE_SECONDS from now (or sooner)."""
        if not windows.close_pending:
            close.set(Timestamp.now() + Duration(seconds=CLOSE_GRACE_SECONDS))
            windows.close_pending = True

    def _close_through(self, windows, through, tick, save):
        """Emit the ON_TIME and expiry panes of every boundary up to ``through``;
        re-arm the tick; checkpoint when every window has closed."""
        windows.closed_through = through
        had_windows = bool(windows)
        for key in sorted(windows):
            family, _, end_ms = key
            entry = windows[key]
            if not entry[_ON_TIME_FIRED] and end_ms <= through:
                entry[_ON_TIME_FIRED] = True
                final = self._lateness_ms == 0 or family == RUNNING
                yield from self._emit(windows, self._panes(key, entry, "ON_TIME", final))
                if final:
                    del windows[key]
                    continue
            if entry[_ON_TIME_FIRED] and end_ms + self._lateness_ms <= through:
                # Expiry closes the window with a final pane (LATE: after ON_TIME).
                yield from self._emit(windows, self._panes(key, entry, "LATE", True))
                del windows[key]
        self._set_tick(windows, tick)
        # Every window closed (the end of a bounded input): save now, and wait
        # for the offsets to be committed, before the pipeline can finish.
        closed_all = had_windows and not windows
        windows.complete = closed_all  # the end of a bounded input (see _restore)
        self._maybe_checkpoint(windows, save, due=closed_all, wait=closed_all)

    def _panes(self, key, entry, timing, is_final):
        family, start_ms, end_ms = key
        pane_index = entry[_PANE]
        entry[_PANE] += 1
        entry[_DIRTY] = False
        now = int(time.time() * 1000)
        mention_kind, cooc_kind = KINDS[family]
        PANES.labels(mention_kind, timing).inc()
        yield WindowPane(mention_kind, start_ms, end_ms, timing, pane_index, is_final, now,
                         self._mentions.extract_output(entry[_MENTIONS]))
        if cooc_kind is not None:
            PANES.labels(cooc_kind, timing).inc()
            yield WindowPane(cooc_kind, start_ms, end_ms, timing, pane_index, is_final, now,
                             self._cooc.extract(entry[_COOC]))


def _ordered(keyed, position, timestamp):
    """``keyed`` stamped with the reader's watermark when it read the record,
    if that is earlier than the element's own time.

    The pane DoFn counts articles by their publication time (``_Input``), not
    by the element's timestamp, which only orders a key's elements against its
    timers: a runner runs the elements and timers of a key in timestamp
    order, each timer in a bundle of its own between the elements before and
    after it (Prism 2.75). Stamped with event times, a replay whose articles
    cross a window boundary every few articles paid two bundles per boundary;
    stamped with the reader's watermark (which the runner's watermark has
    passed when they arrive), everything read by the time a window-closing
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
                                     article.position)), article.position, timestamp)


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
      top_k_pairs: pairs kept per window (default 1000).
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
                 on_checkpoint=None, state_in_process=False):
        super().__init__()
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
        self._checkpoint = (checkpoint, checkpoint_interval_seconds, on_checkpoint,
                            state_in_process)

    def expand(self, found):
        found, dead_letters = ((found["articles"], found.get("dead_letters"))
                               if isinstance(found, dict) else (found, None))
        tallied = found | "TallyArticle" >> beam.ParDo(
            _TallyArticleFn(self._max_entities, self._tuples))
        if dead_letters is not None:
            settled = dead_letters | "SettleDeadLetters" >> beam.ParDo(_DeadLetterInputFn())
            tallied = (tallied, settled) | "WithDeadLetters" >> beam.Flatten()
        return tallied | "EmitPanes" >> beam.ParDo(_EmitPanesFn(
            self._specs, self._early, self._lateness, self._top_k, *self._checkpoint)
        ).with_outputs(LATE_ARTICLES, main="panes")

