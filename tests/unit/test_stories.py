"""Near-duplicate stories (pipeline/stories.py): shingles, signatures and the
story index, driven directly. Expected values worked out by hand from the
texts (comments show how); the checkpoint round trip uses the Checkpointer
with an in-memory store, as tests/unit/test_checkpointer.py does."""
import pickle

import pytest

from pipeline.stories import (NUM_PERM, StoryIndex, containment, shingles, similarity,
                              story_signature)

DAY = 86_400_000
W = 4  # words per shingle in these hand counts (the default is measured: docs/stories.md)


def sig(text):
    return story_signature(text, W)
WIRE = ("The central bank raised its benchmark interest rate by a quarter point on "
        "Tuesday, citing persistent inflation in services and a tight labour market. "
        "Officials said further increases were possible if prices kept rising. Markets "
        "had expected the move after strong jobs data last week. The currency rose "
        "against the dollar after the announcement and bond yields climbed.")
# How an outlet copies it: a few words changed, its boilerplate added.
COPY = (WIRE.replace("Tuesday", "Tuesday morning").replace("climbed", "rose")
        + " Subscribe to our newsletter for the latest business news.")
OTHER = ("Heavy rain flooded roads across the north of the country on Sunday and "
         "emergency services rescued dozens of drivers from stranded cars, the police said. "
         "Forecasters warned of more storms during the week ahead.")


def test_shingles_are_lower_cased_word_grams():
    # 5 words -> 5 - 4 + 1 = 2 four-word shingles; punctuation and case ignored.
    assert shingles("The Bank, raised RATES today.", 4) == [b"the bank raised rates",
                                                            b"bank raised rates today"]
    assert shingles("Two words", 4) == [b"two words"]   # shorter than 4: one shingle
    assert shingles(" ,. ", 4) == []
    assert shingles("a b c d e") == [b"a b c d", b"b c d e"]   # the default: 4 words


def test_signatures_estimate_jaccard_similarity():
    a = sig(WIRE)
    assert len(a.values) == 4 * NUM_PERM and a == sig(WIRE)   # deterministic
    assert a.shingles == 55
    assert similarity(a, a) == 1.0
    # WIRE has 58 words: 55 four-word shingles. "Tuesday morning" breaks the 3
    # spanning "Tuesday citing", "rose" for "climbed" the last one: 51 shared.
    # The copy has 58 + 1 + 9 words: 65 shingles; union 65 + 4 = 69. True
    # Jaccard 51 / 69 = 0.74; the estimate (128 values) is within ~0.1.
    assert abs(similarity(a, sig(COPY)) - 51 / 69) < 0.12
    assert similarity(a, sig(OTHER)) < 0.1
    # Containment: 51 of the smaller one's 55 shingles are shared: 0.93.
    assert abs(containment(a, sig(COPY)) - 51 / 55) < 0.06
    assert sig("") is None and story_signature("") is None


def test_true_jaccard_of_the_fixture_is_what_the_comment_says():
    wire, copy = set(shingles(WIRE, W)), set(shingles(COPY, W))
    assert (len(wire), len(wire & copy), len(wire | copy)) == (55, 51, 69)


def index(**kw):
    return StoryIndex(**dict(dict(threshold=0.5, horizon_ms=3 * DAY, max_articles=100), **kw))


def test_a_copy_gets_the_first_article_as_its_story():
    idx = index()
    assert idx.assign("wire", 0, sig(WIRE)) == "wire"     # new story
    assert idx.assign("copy", DAY, sig(COPY)) == "wire"   # within 3 days
    assert idx.assign("other", DAY, sig(OTHER)) == "other"
    assert idx.assign("copy", DAY, sig(COPY)) == "wire"   # asked again: same
    assert idx.assign("blank", DAY, None) == "blank"                  # no words: its own
    assert len(idx) == 3


def test_a_copy_beyond_the_horizon_is_a_new_story():
    idx = index()
    idx.assign("wire", 0, sig(WIRE))
    assert idx.assign("late-copy", 3 * DAY + 1, sig(COPY)) == "late-copy"


def test_the_threshold_decides():
    # The pair's containment is 0.93 (above): at 0.99 they are two stories.
    strict = index(threshold=0.99)
    strict.assign("wire", 0, sig(WIRE))
    assert strict.assign("copy", 1, sig(COPY)) == "copy"


def test_copies_of_a_copy_join_the_first_story():
    idx = index()
    idx.assign("wire", 0, sig(WIRE))
    idx.assign("copy", 1, sig(COPY))
    recopy = COPY.replace("quarter point", "quarter of a point")
    assert idx.assign("recopy", 2, sig(recopy)) == "wire"


def test_the_index_is_bounded_by_size_and_horizon():
    idx = index(max_articles=2)
    idx.assign("wire", 0, sig(WIRE))
    idx.assign("a", 1, sig(OTHER))
    idx.assign("b", 2, sig("A completely different third text about football "
                                       "results and the league table this weekend."))
    assert list(idx.entries) == ["a", "b"]          # the oldest inserted went first
    assert idx.assign("copy", 3, sig(COPY)) == "copy"   # wire forgotten
    assert all(ids for table in idx.tables for ids in table.values())
    later = index()
    later.assign("wire", 0, sig(WIRE))
    later.assign("other", 3 * DAY + 1, sig(OTHER))   # newest - 3 days > 0
    assert list(later.entries) == ["other"]
    assert sum(len(ids) for table in later.tables for ids in table.values()) == later.bands


def test_decisions_after_a_pickle_round_trip_are_the_same():
    """What a restart does: the index comes back from the checkpoint (pickled)."""
    idx = index()
    idx.assign("wire", 0, sig(WIRE))
    restored = pickle.loads(pickle.dumps(idx))
    for i in (idx, restored):
        assert i.assign("copy", 1, sig(COPY)) == "wire"
        assert i.assign("other", 2, sig(OTHER)) == "other"
    assert restored.entries == idx.entries and restored.tables == idx.tables


def test_checkpoint_holds_the_index_and_refuses_other_settings():
    from pipeline.aggregation_state import AggregationState
    from pipeline.checkpointer import Checkpointer
    from tests.unit.test_checkpointer import SETTINGS, Files
    from pipeline.window_book import WindowBook
    files = Files()
    state = AggregationState(WindowBook(**SETTINGS), stories=index())
    state.stories.assign("wire", 0, sig(WIRE))
    Checkpointer(files=files, interval_seconds=5).save(state, 1.0)
    settings = dict(threshold=0.5, horizon_ms=3 * DAY, max_articles=100)
    restored, _ = Checkpointer(files=files, interval_seconds=5).restore(SETTINGS, settings)
    assert restored.stories.assign("copy", 1, sig(COPY)) == "wire"
    with pytest.raises(ValueError, match="story settings"):
        Checkpointer(files=files, interval_seconds=5).restore(
            SETTINGS, dict(settings, threshold=0.8))
    off, _ = Checkpointer(files=files, interval_seconds=5).restore(SETTINGS, None)
    assert off.stories is None


@pytest.mark.parametrize("kw", [dict(threshold=0), dict(threshold=1.0), dict(horizon_ms=0),
                                dict(max_articles=0)])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError):
        index(**kw)


def test_an_index_pickled_by_the_earlier_layout_still_loads():
    """Before the columns, a pickle held the entries and tables as they are
    (``__dict__``): such a checkpoint still gives the same decisions."""
    idx = index()
    idx.assign("wire", 0, sig(WIRE))
    idx.assign("other", 1, sig(OTHER))
    old = StoryIndex.__new__(StoryIndex)
    old.__setstate__(pickle.loads(pickle.dumps(dict(idx.__dict__))))
    now = pickle.loads(pickle.dumps(idx))
    assert "columns" in idx.__getstate__() and "entries" not in idx.__getstate__()
    for i in (old, now):
        assert i.entries == idx.entries and i.tables == idx.tables
        assert i.assign("copy", 2, sig(COPY)) == "wire"
