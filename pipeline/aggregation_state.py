"""The aggregation's state under its one key, and where it is kept.

``AggregationState`` is everything the pane DoFn keeps: the ``WindowBook``,
the ``SourceLedger`` of settled messages, the outputs emitted since the last
checkpoint, and the bookkeeping of its timers (``Timers``).

``StateStore`` loads and stores it for one bundle, either in the runner's
state (a pickled cell plus a small version cell) or, with
``state_in_process``, only in this process (the runner's state then holds
just the version): a ``LiveCopy`` shared by the step's DoFn instances of the
process through Beam's ``Shared``. Why each piece is there is told once in
docs/runner-notes.md, under the id each line cites.
"""
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Optional

from apache_beam.runners.worker.statecache import CacheAware
from apache_beam.utils.shared import Shared

from pipeline.ledger import SourceLedger
from pipeline.window_book import WindowBook

__all__ = ["AggregationState", "Timers", "LiveCopy", "StateStore", "close_action",
           "CLOSE_GRACE_SECONDS", "CLOSE_RETRIES", "GAP_RETRIES"]

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


class LiveCopy:
    """The state as this process last stored it, one bundle at a time.

    ``version`` is what the runner's version cell holds when ``state`` is
    current; ``started`` is set once the step's first bundle in this process
    has looked for a checkpoint."""

    def __init__(self):
        self.lock = threading.Lock()
        self.version = 0
        self.state = None
        self.started = False


class StateStore:
    """Load and store ``AggregationState`` for a bundle (see module docstring).

    Picklable: the launcher builds it, each DoFn copy calls ``setup`` in its
    worker. The launcher's own copy holds the ``LiveCopy`` too, so that the
    SDK's teardown of idle DoFns never drops it (SDK-2)."""

    def __init__(self, *, state_in_process: bool):
        self.state_in_process = state_in_process
        self._shared = Shared()
        self._live = self._shared.acquire(LiveCopy)

    def __getstate__(self):
        return {"state_in_process": self.state_in_process, "_shared": self._shared}

    def __setstate__(self, saved):
        self.__dict__.update(saved)
        self._live = self._shared.acquire(LiveCopy)

    @property
    def live(self) -> LiveCopy:
        return self._live

    @contextlib.contextmanager
    def bundle(self):
        """One bundle at a time works on the state in this process (PRISM-3)."""
        with self._live.lock:
            yield

    def load(self, state_cell, version_cell, new_state) -> AggregationState:
        """The current state: the live copy when it is as new as the runner's
        (PRISM-3, PRISM-4), else the runner's cell, else ``new_state()``.
        Taken out of the live copy while in use: a bundle that fails half-way
        leaves none behind (PRISM-9)."""
        live, version = self._live, version_cell.read() or 0
        state, live.state = live.state, None
        if state is None and version and self.state_in_process:
            msg = ("the aggregation's in-process state is gone (a failed bundle, or another "
                   "worker process): with state_in_process=True a runner must fail the job "
                   "instead; restart it to resume from the last checkpoint")
            raise RuntimeError(msg)
        if state is None or live.version < version:
            state = state_cell.read() or new_state()
            live.version = version
        return state

    def store(self, state, state_cell, version_cell):
        if not self.state_in_process:
            state_cell.write(state)
        self._live.version += 1
        version_cell.write(self._live.version)
        self._live.state = state

    def drop(self):
        """After a failed bundle the runner tears the DoFn down: forget the copy
        unless it is the only one (PRISM-9)."""
        if not self.state_in_process:
            self._live.state = None
