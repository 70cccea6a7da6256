"""Checkpoints of the aggregation: what they hold, when they are written, the
offset commit after each, and the restore of a new job.

A checkpoint holds the ``WindowBook`` snapshot, the ``StoryIndex`` (so that
a restarted job gives the same story ids), the ``SourceLedger``, the
outputs emitted since the previous checkpoint (``pending``: a restarted job
emits them again, same file names and content, since the lost run may not
have written them) and whether a bounded run had finished its input. The
``Checkpointer`` writes one through ``connectors.checkpoint_files.
CheckpointFiles`` at most every ``interval_seconds`` while the state changes
(or when ``due``), then hands the ledger's offsets to ``on_commit``. It never
reads a clock: the caller passes ``now_s`` (monotonic seconds).
"""
import logging

import apache_beam as beam

from pipeline.aggregation_state import AggregationState
from pipeline.stories import StoryIndex
from pipeline.surges import SurgeDetector
from pipeline.window_book import LATE_ARTICLES, WindowBook

__all__ = ["Checkpointer"]

_LOG = logging.getLogger(__name__)


class Checkpointer:
    """Args (keyword-only): ``files`` (``CheckpointFiles``), ``interval_seconds``,
    ``on_commit`` (called with ``({(topic, partition): offset}, wait=bool)``, or
    None), ``on_failure`` (called when a checkpoint cannot be written)."""

    def __init__(self, *, files, interval_seconds, on_commit=None, on_failure=None):
        self._files = files
        self._interval = interval_seconds
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._last = None  # monotonic seconds of the last save (None: this instance has not)

    @staticmethod
    def remember(state: AggregationState, key, output):
        """``output`` goes out now; keep it until the next checkpoint."""
        state.pending[key] = output

    def is_due(self, now_s) -> bool:
        if self._last is None:
            self._last = now_s  # the interval runs from this instance's first call
        return now_s - self._last >= self._interval

    def save(self, state: AggregationState, now_s, wait=False) -> bool:
        """Write a checkpoint, then commit the offsets it settles (``wait``:
        until committed). False when it could not be written (retried later)."""
        self._last = now_s
        snapshot = {"book": state.book.snapshot(), "stories": state.stories,
                    "surges": state.surges,
                    "ledger": state.ledger,
                    "pending": state.pending, "complete": state.complete}
        try:
            self._files.save(snapshot)
        except OSError as exc:
            if self._on_failure is not None:
                self._on_failure()
            _LOG.error("could not write the aggregation checkpoint %s (%s); retrying in "
                       "%.0f s; offsets are not committed meanwhile", self._files.path,
                       exc, self._interval)
            return False
        state.pending = {}
        offsets = state.ledger.commit_offsets()
        _LOG.debug("checkpoint saved: next offsets %s", offsets)
        if self._on_commit is not None:
            self._on_commit(offsets, wait=wait)
        return True

    def restore(self, book_settings, story_settings=None, surge_settings=None):
        """``(state, outputs to emit again)`` from the latest checkpoint, or None.

        Pane files the lost run wrote after the checkpoint are removed (this
        run writes its own); after a finished bounded run, new input starts
        new windows and what it counted stays skipped."""
        snapshot = self._files.load()
        if snapshot is None:
            return None
        ledger, pending = snapshot["ledger"], snapshot["pending"]
        if snapshot["complete"]:
            _LOG.warning("the last run over %s finished its input; new windows from the "
                         "group's committed offsets %s", self._files.path,
                         ledger.commit_offsets())
            book = WindowBook(**book_settings)
        else:
            book = WindowBook.restore(snapshot["book"], **book_settings)
            # A warning, so that it shows at the CLI's default level: rare and worth knowing.
            _LOG.warning("restored the aggregation checkpoint of %s: %d open windows, closed "
                         "through %d, next offsets %s", self._files.path, len(book),
                         book.closed_through, ledger.commit_offsets())
            self._files.discard_panes(book.keeps_pane)
        state = AggregationState(book, ledger, pending,
                                 stories=_stories(snapshot.get("stories"), story_settings),
                                 surges=_surges(snapshot.get("surges"), surge_settings))
        return state, list(self._reemit(pending))

    @staticmethod
    def _reemit(pending):
        for key, output in sorted(pending.items(), key=lambda kv: repr(kv[0])):
            if key[0] == LATE_ARTICLES:
                yield beam.pvalue.TaggedOutput(LATE_ARTICLES, output)
            else:
                yield output


def _stories(saved, story_settings):
    """The checkpoint's ``StoryIndex`` when this run counts stories the same
    way; a new one when the checkpoint had none; an error when they differ."""
    if story_settings is None:
        return None
    fresh = StoryIndex(**story_settings)
    if saved is None:
        return fresh
    if saved.settings() != fresh.settings():
        raise ValueError(f"the checkpoint's story settings {saved.settings()} (threshold, "
                         f"horizon ms, index size) differ from this run's {fresh.settings()}; "
                         "run with the same --story-* flags or move the checkpoint away")
    return saved


def _surges(saved, surge_settings):
    """The checkpoint's ``SurgeDetector`` when it scores the same subjects (and
    top pairs) at the same threshold; else a new one (the baselines start again)."""
    if surge_settings is None:
        return None
    fresh = SurgeDetector(**surge_settings)
    if saved is None or saved.settings() != fresh.settings():
        return fresh
    return saved
