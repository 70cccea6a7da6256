"""The aggregation's state under its one key, and where it is kept.

``AggregationState`` is everything the pane DoFn keeps: the ``WindowBook``,
the ``StoryIndex`` of recent articles (near-duplicate stories), the
``SourceLedger`` of settled messages, the outputs emitted since the last
checkpoint, and the bookkeeping of its timers (``Timers``).

``StateStore`` loads and stores it for one bundle, either in the runner's
state or, with ``state_in_process``, only in this process (the runner's
state then holds just the version): a ``LiveCopy`` shared by the step's DoFn
instances of the process through Beam's ``Shared``. In the runner's state it
is laid out by ``RunnerLayout`` over a fixed set of cells (``Cells``): a
small header (everything but the buckets, the story index's entries and
the pending outputs), the pending outputs as a bag (a bundle appends only
what it emitted), the story index's entries as a bag (a bundle appends the
articles it indexed; rewritten when most of it is forgotten), the running
family's bucket, and ``SHARDS`` cells holding the other families' buckets
by bucket start; a bundle writes only the cells whose buckets changed, and
after a load from the runner a shard cell is read only when a bucket in it
is touched (``LazyBuckets``). Every value is pickled when it is written
(``_Frozen``, SDK-3). Why: docs/architecture.md
"Runner state". Why each other piece is there is told once in
docs/runner-notes.md, under the id each line cites.
"""
import contextlib
import dataclasses
import pickle
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from apache_beam.runners.worker.statecache import CacheAware
from apache_beam.utils.shared import Shared

from pipeline.ledger import SourceLedger
from pipeline.stories import StoryIndex
from pipeline.surges import SurgeDetector
from pipeline.window_book import WindowBook
from pipeline.windows import RUNNING

__all__ = ["AggregationState", "Timers", "LiveCopy", "StateStore", "close_action", "Cells",
           "RunnerLayout", "LazyBuckets", "shard_of", "SHARDS", "CLOSE_GRACE_SECONDS",
           "CLOSE_RETRIES", "GAP_RETRIES"]

SHARDS = 4  # runner-state cells for the tumbling and sliding buckets (docs/architecture.md)

CLOSE_GRACE_SECONDS = 1.0  # streaming: wall-clock wait before an unseen boundary closes
CLOSE_RETRIES = 3  # bounded runs: tick firings a close waits for
GAP_RETRIES = 10_000  # ... while messages read earlier are still on their way


@dataclass
class Timers:
    """Which timers are set, and what a deferred close had reached (reset on restore)."""
    next_tick: Optional[int] = None  # ms: the boundary the tick timer is set for
    firing: bool = False             # the EARLY flush timer is set
    save: bool = False               # the checkpoint timer is set
    close: bool = False              # the close timer is set (a deferred tick)
    deferred_through: int = 0        # ms: the boundary that deferred tick had reached
    close_retries: int = 0           # tick firings that deferred the same close (bounded)


@dataclass
class AggregationState(CacheAware):
    """Everything under the aggregation's key. Tells Beam's state cache a
    rough weight instead of letting it walk every window (SDK-1)."""
    book: WindowBook
    ledger: SourceLedger = field(default_factory=SourceLedger)
    pending: dict = field(default_factory=dict)  # outputs since the last checkpoint
    timers: Timers = field(default_factory=Timers)
    complete: bool = False  # every window closed at the end of a bounded input
    stories: Optional[StoryIndex] = None  # near-duplicate stories; None: off
    surges: Optional[SurgeDetector] = None  # baselines of the tracked subjects; None: off

    def get_referents_for_cache(self):
        return []

    def __sizeof__(self):
        return 4096 * (1 + len(self.book))


def close_action(state: AggregationState, through: int, streaming: bool) -> str:
    """What a tick that reached ``through`` does: ``close``, ``defer`` (streaming:
    wait CLOSE_GRACE_SECONDS of wall clock) or ``retry`` (bounded: fire again).
    A boundary no counted article has passed, or a gap in the ledger, waits
    (PRISM-7)."""
    newest = state.book.newest_ms
    unseen = newest is None or newest < through - 1
    gaps = state.ledger.has_gaps()
    if (unseen or gaps) and streaming:
        return "defer"
    retries = state.timers.close_retries
    if (gaps and retries < GAP_RETRIES) or (unseen and retries < CLOSE_RETRIES):
        return "retry"
    return "close"

class Cells(NamedTuple):
    """The pane DoFn's state cells for one call (declared in pipeline/aggregate.py):
    ``version`` (an int), ``header``, ``pending`` (a bag), ``running``,
    ``shards`` (``SHARDS`` cells) and ``stories`` (a bag)."""
    version: object
    header: object
    pending: object
    running: object
    shards: tuple
    stories: object


def shard_of(family: str, bucket_ms: int, period_ms: Optional[int]):
    """Which cell holds a bucket: ``"running"``, or the index of a shard cell
    (consecutive periods go to consecutive shards; the tumbling and sliding
    buckets of one hour share a shard when their periods are equal)."""
    return "running" if family == RUNNING else (bucket_ms // period_ms) % SHARDS


STORIES_SLACK = 256  # story entries the bag may hold beyond twice the index before a rewrite


class _Frozen(CacheAware):
    """A cell's value, pickled before anything can change it: the SDK encodes
    a write only at the bundle's commit, after the next bundle may have
    changed the live objects (SDK-3). Pickled by ``freeze()``, which
    ``StateStore.bundle`` calls when another bundle takes the state, or at
    the commit (under the state's lock); a value a later call of the same
    bundle overwrites is never pickled. Its weight for Beam's state cache is
    rough (SDK-1)."""

    def __init__(self, value, live=None, slot=None):
        """``live``: the ``LiveCopy`` whose objects ``value`` shares (None: an
        immutable value); ``slot``: the cell it is written to (a later write
        there replaces it)."""
        self._value, self._data, self._live = value, None, live
        if live is not None:
            live.unfrozen[id(self) if slot is None else slot] = self

    def freeze(self) -> bytes:
        if self._data is None:
            self._data = pickle.dumps(self._value, pickle.HIGHEST_PROTOCOL)
            self._value = None
        return self._data

    def _frozen(self) -> bytes:
        if self._live is None:
            return self.freeze()
        with self._live.lock:
            return self.freeze()

    @property
    def value(self):
        return pickle.loads(self._frozen())

    def __getstate__(self):
        return {"_data": self._frozen()}

    def __setstate__(self, saved):
        self._value, self._data, self._live = None, saved["_data"], None

    def get_referents_for_cache(self):
        return []

    def __sizeof__(self):
        return 4096 if self._data is None else 64 + len(self._data)


class _ShardReader:
    """Decodes each bucket cell at most once per load; ``cells`` is the
    current bundle's (rebound at each load)."""

    def __init__(self, cells):
        self.cells, self.read_cells, self._values = cells, [], {}

    def __call__(self, shard) -> dict:
        if shard not in self._values:
            cell = self.cells.running if shard == "running" else self.cells.shards[shard]
            saved = cell.read()
            self.read_cells.append(shard)
            self._values[shard] = {} if saved is None else saved.value
        return self._values[shard]


class LazyBuckets(MutableMapping):
    """One family's buckets as the header lists them, each shard cell read
    when one of its buckets is first touched (read, added or removed)."""

    def __init__(self, family, period_ms, keys, read_shard):
        self._family, self._period, self._keys = family, period_ms, set(keys)
        self._read_shard, self._shards_read, self.loaded = read_shard, set(), {}

    def _shard(self, b):
        return shard_of(self._family, b, self._period)

    def _ensure(self, b):
        shard = self._shard(b)
        if shard not in self._shards_read:
            self._shards_read.add(shard)
            self.loaded.update({bb: bucket for (fam, bb), bucket in self._read_shard(shard).items()
                                if fam == self._family})

    def __getitem__(self, b):
        if b not in self._keys:
            raise KeyError(b)
        self._ensure(b)
        return self.loaded[b]

    def __setitem__(self, b, bucket):
        self._ensure(b)
        self._keys.add(b)
        self.loaded[b] = bucket

    def __delitem__(self, b):
        if b not in self._keys:
            raise KeyError(b)
        self._ensure(b)
        self._keys.discard(b)
        self.loaded.pop(b, None)

    def __contains__(self, b):
        return b in self._keys

    def __iter__(self):
        return iter(sorted(self._keys))

    def __len__(self):
        return len(self._keys)

    def __reduce__(self):  # a checkpoint: every bucket, read now
        return dict, (dict(self.items()),)


@dataclass
class _Written:
    """What ``RunnerLayout`` last wrote (or read) for ``state``: the book's
    sequence number then, each family's bucket starts, and the pending outputs."""
    state: object
    seq: int
    keys: dict
    pending: dict
    pending_refs: dict
    reader: Optional[_ShardReader] = None
    stories: Optional["_StoriesWritten"] = None


class _StoriesWritten(NamedTuple):
    """The story index as last written: which one, its ``inserted`` count then,
    and how many entries the bag holds."""
    index: object
    inserted: int
    items: int


class RunnerLayout:
    """``AggregationState`` over ``Cells`` (module docstring; docs/architecture.md
    "Runner state"). ``written`` is the bookkeeping of the last read or
    write, kept on the ``LiveCopy``; None: write every cell."""

    def __init__(self, book_settings):
        self._book_settings = book_settings

    def read(self, cells: Cells):
        """``(state, written)`` from the cells, or None when they are empty: the
        header and the pending outputs now, bucket cells when touched."""
        header = cells.header.read()
        if header is None:
            return None
        saved, reader = header.value, _ShardReader(cells)
        snapshot = saved.book
        families = {name: (spec, LazyBuckets(name, spec.period_ms, keys, reader), windows)
                    for name, (spec, keys, windows) in snapshot["families"].items()}
        book = WindowBook.restore({**snapshot, "families": families}, **self._book_settings)
        pending = dict(item.value for item in cells.pending.read())
        stories, stories_written = saved.stories, None
        if stories is not None:
            entries = [item.value for item in cells.stories.read()]
            stories = stories.with_entries(entries)
            stories_written = _StoriesWritten(stories, stories.inserted, len(entries))
        state = dataclasses.replace(saved, book=book, pending=pending, stories=stories)
        keys = {name: set(keys) for name, (_, keys, _) in snapshot["families"].items()}
        return state, _Written(state, snapshot["seq"], keys, pending, dict(pending), reader,
                               stories_written)

    def write(self, state, cells: Cells, written: Optional[_Written], live) -> _Written:
        """Write the header, the new pending outputs and the bucket cells that
        changed since ``written``; return the new bookkeeping. ``live``: the
        ``LiveCopy`` whose objects the header and bucket values share."""
        if written is not None and written.state is not state:
            written = None
        snapshot = state.book.snapshot()
        keys = {name: set(buckets) for name, (_, buckets, _) in snapshot["families"].items()}
        header_book = {**snapshot, "families": {
            name: (spec, sorted(keys[name]), windows)
            for name, (spec, _, windows) in snapshot["families"].items()}}
        stories = None if state.stories is None else state.stories.without_entries()
        header = dataclasses.replace(state, book=header_book, pending={}, stories=stories)
        cells.header.write(_Frozen(header, live, "header"))
        self._write_pending(state.pending, cells.pending, written)
        self._write_buckets(snapshot["families"], keys, cells, written, live)
        return _Written(state, snapshot["seq"], keys, state.pending, dict(state.pending),
                        None if written is None else written.reader,
                        self._write_stories(state.stories, cells.stories,
                                            None if written is None else written.stories))

    @staticmethod
    def _write_stories(index, bag, written):
        """Append the articles indexed since ``written``; rewrite the bag when
        it holds more than twice what the index does (plus STORIES_SLACK)."""
        if index is None:
            return None
        held = len(index.entries)
        if written is None or written.index is not index or written.items > 2 * held + STORIES_SLACK:
            bag.clear()
            new, items = index.recent(held), 0
        else:
            new, items = index.recent(index.inserted - written.inserted), written.items
        for item in new:
            bag.add(_Frozen(item))
        return _StoriesWritten(index, index.inserted, items + len(new))

    @staticmethod
    def _write_pending(pending, bag, written):
        if written is None or written.pending is not pending:  # a checkpoint emptied it
            bag.clear()
            new = pending.items()
        else:
            refs = written.pending_refs
            new = [(k, v) for k, v in pending.items() if refs.get(k) is not v]
        for item in new:
            bag.add(_Frozen(item))

    @staticmethod
    def _write_buckets(families, keys, cells, written, live):
        every = ["running", *range(SHARDS)]
        dirty = set(every) if written is None else set()
        if written is not None:  # else every cell is written
            for name, (spec, buckets, _) in families.items():
                shard = lambda b: shard_of(name, b, spec.period_ms)  # noqa: E731
                dirty.update(shard(b) for b in keys[name] ^ written.keys.get(name, set()))
                held = buckets.loaded if isinstance(buckets, LazyBuckets) else buckets
                dirty.update(shard(b) for b, bucket in held.items()
                             if bucket.changed > written.seq)
        values = {d: {} for d in dirty}
        for name, (spec, buckets, _) in families.items():
            for b in keys[name]:
                d = shard_of(name, b, spec.period_ms)
                if d in values:
                    values[d][(name, b)] = buckets[b]
        for d in sorted(dirty, key=str):
            cell = cells.running if d == "running" else cells.shards[d]
            if values[d]:
                cell.write(_Frozen(values[d], live, d))
            else:
                cell.clear()


class LiveCopy:
    """The state as this process last stored it, one bundle at a time.

    ``version`` is what the runner's version cell holds when ``state`` is
    current; ``started`` is set once the step's first bundle in this process
    has looked for a checkpoint; ``written`` is ``RunnerLayout``'s
    bookkeeping of what the runner's cells hold."""

    def __init__(self):
        self.lock = threading.RLock()  # RLock: a commit in a call's thread freezes under it
        self.version = 0
        self.state = None
        self.started = False
        self.written = None
        self.unfrozen = {}  # slot -> the _Frozen written there and not pickled yet
        self.owner = None   # the bundle that stored last


class StateStore:
    """Load and store ``AggregationState`` for a bundle (see module docstring).

    Picklable: the launcher builds it, each DoFn copy calls ``setup`` in its
    worker. The launcher's own copy holds the ``LiveCopy`` too, so that the
    SDK's teardown of idle DoFns never drops it (SDK-2). ``book_settings``:
    the ``WindowBook``'s, to rebuild it from the runner's cells."""

    def __init__(self, *, state_in_process: bool, book_settings: dict):
        self.state_in_process = state_in_process
        self._layout = RunnerLayout(dict(book_settings))
        self._shared = Shared()
        self._live = self._shared.acquire(LiveCopy)

    def __getstate__(self):
        return {"state_in_process": self.state_in_process, "_layout": self._layout,
                "_shared": self._shared}

    def __setstate__(self, saved):
        self.__dict__.update(saved)
        self._live = self._shared.acquire(LiveCopy)

    @property
    def live(self) -> LiveCopy:
        return self._live

    @contextlib.contextmanager
    def bundle(self, token=None):
        """One call at a time works on the state in this process (PRISM-3).
        ``token``: the DoFn's current bundle; when another bundle stored last,
        what it wrote is pickled first, before this one changes the objects
        (SDK-3)."""
        live = self._live
        with live.lock:
            if token is not live.owner:
                for frozen in live.unfrozen.values():
                    frozen.freeze()
                live.unfrozen.clear()
                live.owner = token
            yield

    def load(self, cells: Cells, new_state) -> AggregationState:
        """The current state: the live copy when it is as new as the runner's
        (PRISM-3, PRISM-4), else the runner's cells, else ``new_state()``.
        Taken out of the live copy while in use: a bundle that fails half-way
        leaves none behind (PRISM-9)."""
        live, version = self._live, cells.version.read() or 0
        state, live.state = live.state, None
        if state is None and version and self.state_in_process:
            msg = ("the aggregation's in-process state is gone (a failed bundle, or another "
                   "worker process): with state_in_process=True a runner must fail the job "
                   "instead; restart it to resume from the last checkpoint")
            raise RuntimeError(msg)
        if state is None or live.version < version:
            read = None if self.state_in_process else self._layout.read(cells)
            state, live.written = read if read is not None else (new_state(), None)
            live.version = version
        elif live.written is not None and live.written.reader is not None:
            live.written.reader.cells = cells  # bucket cells not read yet: this bundle's
        return state

    def store(self, state, cells: Cells):
        if not self.state_in_process:
            self._live.written = self._layout.write(state, cells, self._live.written, self._live)
        self._live.version += 1
        cells.version.write(self._live.version)
        self._live.state = state

    def drop(self):
        """After a failed bundle the runner tears the DoFn down: forget the copy
        unless it is the only one (PRISM-9)."""
        if not self.state_in_process:
            self._live.state = self._live.written = None
