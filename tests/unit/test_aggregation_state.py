"""Where the aggregation's state is kept between bundles (pipeline/
aggregation_state.py ``StateStore``): the in-process copy is used only when
it is at least what the runner committed (docs/runner-notes.md PRISM-3,
PRISM-4, PRISM-9), and the runner's cells (``RunnerLayout``) are written
only where a bundle changed something and read only where it looks.

The cells a bundle touches are worked out by hand: T0 is hour 1,000 since
the epoch, a multiple of SHARDS (4), so a bucket h hours after T0 is in
shard h % 4; the tumbling (1 h) and sliding (6 h every 1 h) buckets of one
hour share that shard, and the running bucket has its own cell."""
import copy
import pickle

import pytest

from pipeline import aggregation_state
from pipeline.aggregation_state import SHARDS, AggregationState, Cells, StateStore
from pipeline.stories import StoryIndex, story_signature
from pipeline.window_book import WindowBook
from pipeline.windows import WindowSpec
from tests.unit.test_window_book import NOW, T0, H, M, art

SETTINGS = dict(specs=(WindowSpec.tumbling(3600), WindowSpec.sliding(6 * 3600, 3600),
                       WindowSpec.running()),
                allowed_lateness_ms=0, early_firing_ms=None, top_k_pairs=10)
BUCKET_CELLS = ("running", "shard0", "shard1", "shard2", "shard3")


class FakeCell:
    """A state cell as a runner keeps it: encoded, so a read decodes a fresh
    copy of the committed value (unless this bundle wrote one), and commit()
    stores a snapshot of the bundle's write."""

    def __init__(self, value=None):
        self.committed, self.pending, self.cleared, self.reads, self.writes = (
            value, None, False, 0, 0)

    def read(self):
        self.reads += 1
        if self.pending is not None or self.cleared:
            return self.pending
        return pickle.loads(pickle.dumps(self.committed))

    def write(self, value):
        self.pending, self.cleared = value, False
        self.writes += 1

    def clear(self):
        self.pending, self.cleared = None, True
        self.writes += 1

    def commit(self):
        if self.pending is not None or self.cleared:
            self.committed = pickle.loads(pickle.dumps(self.pending))
        self.pending, self.cleared = None, False

    def abort(self):
        self.pending, self.cleared = None, False


class FakeBag(FakeCell):
    """A bag: ``add`` appends (encoded at commit), ``clear`` empties."""

    def __init__(self):
        super().__init__([])
        self.pending = []

    def read(self):
        self.reads += 1
        return ([] if self.cleared else pickle.loads(pickle.dumps(self.committed))) + self.pending

    def add(self, value):
        self.pending.append(value)
        self.writes += 1

    def clear(self):
        self.pending, self.cleared = [], True
        self.writes += 1

    def commit(self):
        self.committed = ([] if self.cleared else self.committed) + pickle.loads(
            pickle.dumps(self.pending))
        self.pending, self.cleared = [], False

    def abort(self):
        self.pending, self.cleared = [], False


def fake_cells():
    return Cells(FakeCell(), FakeCell(), FakeBag(), FakeCell(),
                 tuple(FakeCell() for _ in range(SHARDS)), FakeBag())


def named(cells):
    return dict(version=cells.version, header=cells.header, pending=cells.pending,
                running=cells.running, **{f"shard{i}": c for i, c in enumerate(cells.shards)},
                stories=cells.stories)


def commit(cells):
    for c in named(cells).values():
        c.commit()


def abort(cells):
    for c in named(cells).values():
        c.abort()


def counts(cells, what):
    """``what`` ("reads" or "writes") per cell, then reset."""
    out = {}
    for name, c in named(cells).items():
        out[name] = getattr(c, what)
        setattr(c, what, 0)
    return {n: v for n, v in out.items() if v}


def new_state():
    return AggregationState(WindowBook(**SETTINGS))


def store_for(state_in_process=False):
    return StateStore(state_in_process=state_in_process, book_settings=SETTINGS)


def bundle(store, cells, change=None, new=new_state):
    """One bundle: load, ``change(state)``, store, commit."""
    state = store.load(cells, new)
    if change is not None:
        change(state)
    store.store(state, cells)
    commit(cells)
    return state


def add(*hours_and_ids):
    def change(state):
        for h_min, article_id in hours_and_ids:
            state.book.add(art(article_id, T0 + h_min, ["RUSSIA"], ["KOREA"]), NOW)
    return change


def worker_copy(store):
    """The store as a DoFn copy unpickled in the same process sees it."""
    return pickle.loads(pickle.dumps(store))


def rows(panes):
    return sorted((p.kind, p.window_start_ms, p.pane_timing,
                   tuple(sorted(map(repr, p.records)))) for p in panes)


def test_a_bundle_writes_only_the_cells_of_the_buckets_it_touched():
    store, cells = store_for(), fake_cells()
    # Bundle 1, a new state: every cell is written (shard 2 and 3 cleared).
    bundle(store, cells, add((10 * M, "a"), (90 * M, "b"), (5 * H, "c")))
    assert counts(cells, "writes") == dict(version=1, header=1, pending=1, running=1, shard0=1,
                                           shard1=1, shard2=1, shard3=1)
    assert cells.shards[2].committed is None and cells.shards[3].committed is None
    # hour 0 -> shard 0; hours 1 and 5 -> shard 1: tumbling and sliding buckets.
    assert sorted(cells.shards[1].committed.value) == [
        ("sliding", T0 + H), ("sliding", T0 + 5 * H), ("tumbling", T0 + H),
        ("tumbling", T0 + 5 * H)]
    # Bundle 2: an article at 2h15 touches shard 2 and the running bucket; no panes.
    bundle(store, cells, add((135 * M, "d")))
    assert counts(cells, "writes") == dict(version=1, header=1, running=1, shard2=1)
    # Bundle 3: the watermark passes 1h: tumbling [0h,1h) and sliding [-5h,1h)
    # give ON_TIME panes (2 + 1 pending outputs); the tumbling bucket 0h is
    # dropped (shard 0 rewritten, still holding sliding 0h); the running
    # bucket did not change.
    bundle(store, cells, lambda s: [s.pending.setdefault((p.kind, p.window_start_ms), p)
                                    for p in s.book.close_through(T0 + H, NOW)] and None)
    assert counts(cells, "writes") == dict(version=1, header=1, pending=3, shard0=1)
    assert sorted(cells.shards[0].committed.value) == [("sliding", T0)]
    assert len(cells.pending.committed) == 3
    # Three bundles read the version; only the first looked at the (empty)
    # header; then the live copy was current: no cell decoded.
    assert counts(cells, "reads") == dict(version=3, header=1)


def test_a_load_from_the_cells_reads_a_shard_only_when_touched_and_round_trips():
    store, cells = store_for(), fake_cells()
    original = bundle(store, cells, add((10 * M, "a"), (90 * M, "b"), (5 * H, "c"),
                                        (135 * M, "d")))
    counts(cells, "reads"), counts(cells, "writes")
    other = store_for()                       # another worker process: no live copy
    state = other.load(cells, new_state)
    assert counts(cells, "reads") == dict(version=1, header=1, pending=1)
    state.book.add(art("e", T0 + 5 * H + M, ["KOREA"]), NOW)   # hour 5: shard 1
    assert counts(cells, "reads") == dict(shard1=1, running=1)
    other.store(state, cells)
    assert counts(cells, "writes") == dict(version=1, header=1, running=1, shard1=1)
    commit(cells)
    # Round trip: closing everything from the cells gives what the original book gives.
    original.book.add(art("e", T0 + 5 * H + M, ["KOREA"]), NOW)
    again = store_for().load(cells, new_state)
    assert rows(again.book.close_through(T0 + 12 * H, NOW)) == rows(
        original.book.close_through(T0 + 12 * H, NOW))
    assert again.timers == original.timers and again.pending == original.pending == {}


def test_a_checkpoint_of_a_lazily_read_book_holds_every_bucket():
    store, cells = store_for(), fake_cells()
    original = bundle(store, cells, add((10 * M, "a"), (5 * H, "c")))
    lazy = store_for().load(cells, new_state)
    restored = WindowBook.restore(pickle.loads(pickle.dumps(lazy.book.snapshot())), **SETTINGS)
    assert rows(restored.close_through(T0 + 12 * H, NOW)) == rows(
        original.book.close_through(T0 + 12 * H, NOW))


def test_next_bundle_reuses_the_copy_without_reading_the_cells():
    store, cells = store_for(), fake_cells()
    state = bundle(store, cells, add((10 * M, "a")))
    assert cells.version.committed == 1
    counts(cells, "reads")
    again = worker_copy(store).load(cells, new_state)       # next bundle, another copy
    assert again is state and counts(cells, "reads") == dict(version=1)


def test_failed_bundle_is_not_seen_by_the_next_one():
    store, cells = store_for(), fake_cells()
    bundle(store, cells, add((10 * M, "a")))
    # A bundle changes the state, stores it, then fails: nothing is committed,
    # and the runner tears the DoFn down before the next bundle.
    state = store.load(cells, new_state)
    add((20 * M, "uncommitted"))(state)
    store.store(state, cells)
    abort(cells)
    store.drop()
    again = store.load(cells, new_state)
    assert again is not state
    tumbling = again.book.snapshot()["families"]["tumbling"][1]
    assert tumbling[T0].ids == {"a"}


def test_failure_before_store_leaves_no_copy():
    store, cells = store_for(), fake_cells()
    bundle(store, cells, add((10 * M, "a")))
    state = store.load(cells, new_state)
    add((20 * M, "half-done"))(state)                 # then an exception: no store
    abort(cells)
    counts(cells, "reads")
    fresh = store.load(cells, new_state)
    assert counts(cells, "reads")["header"] == 1
    assert fresh.book.snapshot()["families"]["tumbling"][1][T0].ids == {"a"}


def test_steps_do_not_share_copies():
    one, two = store_for(), store_for()
    c1, c2 = fake_cells(), fake_cells()
    bundle(one, c1, add((10 * M, "a")))
    assert len(two.load(c2, new_state).book) == 0


def test_an_older_snapshot_handed_to_a_bundle_does_not_undo_newer_changes():
    """PRISM-3: a bundle of the key may get an older snapshot while another
    bundle has moved on: the newer in-process copy wins."""
    store, cells, stale = store_for(), fake_cells(), fake_cells()
    bundle(store, cells, add((10 * M, "a")))
    state = store.load(stale, new_state)
    assert state.book.snapshot()["families"]["tumbling"][1][T0].ids == {"a"}


def test_state_in_process_never_writes_the_big_cells_and_refuses_to_start_over():
    store, cells = store_for(state_in_process=True), fake_cells()
    bundle(store, cells, add((10 * M, "a")))
    assert counts(cells, "writes") == dict(version=1) and cells.version.committed == 1
    store.drop()                                  # an idle DoFn torn down: copy kept
    assert len(store.load(cells, new_state).book) > 0
    # That call failed before its store: the copy is gone, and so is the state.
    with pytest.raises(RuntimeError, match="in-process state is gone"):
        store.load(cells, new_state)



def test_a_write_is_what_the_state_was_when_stored_not_at_the_commit():
    """SDK-3: the SDK encodes a write at the bundle's commit, when the next
    bundle (another thread) may already be changing the live state."""
    store, cells = store_for(), fake_cells()
    with store.bundle("bundle 1"):
        state = store.load(cells, new_state)
        add((10 * M, "a"))(state)
        store.store(state, cells)
    with store.bundle("bundle 1"):                  # a later call of the same bundle
        state = store.load(cells, new_state)
        add((15 * M, "b"))(state)
        store.store(state, cells)
    with store.bundle("bundle 2"):                  # the next bundle, on another thread
        again = store.load(cells, new_state)
        add((20 * M, "next bundle"))(again)
        commit(cells)                               # bundle 1's commit, meanwhile
    committed = store_for().load(cells, new_state)
    assert committed.book.snapshot()["families"]["tumbling"][1][T0].ids == {"a", "b"}


def story_state(max_articles):
    stories = StoryIndex(threshold=0.5, horizon_ms=3 * 86_400_000, max_articles=max_articles)
    return lambda: AggregationState(WindowBook(**SETTINGS), stories=stories)


def index_articles(*article_ids):
    def change(state):
        for n, article_id in enumerate(article_ids):
            text = f"story {article_id} number {n} told in a few words of its own {article_id}"
            state.stories.assign(article_id, T0 + n, story_signature(text))
    return change


def test_story_entries_are_written_once_each_and_read_back():
    store, cells, new = store_for(), fake_cells(), story_state(max_articles=3)
    state = store.load(cells, new)
    index_articles("a")(state)
    store.store(state, cells)
    commit(cells)
    for ids in (("b", "c"), ("d",)):                # "d" makes the index forget "a"
        bundle_state = store.load(cells, new)
        counts(cells, "writes")
        index_articles(*ids)(bundle_state)
        store.store(bundle_state, cells)
        commit(cells)
        # Only the articles just indexed go to the bag; the header holds none.
        assert counts(cells, "writes") == dict(version=1, header=1, stories=len(ids))
    assert cells.header.committed.value.stories.entries == {}
    assert [item.value[0] for item in cells.stories.committed] == ["a", "b", "c", "d"]
    original = bundle_state.stories
    read = store_for().load(cells, new).stories      # another worker process
    assert list(read.entries) == ["b", "c", "d"] == list(original.entries)
    assert read.tables == original.tables and read.newest_ms == original.newest_ms
    # "b"'s text shares 7 of its 10 four-word shingles with "a"'s (those not
    # holding the id), containment 0.7 >= 0.5: "b" joined story "a", and a
    # copy of "b" joins it too, in both indexes.
    text = "story b number 0 told in a few words of its own b"
    assert read.assign("e", T0 + 9, story_signature(text)) == original.assign(
        "e", T0 + 9, story_signature(text)) == "a"


def test_the_story_bag_is_rewritten_when_mostly_forgotten(monkeypatch):
    monkeypatch.setattr(aggregation_state, "STORIES_SLACK", 0)
    store, cells, new = store_for(), fake_cells(), story_state(max_articles=2)
    for n in range(8):
        state = bundle(store, cells, index_articles(f"x{n}"), new)
        # At most twice the 2 held, plus the one just indexed, before a rewrite.
        assert len(cells.stories.committed) <= 2 * 2 + 1
    assert list(store_for().load(cells, new).stories.entries) == ["x6", "x7"] == list(
        state.stories.entries)
