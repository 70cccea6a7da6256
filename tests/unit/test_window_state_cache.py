"""The aggregation's in-process copy of its state (_load/_store): used only
when it is exactly what the runner committed."""
import copy

import pytest

from pipeline.aggregate import _EmitPanesFn, _OpenWindows
from pipeline.windows import WindowSpec


class FakeState:
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


def new_fn():
    return _EmitPanesFn([WindowSpec.tumbling(3600)], None, 0, 10)


def test_next_bundle_reuses_the_copy_without_reading_the_big_cell():
    fn, windows, version = new_fn(), FakeState(_OpenWindows(a=1)), FakeState(3)
    loaded, v = fn._load(windows, version)
    assert loaded == {"a": 1} and v == 3 and windows.reads == 1
    loaded["b"] = 2
    fn._store(loaded, windows, version, v)
    windows.commit(), version.commit()
    again, v2 = fn._load(windows, version)          # next bundle
    assert again is loaded and v2 == 4 and windows.reads == 1


def test_failed_bundle_is_not_seen_by_the_next_one():
    fn, windows, version = new_fn(), FakeState(_OpenWindows(a=1)), FakeState(0)
    loaded, v = fn._load(windows, version)
    fn._store(loaded, windows, version, v)
    windows.commit(), version.commit()
    # A bundle changes the copy, stores it, then fails: nothing is committed,
    # and the runner tears the DoFn down before the next bundle.
    loaded, v = fn._load(windows, version)
    loaded["uncommitted"] = True
    fn._store(loaded, windows, version, v)
    windows.abort(), version.abort()
    fn.teardown()
    fresh, _ = fn._load(windows, version)
    assert "uncommitted" not in fresh


def test_failure_before_store_leaves_no_copy():
    fn, windows, version = new_fn(), FakeState(_OpenWindows(a=1)), FakeState(0)
    loaded, v = fn._load(windows, version)
    fn._store(loaded, windows, version, v)
    windows.commit(), version.commit()
    loaded, v = fn._load(windows, version)
    loaded["half-done"] = True                       # then an exception: no _store
    windows.abort(), version.abort()
    reads = windows.reads
    fresh, _ = fn._load(windows, version)
    assert windows.reads == reads + 1                # read from the state again
    assert "half-done" not in fresh


def test_steps_do_not_share_copies():
    one, two = new_fn(), new_fn()
    w1, v1 = FakeState(_OpenWindows(x=1)), FakeState(0)
    w2, v2 = FakeState(_OpenWindows(y=2)), FakeState(0)
    loaded, v = one._load(w1, v1)
    one._store(loaded, w1, v1, v)
    w1.commit(), v1.commit()
    other, _ = two._load(w2, v2)
    assert other == {"y": 2}


def test_an_older_snapshot_handed_to_a_bundle_does_not_undo_newer_changes():
    """Prism 2.75 may hand a bundle of the key an older state snapshot while
    another bundle has moved on: the newer in-process copy wins."""
    fn, windows, version = new_fn(), FakeState(_OpenWindows(a=1)), FakeState(0)
    stale_windows, stale_version = FakeState(_OpenWindows(a=1)), FakeState(0)
    loaded, v = fn._load(windows, version)
    loaded["b"] = 2
    fn._store(loaded, windows, version, v)
    windows.commit(), version.commit()
    again, v2 = fn._load(stale_windows, stale_version)   # the snapshot from before
    assert again == {"a": 1, "b": 2} and v2 == 1


def test_state_in_process_never_writes_the_big_cell_and_refuses_to_start_over():
    fn = _EmitPanesFn([WindowSpec.tumbling(3600)], None, 0, 10, state_in_process=True)
    windows, version = FakeState(), FakeState()
    loaded, v = fn._load(windows, version)
    loaded["a"] = 1
    fn._store(loaded, windows, version, v)
    windows.commit(), version.commit()
    assert windows.committed is None and version.committed == 1
    fn.teardown()                                    # an idle DoFn torn down: copy kept
    again, _ = fn._load(windows, version)
    assert again == {"a": 1}
    # The call fails before its store: the copy is gone, and so is the state.
    version.commit()
    with pytest.raises(RuntimeError, match="in-process state is gone"):
        fn._load(windows, version)
