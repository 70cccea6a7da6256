"""Where the aggregation's state is kept between bundles (pipeline/
aggregation_state.py ``StateStore``): the in-process copy is used only when
it is at least what the runner committed (docs/runner-notes.md PRISM-3,
PRISM-4, PRISM-9)."""
import copy
import pickle

import pytest

from pipeline.aggregation_state import StateStore


class FakeCell:
    """A state cell as a runner keeps it: encoded, so a read decodes a fresh
    copy of the committed value (unless this bundle wrote one), and commit()
    stores a snapshot of the bundle's write."""

    def __init__(self, value=None):
        self.committed, self.pending, self.reads = value, None, 0

    def read(self):
        self.reads += 1
        return self.pending if self.pending is not None else copy.deepcopy(self.committed)

    def write(self, value):
        self.pending = value

    def commit(self):
        if self.pending is not None:
            self.committed, self.pending = copy.deepcopy(self.pending), None

    def abort(self):
        self.pending = None


def commit(*cells):
    for c in cells:
        c.commit()


def worker_copy(store):
    """The store as a DoFn copy unpickled in the same process sees it."""
    return pickle.loads(pickle.dumps(store))


def test_next_bundle_reuses_the_copy_without_reading_the_big_cell():
    store = StateStore(state_in_process=False)
    cell, version = FakeCell({"a": 1}), FakeCell(3)
    state = store.load(cell, version, dict)
    assert state == {"a": 1} and cell.reads == 1
    state["b"] = 2
    store.store(state, cell, version)
    commit(cell, version)
    assert version.committed == 4
    again = worker_copy(store).load(cell, version, dict)       # next bundle, another copy
    assert again is state and cell.reads == 1


def _committed_runner_state():
    """A runner-state store whose first bundle stored {"a": 1} and was committed."""
    store = StateStore(state_in_process=False)
    cell, version = FakeCell({"a": 1}), FakeCell(0)
    store.store(store.load(cell, version, dict), cell, version)
    commit(cell, version)
    return store, cell, version


def test_failed_bundle_is_not_seen_by_the_next_one():
    store, cell, version = _committed_runner_state()
    # A bundle changes the state, stores it, then fails: nothing is committed,
    # and the runner tears the DoFn down before the next bundle.
    state = store.load(cell, version, dict)
    state["uncommitted"] = True
    store.store(state, cell, version)
    cell.abort(), version.abort()
    store.drop()
    assert "uncommitted" not in store.load(cell, version, dict)


def test_failure_before_store_leaves_no_copy():
    store, cell, version = _committed_runner_state()
    state = store.load(cell, version, dict)
    state["half-done"] = True                       # then an exception: no store
    cell.abort(), version.abort()
    reads = cell.reads
    fresh = store.load(cell, version, dict)
    assert cell.reads == reads + 1 and "half-done" not in fresh


def test_steps_do_not_share_copies():
    one, two = StateStore(state_in_process=False), StateStore(state_in_process=False)
    c1, v1, c2, v2 = FakeCell({"x": 1}), FakeCell(0), FakeCell({"y": 2}), FakeCell(0)
    one.store(one.load(c1, v1, dict), c1, v1)
    commit(c1, v1)
    assert two.load(c2, v2, dict) == {"y": 2}


def test_an_older_snapshot_handed_to_a_bundle_does_not_undo_newer_changes():
    """PRISM-3: a bundle of the key may get an older snapshot while another
    bundle has moved on: the newer in-process copy wins."""
    store = StateStore(state_in_process=False)
    cell, version = FakeCell({"a": 1}), FakeCell(0)
    stale_cell, stale_version = FakeCell({"a": 1}), FakeCell(0)
    state = store.load(cell, version, dict)
    state["b"] = 2
    store.store(state, cell, version)
    commit(cell, version)
    assert store.load(stale_cell, stale_version, dict) == {"a": 1, "b": 2}


def test_state_in_process_never_writes_the_big_cell_and_refuses_to_start_over():
    store = StateStore(state_in_process=True)
    cell, version = FakeCell(), FakeCell()
    state = store.load(cell, version, dict)
    state["a"] = 1
    store.store(state, cell, version)
    commit(cell, version)
    assert cell.committed is None and version.committed == 1
    store.drop()                                  # an idle DoFn torn down: copy kept
    assert store.load(cell, version, dict) == {"a": 1}
    # That call failed before its store: the copy is gone, and so is the state.
    with pytest.raises(RuntimeError, match="in-process state is gone"):
        store.load(cell, version, dict)
