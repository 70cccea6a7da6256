"""The window book (pipeline/window_book.py) driven directly: no Beam, no
timers, no globals; the time is passed in. Every expected value is worked
out by hand from the test's input (comments show the arithmetic)."""
import pickle
from typing import NamedTuple

import pytest

from pipeline.cooccurrence import article_cooccurrence
from pipeline.records import ArticleEntities, Mention
from pipeline.tallies import tally_article
from pipeline.window_book import WindowBook
from pipeline.windows import RUNNING_END_MS, WindowSpec

H = 3_600_000
M = 60_000
T0 = 1_000 * H   # a whole hour, in ms since the epoch
NOW = 2_000 * H  # the wall clock: after every article here


class Art(NamedTuple):
    article_id: str
    published_ms: int
    tally: dict
    cooc: object


def art(article_id, t_ms, *sentences):
    """An article whose sentences hold the given entity ids."""
    mentions = tuple(Mention(e, e.title(), "GPE", i) for i, ids in enumerate(sentences)
                     for e in ids)
    entities = ArticleEntities(article_id, t_ms, mentions)
    return Art(article_id, t_ms, tally_article(entities),
               article_cooccurrence(mentions, 20, [("A", "B", "C")]))


def book(*specs, lateness_ms=0, early_ms=None, top_k=10):
    specs = specs or (WindowSpec.tumbling(3600), WindowSpec.running())
    return WindowBook(specs=specs, allowed_lateness_ms=lateness_ms, early_firing_ms=early_ms,
                      top_k_pairs=top_k)


def summary(panes, kind):
    """{window start relative to T0 in hours: ((entity, mentions, articles), ...)}."""
    return {(p.window_start_ms - T0) / H: tuple((r["entity_id"], r["mentions"], r["articles"])
                                               for r in p.records)
            for p in panes if p.kind == kind}


def test_sliding_windows_are_sums_of_hourly_buckets_one_bucket_per_article():
    # 2-hour windows every hour. a at 0h10 is in [-1h,1h) and [0h,2h);
    # b at 1h30 in [0h,2h) and [1h,3h); c at 1h50 too.
    b = book(WindowSpec.tumbling(3600), WindowSpec.sliding(7200, 3600), WindowSpec.running())
    b.add(art("a", T0 + 10 * M, ["RUSSIA"]), NOW)
    b.add(art("b", T0 + 90 * M, ["RUSSIA"], ["KOREA"]), NOW)
    b.add(art("c", T0 + 110 * M, ["KOREA"]), NOW)
    # One bucket per article and family: sliding buckets 0h and 1h only.
    buckets = b.snapshot()["families"]["sliding"][1]
    assert sorted((s - T0) / H for s in buckets) == [0, 1]
    panes = b.close_through(T0 + 3 * H, NOW)
    assert summary(panes, "sliding_entity_counts") == {
        -1: (("RUSSIA", 1, 1),),                       # a
        0: (("KOREA", 2, 2), ("RUSSIA", 2, 2)),        # a, b, c: ties by id
        1: (("KOREA", 2, 2), ("RUSSIA", 1, 1)),        # b, c
    }
    assert summary(panes, "entity_counts") == {0: (("RUSSIA", 1, 1),),
                                               1: (("KOREA", 2, 2), ("RUSSIA", 1, 1))}
    assert all(p.pane_timing == "ON_TIME" and p.is_final and p.pane_index == 0 for p in panes
               if p.kind != "running_entity_counts")
    # Every window ended by 3h closed; the running total stays open.
    assert len(b) == 1 and not b.snapshot()["families"]["sliding"][1]


def test_on_time_pane_when_the_watermark_reaches_the_end_not_before():
    b = book()
    b.add(art("a", T0 + 10 * M, ["RUSSIA"]), NOW)
    assert b.close_through(T0 + H - 1, NOW) == []          # 1 ms short of the end
    (counts, cooc) = b.close_through(T0 + H, NOW)
    assert (counts.kind, counts.pane_timing, counts.is_final) == ("entity_counts", "ON_TIME", True)
    assert cooc.kind == "cooccurrence" and cooc.records == ()   # one entity: no pair
    assert b.close_through(RUNNING_END_MS, NOW)[0].kind == "running_entity_counts"
    assert len(b) == 0


def test_allowed_lateness_late_pane_then_expiry_then_late_article():
    b = book(WindowSpec.tumbling(3600), lateness_ms=30 * M)
    b.add(art("a", T0 + 10 * M, ["RUSSIA"]), NOW)
    on_time = b.close_through(T0 + H, NOW)
    assert [(p.pane_timing, p.is_final, p.pane_index) for p in on_time] == [
        ("ON_TIME", False, 0), ("ON_TIME", False, 0)]      # entity counts, co-occurrence
    # 20 min after the end, within the 30 min lateness: still counted.
    assert b.add(art("b", T0 + 20 * M, ["RUSSIA"]), NOW).outcome == "aggregated"
    late = b.dirty_panes(NOW)
    assert [(p.pane_timing, p.is_final, p.pane_index) for p in late][0] == ("LATE", False, 1)
    assert summary(late, "entity_counts") == {0: (("RUSSIA", 2, 2),)}
    # The window expires at end + lateness: a final LATE pane.
    assert b.next_event_time() == T0 + H + 30 * M
    final = b.close_through(T0 + H + 30 * M, NOW)
    assert [(p.pane_timing, p.is_final, p.pane_index) for p in final][0] == ("LATE", True, 2)
    # Now too late: a late-article record; closed through 1h30, expired at 1h30.
    added = b.add(art("c", T0 + 5 * M, ["RUSSIA"]), NOW + 7)
    assert added.outcome == "late"
    assert added.late == {"article_id": "c", "published_at": T0 + 5 * M, "expired_windows": 1,
                          "counted_windows": 0, "late_by_at_least_ms": 0,
                          "detected_at": NOW + 7}


def test_late_for_some_sliding_windows_counted_in_the_others():
    # 2-hour windows every hour, closed through 1h: [-1h,1h) is gone. An
    # article at 0h30 is late for it but still counts in [0h,2h) and the
    # running total (the tumbling [0h,1h) expired too).
    b = book(WindowSpec.tumbling(3600), WindowSpec.sliding(7200, 3600), WindowSpec.running())
    b.add(art("a", T0 + 10 * M, ["RUSSIA"]), NOW)
    b.close_through(T0 + H, NOW)
    added = b.add(art("b", T0 + 30 * M, ["KOREA"]), NOW)
    assert added.outcome == "late"
    assert (added.late["expired_windows"], added.late["counted_windows"]) == (2, 2)
    # Closed through 1h; the earliest expired window ends at 1h.
    assert added.late["late_by_at_least_ms"] == 0
    panes = b.close_through(T0 + 2 * H, NOW)
    assert summary(panes, "sliding_entity_counts") == {0: (("KOREA", 1, 1), ("RUSSIA", 1, 1))}


def test_duplicate_id_in_its_tumbling_window_is_not_counted_again():
    b = book()
    assert b.add(art("a", T0 + 1, ["RUSSIA"]), NOW).outcome == "aggregated"
    assert b.add(art("a", T0 + 2, ["RUSSIA"]), NOW).outcome == "duplicate"
    assert b.add(art("a", T0 + H + 1, ["RUSSIA"]), NOW).outcome == "aggregated"  # next hour
    panes = b.close_through(RUNNING_END_MS, NOW)
    assert summary(panes, "entity_counts") == {0: (("RUSSIA", 1, 1),), 1: (("RUSSIA", 1, 1),)}
    assert summary(panes, "running_entity_counts") == {-1000: (("RUSSIA", 2, 2),)}


def test_early_panes_only_for_windows_with_news_on_the_cadence():
    b = book(WindowSpec.tumbling(3600), early_ms=5_000)
    assert b.next_processing_time() == 5_000          # nothing emitted yet: due at 0 + 5 s
    b.add(art("a", T0 + 1, ["RUSSIA"]), NOW)
    b.add(art("b", T0 + H + 1, ["KOREA"]), NOW)
    first = b.dirty_panes(NOW)
    # Each window gives an entity_counts and a cooccurrence pane.
    assert [(p.kind, (p.window_start_ms - T0) // H, p.pane_timing, p.pane_index)
            for p in first] == [("entity_counts", 0, "EARLY", 0), ("cooccurrence", 0, "EARLY", 0),
                                ("entity_counts", 1, "EARLY", 0), ("cooccurrence", 1, "EARLY", 0)]
    assert b.next_processing_time() == NOW + 5_000
    assert b.dirty_panes(NOW + 5_000) == []           # no news
    b.add(art("c", T0 + H + 2, ["KOREA"]), NOW)
    again = b.dirty_panes(NOW + 10_000)
    assert [(p.window_start_ms - T0) // H for p in again] == [1, 1]
    assert again[0].pane_index == 1 and again[0].records[0]["mentions"] == 2


def test_next_event_time_is_the_end_of_the_open_window_in_a_live_feed():
    b = book(WindowSpec.tumbling(3600))
    b.add(art("a", T0 + 30 * M, ["X"]), NOW)
    assert b.next_event_time() == T0 + H
    # The first article of the next hour: still the end of the first window.
    b.add(art("b", T0 + H + 500, ["X"]), NOW)
    assert b.next_event_time() == T0 + H


def test_next_event_time_batches_every_boundary_a_replay_has_passed():
    # Open windows from 0h; counted articles up to 5h20: one firing at 5h
    # closes the five hours before it (hourly boundaries).
    b = book(WindowSpec.tumbling(3600), WindowSpec.sliding(86400, 3600), WindowSpec.running())
    for i, minutes in enumerate((10, 70, 200, 320)):
        b.add(art(f"a{i}", T0 + minutes * M, ["X"]), NOW)
    assert b.next_event_time() == T0 + 5 * H


def test_boundaries_follow_the_finest_period():
    # 30-min tumbling windows and hourly sliding ones: boundaries every 30 min.
    b = book(WindowSpec.tumbling(1800), WindowSpec.sliding(7200, 3600))
    b.add(art("a", T0 + 1, ["X"]), NOW)
    b.add(art("b", T0 + 2 * H + 45 * M, ["X"]), NOW)
    assert b.next_event_time() == T0 + 2 * H + 30 * M


def test_future_article_counts_as_the_clock_for_batching():
    # Published 10 h ahead of the clock: the newest time is the clock, so the
    # tick is not batched past boundaries the feed has not reached.
    b = book(WindowSpec.tumbling(3600))
    b.add(art("a", T0 + 10 * M, ["X"]), NOW)
    b.add(art("f", T0 + 10 * H, ["X"]), T0 + 20 * M)
    assert b.newest_ms == T0 + 20 * M and b.next_event_time() == T0 + H


def test_pairs_and_tracked_tuples_with_bounds():
    b = book(WindowSpec.tumbling(3600), top_k=10)
    # a: A, B, C in one sentence; b: A, B in one sentence, C in another.
    b.add(art("a", T0 + 1, ["A", "B", "C"]), NOW)
    b.add(art("b", T0 + 2, ["A", "B"], ["C"]), NOW)
    (_, cooc) = b.close_through(T0 + H, NOW)
    rows = {(r["scope"], tuple(r["entities"]), r["tracked"]):
            (r["count"], r["articles"], r["count_lower"], r["count_upper"]) for r in cooc.records}
    # Tuple A-B-C: sentences a/s0 = 1; articles a, b = 2. Exact: bounds equal.
    assert rows[("sentence", ("A", "B", "C"), True)] == (1, 1, 1, 1)
    assert rows[("article", ("A", "B", "C"), True)] == (2, 2, 2, 2)
    # Sentence pairs: A-B in a/s0 and b/s0 = 2; A-C only in a/s0 = 1.
    assert rows[("sentence", ("A", "B"), False)] == (2, 2, 2, 2)
    assert rows[("sentence", ("A", "C"), False)] == (1, 1, 1, 1)
    assert rows[("article", ("B", "C"), False)] == (2, 2, 2, 2)


def test_snapshot_restore_then_go_on_equals_going_on():
    settings = dict(specs=(WindowSpec.tumbling(3600), WindowSpec.sliding(7200, 3600),
                           WindowSpec.running()),
                    allowed_lateness_ms=10 * M, early_firing_ms=1_000, top_k_pairs=2)
    first = [art("a", T0 + 1, ["A", "B"]), art("b", T0 + 2, ["A", "C"])]
    later = [art("c", T0 + H + 3, ["B", "C"]), art("d", T0 + 4, ["A", "B"])]
    straight, resumed = WindowBook(**settings), WindowBook(**settings)
    for a in first:
        straight.add(a, NOW)
        resumed.add(a, NOW)
    straight.dirty_panes(NOW)
    resumed.dirty_panes(NOW)
    resumed = WindowBook.restore(pickle.loads(pickle.dumps(resumed.snapshot())), **settings)
    for a in later:
        assert straight.add(a, NOW) == resumed.add(a, NOW)
    assert straight.close_through(RUNNING_END_MS, NOW) == resumed.close_through(RUNNING_END_MS, NOW)


def test_restore_with_other_windows_is_refused():
    saved = book(WindowSpec.tumbling(3600)).snapshot()
    with pytest.raises(ValueError, match="same window flags"):
        WindowBook.restore(saved, specs=(WindowSpec.tumbling(1800),), allowed_lateness_ms=0,
                           early_firing_ms=None, top_k_pairs=10)


def test_keeps_pane_files_the_book_accounts_for():
    b = book(WindowSpec.tumbling(3600), early_ms=1_000)
    b.add(art("a", T0 + 1, ["X"]), NOW)
    b.close_through(T0, NOW)                               # nothing ends by T0
    b.dirty_panes(NOW)                                     # pane 0 of [0h, 1h)
    assert b.keeps_pane("entity_counts", T0, T0 + H, 0)
    assert not b.keeps_pane("entity_counts", T0, T0 + H, 1)        # written after: discard
    assert not b.keeps_pane("entity_counts", T0 + H, T0 + 2 * H, 0)  # opened after
    assert b.keeps_pane("entity_counts", T0 - H, T0, 3)             # closed before
    assert b.keeps_pane("late_articles", 0, 0, 0)                   # not a window kind
