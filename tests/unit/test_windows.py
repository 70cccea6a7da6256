"""Window assignment and co-occurrence extraction: pure functions, hand-checked."""
import pytest

from pipeline.cooccurrence import article_cooccurrence
from pipeline.records import Mention
from pipeline.windows import RUNNING_END_MS, WindowSpec, assign

H = 3_600_000


def test_tumbling_window_holds_its_start_not_its_end():
    spec = WindowSpec.tumbling(3600)
    assert assign(spec, 0) == [(0, H)]
    assert assign(spec, H - 1) == [(0, H)]
    assert assign(spec, H) == [(H, 2 * H)]


def test_sliding_24h_every_hour_gives_24_windows_containing_the_time():
    spec = WindowSpec.sliding(86400, 3600)
    t = 5 * H + 123
    windows = assign(spec, t)
    assert len(windows) == 24
    assert windows[0] == (5 * H - 23 * H, 5 * H + H)   # starts 18 h before 0
    assert windows[-1] == (5 * H, 29 * H)
    assert all(s <= t < e for s, e in windows)


def test_running_window_is_everything():
    assert assign(WindowSpec.running(), 123) == [(0, RUNNING_END_MS)]


def test_sliding_period_must_divide_size():
    with pytest.raises(ValueError, match="divides"):
        WindowSpec.sliding(7200, 5000)


def m(entity, sentence):
    return Mention(entity, entity, "GPE", sentence)


def test_pairs_are_capped_to_top_entities_but_tuples_are_exact():
    # X appears 3 times, Y twice, A..C once; tuple members A, B, C.
    mentions = [m("X", 0), m("X", 1), m("X", 2), m("Y", 0), m("Y", 1),
                m("A", 3), m("B", 3), m("C", 3)]
    cooc = article_cooccurrence(mentions, max_entities=2, tracked_tuples=[("A", "B", "C")])
    # Kept: top 2 (X, Y) plus the tuple members A, B, C -> 5 entities, 10 article pairs.
    assert sum(1 for scope, _ in cooc.pairs if scope == "article") == 10
    # Sentences: s0 {X,Y}, s1 {X,Y}, s2 {X}, s3 {A,B,C} -> X-Y twice, A-B, A-C, B-C once.
    assert cooc.pairs[("sentence", ("X", "Y"))] == 2
    assert cooc.pairs[("sentence", ("A", "C"))] == 1
    assert cooc.tuples == {("sentence", ("A", "B", "C")): 1, ("article", ("A", "B", "C")): 1}


def test_cap_drops_pairs_of_rare_entities():
    mentions = [m("X", 0), m("X", 0), m("Y", 0), m("Y", 0), m("Z", 0)]
    cooc = article_cooccurrence(mentions, max_entities=2, tracked_tuples=[])
    assert set(cooc.pairs) == {("sentence", ("X", "Y")), ("article", ("X", "Y"))}
