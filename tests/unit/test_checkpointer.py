"""The aggregation's checkpoints (pipeline/checkpointer.py) against a fake
store of checkpoint files: when they are written, what a restore gives back,
which pane files it keeps. Expected values worked out by hand."""
import pickle
from typing import NamedTuple

import apache_beam as beam

from pipeline.aggregation_state import AggregationState
from pipeline.checkpointer import Checkpointer
from pipeline.ledger import SourcePosition
from pipeline.window_book import WindowBook
from pipeline.windows import WindowSpec

H = 3_600_000
T0 = 1_000 * H
SETTINGS = dict(specs=(WindowSpec.tumbling(3600), WindowSpec.running()), allowed_lateness_ms=0,
                early_firing_ms=1_000, top_k_pairs=10)


class Files:
    """CheckpointFiles as the checkpointer uses it, in memory (pickled, as on disk)."""

    def __init__(self, fail=False):
        self.saved, self.fail, self.discarded = None, fail, None
        self.path = "mem://checkpoint"

    def save(self, snapshot):
        if self.fail:
            raise OSError("disk full")
        self.saved = pickle.dumps(snapshot)

    def load(self):
        return None if self.saved is None else pickle.loads(self.saved)

    def discard_panes(self, keep):
        self.discarded = keep


class Art(NamedTuple):
    article_id: str
    published_ms: int
    tally: dict
    cooc: object


def state_with_one_article():
    from pipeline.cooccurrence import ArticleCooccurrence
    state = AggregationState(WindowBook(**SETTINGS))
    state.book.add(Art("a", T0 + 1, {"X": (1, "GPE", {"X": 1})}, ArticleCooccurrence({}, {})),
                   T0 + 1)
    state.ledger.settle(SourcePosition("articles", 0, 0, -1, True))
    return state


def test_saves_on_the_interval_then_commits_the_offsets_and_forgets_pending():
    commits = []
    cp = Checkpointer(files=Files(), interval_seconds=5,
                      on_commit=lambda offsets, wait: commits.append((offsets, wait)))
    state = state_with_one_article()
    Checkpointer.remember(state, ("entity_counts", T0, T0 + H), "pane 0")
    assert not cp.is_due(100.0)          # the interval runs from the first call
    assert not cp.is_due(104.9) and cp.is_due(105.0)
    assert cp.save(state, 105.0, wait=True)
    assert state.pending == {} and commits == [({("articles", 0): 1}, True)]


def test_a_failed_save_commits_nothing_and_keeps_pending():
    failures, commits = [], []
    cp = Checkpointer(files=Files(fail=True), interval_seconds=5,
                      on_commit=lambda o, wait: commits.append(o),
                      on_failure=lambda: failures.append(1))
    state = state_with_one_article()
    Checkpointer.remember(state, ("entity_counts", T0, T0 + H), "pane 0")
    assert not cp.save(state, 1.0)
    assert failures == [1] and commits == [] and state.pending


def test_restore_gives_the_book_ledger_and_the_outputs_to_emit_again():
    files = Files()
    cp = Checkpointer(files=files, interval_seconds=5)
    state = state_with_one_article()
    (pane,) = [p for p in state.book.dirty_panes(T0 + 2) if p.kind == "entity_counts"]
    Checkpointer.remember(state, (pane.kind, pane.window_start_ms, pane.window_end_ms), pane)
    Checkpointer.remember(state, ("late_articles", "z"), {"article_id": "z"})
    cp.save(state, 0.0)
    assert state.pending == {}           # cleared by the save...
    restored, outputs = cp.restore(SETTINGS)
    # ...but the checkpoint holds what was pending when it was written.
    assert outputs[0] == pane
    assert isinstance(outputs[1], beam.pvalue.TaggedOutput) and outputs[1].tag == "late_articles"
    assert restored.ledger.commit_offsets() == {("articles", 0): 1}
    assert len(restored.book) == 2       # the hour and the running window
    # Pane 0 of the hour was emitted before the checkpoint: kept; pane 1 was not.
    assert files.discarded("entity_counts", T0, T0 + H, 0)
    assert not files.discarded("entity_counts", T0, T0 + H, 1)


def test_after_a_finished_bounded_run_new_input_starts_new_windows():
    files = Files()
    cp = Checkpointer(files=files, interval_seconds=5)
    state = state_with_one_article()
    state.book.close_through(253402300799999, T0)
    state.complete = True
    cp.save(state, 0.0)
    restored, outputs = cp.restore(SETTINGS)
    assert len(restored.book) == 0 and outputs == [] and files.discarded is None
    assert restored.ledger.commit_offsets() == {("articles", 0): 1}   # still skipped
