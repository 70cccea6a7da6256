"""Surge scores (pipeline/surges.py) on hand-made panes; every expected
number worked out by hand in the comments."""
import pickle

import pytest

from pipeline.records import WindowPane
from pipeline.surges import SurgeDetector, modified_z_score, surge_panes

H = 3_600_000
T = ("BRIDGE", "NORTH_KOREA", "RUSSIA")


def panes(i, total, russia=0, tuple_articles=0, timing="ON_TIME"):
    """The entity_counts and cooccurrence panes of hour ``i``."""
    args = (i * H, (i + 1) * H, timing, 0, True, 0)
    entities = ({"entity_id": "RUSSIA", "articles": russia},) if russia else ()
    cooc = ({"scope": "article", "entities": list(T), "tracked": True,
             "articles": tuple_articles},
            {"scope": "sentence", "entities": list(T), "tracked": True, "articles": 99},
            {"scope": "article", "entities": ["A", "B"], "tracked": False, "articles": 99})
    return [WindowPane("entity_counts", *args, entities, total),
            WindowPane("cooccurrence", *args, cooc if tuple_articles else (), total)]


def detector(**kw):
    return SurgeDetector(**dict(dict(entity_ids=["RUSSIA"], tuples=[T], baseline_windows=4,
                                     min_history=3, threshold=3.5, min_articles=3,
                                     min_spread=0.005), **kw))


def test_modified_z_score_by_hand():
    # baseline 0.1, 0.2, 0.3: median 0.2, deviations 0.1, 0, 0.1: MAD 0.1;
    # 0.6745 * (0.5 - 0.2) / 0.1 = 2.0235
    score, median, spread = modified_z_score(0.5, [0.1, 0.2, 0.3], 0.005)
    assert (round(score, 4), median, round(spread, 4)) == (2.0235, 0.2, 0.1)
    # MAD 0 (never there): the floor; 0.6745 * 0.2 / 0.005 = 26.98
    assert round(modified_z_score(0.2, [0, 0, 0], 0.005)[0], 2) == 26.98


def test_a_burst_of_the_tuple_is_a_surge_and_the_windows_around_it_are_not():
    d, out = detector(), []
    # Hours 0-2: 100 articles, RUSSIA in 10 (share 0.1), the tuple in none.
    for i in range(3):
        out.append(surge_panes(d, panes(i, 100, russia=10), 0))
    # Hour 3: the burst: the tuple in 8 of 100 (share 0.08), RUSSIA in 12 (0.12).
    out.append(surge_panes(d, panes(3, 100, russia=12, tuple_articles=8), 0))
    # Hour 4: back to normal.
    out.append(surge_panes(d, panes(4, 100, russia=10), 0))
    assert [len(o) for o in out] == [0, 0, 0, 1, 0]
    (pane,) = out[3]
    assert (pane.kind, pane.window_start_ms, pane.is_final) == ("surges", 3 * H, True)
    (record,) = pane.records
    # Baseline of the tuple: 0, 0, 0: median 0, MAD 0 -> 0.005;
    # 0.6745 * 0.08 / 0.005 = 10.792. RUSSIA: baseline 0.1 x 3, MAD 0 -> 0.005;
    # 0.6745 * 0.02 / 0.005 = 2.698 < 3.5: not a surge.
    assert record["entities"] == list(T) and record["articles"] == 8
    assert (record["share"], record["baseline"], record["spread"]) == (0.08, 0.0, 0.005)
    assert round(record["score"], 3) == 10.792 and record["baseline_windows"] == 3


def test_a_busy_hour_is_not_a_surge():
    d = detector()
    for i in range(3):
        surge_panes(d, panes(i, 100, russia=10), 0)
    # Ten times the articles, RUSSIA in ten times as many: the same share.
    assert surge_panes(d, panes(3, 1000, russia=100), 0) == []


def test_no_score_without_history_nor_below_min_articles():
    d = detector()
    # Hours 0-1: only 2 windows of history (min 3): hour 2's burst is not scored.
    surge_panes(d, panes(0, 100), 0)
    surge_panes(d, panes(1, 100), 0)
    assert surge_panes(d, panes(2, 100, tuple_articles=50), 0) == []
    # 2 articles of 10 (share 0.2, far above) but fewer than min_articles (3).
    d2 = detector()
    for i in range(3):
        surge_panes(d2, panes(i, 100), 0)
    assert surge_panes(d2, panes(3, 10, tuple_articles=2), 0) == []


def test_each_window_is_observed_once_in_window_order():
    d = detector()
    for i in range(3):
        surge_panes(d, panes(i, 100), 0)
    burst = panes(3, 100, tuple_articles=8)
    assert len(surge_panes(d, burst, 0)) == 1
    assert surge_panes(d, burst, 0) == []                          # again: not scored
    assert surge_panes(d, panes(3, 100, tuple_articles=8, timing="LATE"), 0) == []
    assert surge_panes(d, panes(1, 100, tuple_articles=8), 0) == []   # an older window
    assert len(d.history[("tuple", T)]) == 4                       # 0, 0, 0, 0.08


def test_baseline_is_bounded_and_survives_a_pickle():
    d = detector()
    for i in range(10):
        surge_panes(d, panes(i, 100, russia=i), 0)
    assert list(d.history[("entity", ("RUSSIA",))]) == [0.06, 0.07, 0.08, 0.09]
    restored = pickle.loads(pickle.dumps(d))
    assert restored.history == d.history and restored.last_window_end == 10 * H


@pytest.mark.parametrize("kw", [dict(baseline_windows=0), dict(min_history=5),
                                dict(threshold=0), dict(min_spread=0), dict(min_articles=0)])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError):
        detector(**kw)


def _sample(name, subject):
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value(name, {"subject": subject})


def test_window_gauges_follow_the_newest_closed_window_and_the_counter_starts_at_zero():
    # Subjects no other test uses, so that the process-wide registry holds only these.
    pair = ("ALPHA", "BETA")
    d = SurgeDetector(entity_ids=["ALPHA"], tuples=[pair], baseline_windows=4, min_history=3)

    def window(i, alpha, pair_record):
        args = (i * H, (i + 1) * H, "ON_TIME", 0, True, 0)
        entities = ({"entity_id": "ALPHA", "articles": alpha[0], "stories": alpha[1],
                     "outlets": alpha[2]},)
        cooc = (pair_record,) if pair_record else ()
        cooc += ({"scope": "sentence", "entities": list(pair), "tracked": True,
                  "articles": 99, "stories": 99, "outlets": 99},)   # not the article scope
        return [WindowPane("entity_counts", *args, entities, 10),
                WindowPane("cooccurrence", *args, cooc, 10)]

    def gauges(subject):
        return tuple(_sample(f"entitystream_tracked_window_{f}", subject)
                     for f in ("articles", "stories", "outlets"))
    held = {"scope": "article", "entities": list(pair), "tracked": True, "articles": 2,
            "stories": 1, "outlets": 2}
    surge_panes(d, window(0, (5, 3, 4), held), 0)
    assert gauges("ALPHA") == (5, 3, 4) and gauges("ALPHA x BETA") == (2, 1, 2)
    assert _sample("entitystream_surges_total", "ALPHA x BETA") is None  # not scored yet
    surge_panes(d, window(1, (1, 1, 1), None), 0)   # the pair absent: 0, not the last value
    assert gauges("ALPHA") == (1, 1, 1) and gauges("ALPHA x BETA") == (0, 0, 0)
    surge_panes(d, window(0, (9, 9, 9), held), 0)   # an older window again: no change
    assert gauges("ALPHA") == (1, 1, 1)
    for i in (2, 3):
        surge_panes(d, window(i, (1, 1, 1), None), 0)
    # Window 3 is the first scored (3 earlier windows): no surge, the counter exists at 0,
    # so that Prometheus's increase() sees the first surge when it comes.
    assert _sample("entitystream_surges_total", "ALPHA x BETA") == 0.0
