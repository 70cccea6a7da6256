"""The paced replay's schedule (connectors/pacing.py): send times computed by hand."""
import itertools

import pytest

from connectors.pacing import schedule

HOUR_MS = 3_600_000
# Published at 0 h, 1 h and 3 h (epoch ms 0 is as good a start as any).
ARTICLES = [{"id": "a", "published_at": 0}, {"id": "b", "published_at": HOUR_MS},
            {"id": "c", "published_at": 3 * HOUR_MS}]


def plan(articles=ARTICLES, n=None, **kw):
    sends = schedule(articles, **kw)
    return [(s.at_s, s.article["id"], s.article["published_at"])
            for s in (itertools.islice(sends, n) if n else sends)]


def test_unpaced_sends_everything_at_once_unchanged():
    assert plan() == [(0.0, "a", 0), (0.0, "b", HOUR_MS), (0.0, "c", 3 * HOUR_MS)]


def test_speed_3600_is_an_hour_of_the_feed_per_second():
    # 0 h, 1 h, 3 h of publication time at 3600 s per s: 0 s, 1 s, 3 s.
    assert [at for at, _, _ in plan(speed=3600)] == [0.0, 1.0, 3.0]


def test_speed_below_one_slows_the_feed_down():
    # 1 h of feed at 0.5 s per s: 7200 s.
    assert [at for at, _, _ in plan(speed=0.5)] == [0.0, 7200.0, 21600.0]


def test_rate_spaces_articles_evenly_whatever_their_times():
    assert [at for at, _, _ in plan(rate=2)] == [0.0, 0.5, 1.0]


def test_loop_moves_each_cycle_a_span_later_with_fresh_ids():
    # span = first to last (3 h) + mean gap (3 h / 2 = 1.5 h) = 4.5 h = 16,200,000 ms.
    got = plan(n=7, speed=3600, loop=True)
    assert got == [(0.0, "a", 0), (1.0, "b", HOUR_MS), (3.0, "c", 3 * HOUR_MS),
                   (4.5, "a~c1", 16_200_000), (5.5, "b~c1", 19_800_000),
                   (7.5, "c~c1", 27_000_000), (9.0, "a~c2", 32_400_000)]


def test_loop_with_rate_counts_on_across_cycles():
    assert [(at, i) for at, i, _ in plan(n=5, rate=4, loop=True)] == [
        (0.0, "a"), (0.25, "b"), (0.5, "c"), (0.75, "a~c1"), (1.0, "b~c1")]


def test_rebase_time_moves_the_first_article_to_now_and_keeps_the_gaps():
    now = 1_764_583_200_000  # 2025-12-01 10:00 UTC (date -u -d @1764583200)
    got = plan(rebase_to_ms=now, speed=1)
    assert got == [(0.0, "a", now), (3600.0, "b", now + HOUR_MS), (10800.0, "c", now + 3 * HOUR_MS)]


def test_rebased_loop_shifts_every_cycle():
    got = plan(n=4, rebase_to_ms=1000, loop=True)
    assert [p for _, _, p in got] == [1000, 1000 + HOUR_MS, 1000 + 3 * HOUR_MS, 1000 + 16_200_000]


def test_send_times_never_go_back_for_an_article_out_of_order():
    arts = [{"id": "x", "published_at": 0}, {"id": "y", "published_at": 2 * HOUR_MS},
            {"id": "z", "published_at": HOUR_MS}]
    assert [at for at, _, _ in plan(arts, speed=3600)] == [0.0, 2.0, 2.0]


def test_single_article_loop_advances_one_second_a_cycle():
    got = plan([{"id": "s", "published_at": 5000}], n=3, loop=True, rate=1)
    assert got == [(0.0, "s", 5000), (1.0, "s~c1", 6000), (2.0, "s~c2", 7000)]


def test_input_is_not_changed():
    arts = [dict(a) for a in ARTICLES]
    plan(arts, n=6, loop=True, rebase_to_ms=99)
    assert arts == ARTICLES


@pytest.mark.parametrize("kw, words", [
    (dict(speed=0), "speed must be a number > 0, got 0"),
    (dict(rate=-1), "rate must be a number > 0, got -1"),
    (dict(speed=float("inf")), "speed must be a number > 0"),
    (dict(speed=1, rate=1), "speed or rate, not both"),
])
def test_bad_settings_are_refused_by_name(kw, words):
    with pytest.raises(ValueError, match=words):
        plan(**kw)
