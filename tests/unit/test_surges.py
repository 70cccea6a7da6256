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


# Top pairs (--surge-top-pairs): hand-made pair tables. Each pane holds the
# tracked tuple's row (ignored here), a sentence-scope row, then article-scope
# pairs in the table's order (by count); ``error`` is the summary's error
# (count_upper - count_lower, the same for every pair of a window).
AB, CD = ["A", "B"], ["C", "D"]


def pair_panes(i, total, pairs, error=0, sentence=1):
    args = (i * H, (i + 1) * H, "ON_TIME", 0, True, 0)
    rows = [{"scope": "article", "entities": list(T), "tracked": True, "articles": 0}]
    if sentence:
        rows.append({"scope": "sentence", "entities": AB, "tracked": False, "count": sentence,
                     "count_lower": sentence, "count_upper": sentence + error,
                     "articles_lower": sentence, "articles_upper": sentence + error})
    rows += [{"scope": "article", "entities": ids, "tracked": False, "count": n,
              "count_lower": n, "count_upper": n + error, "articles_lower": n,
              "articles_upper": n + error} for ids, n in pairs]
    rows.sort(key=lambda r: (not r["tracked"], -r.get("count", 0)))
    return [WindowPane("entity_counts", *args, (), total),
            WindowPane("cooccurrence", *args, tuple(rows), total)]


def pair_surges(d, hours):
    return [[r for pane in surge_panes(d, p, 0) for r in pane.records] for p in hours]


def test_a_top_pair_absent_from_the_earlier_top_counts_at_the_nth_pairs_bound():
    quiet = [pair_panes(i, 100, [(AB, 10), (CD, 2)]) for i in range(3)]
    burst = pair_panes(3, 100, [(CD, 20), (AB, 10)])
    # N = 1: C+D was not among hours 0-2's top 1; what it can have had there is
    # at most A+B's count_upper, 10: baseline 0.1, 0.1, 0.1 (MAD 0 -> 0.005);
    # 0.6745 * (0.2 - 0.1) / 0.005 = 13.49.
    *before, (record,) = pair_surges(detector(top_pairs=1), quiet + [burst])
    assert before == [[], [], []]
    assert (record["entities"], record["subject"], record["tracked"]) == (CD, "tuple", False)
    assert (record["articles"], record["share"], record["baseline"]) == (20, 0.2, 0.1)
    assert round(record["score"], 2) == 13.49
    # N = 2: C+D was kept with articles_upper 2: baseline 0.02;
    # 0.6745 * 0.18 / 0.005 = 24.282. A+B: share 0.1, baseline 0.1: score 0.
    *_, (record,) = pair_surges(detector(top_pairs=2), quiet + [burst])
    assert (record["entities"], record["baseline"]) == (CD, 0.02)
    assert round(record["score"], 3) == 24.282


@pytest.mark.parametrize("error, top_k, score", [
    (0, 1000, 6.745),   # a table never reduced: an absent pair had 0; 0.6745 * 0.05 / 0.005
    (2, 1000, 4.047),   # the summary's error 2 bounds it: 0.6745 * (0.05 - 0.02) / 0.005
    # The view cut at top_k 2 (A+B's article row 10 and sentence row 4): at most
    # the smallest count_upper, 4: 0.6745 * (0.05 - 0.04) / 0.005 = 1.349 < 3.5.
    (0, 2, None)])
def test_a_pair_outside_a_short_table_counts_at_the_tables_bound(error, top_k, score):
    sentence = 4 if top_k == 2 else 0
    quiet = [pair_panes(i, 100, [(AB, 10)], error=error, sentence=sentence) for i in range(3)]
    burst = pair_panes(3, 100, [(CD, 5), (AB, 4)])
    found = pair_surges(detector(top_pairs=3, top_k_pairs=top_k), quiet + [burst])[-1]
    if score is None:
        assert found == []
    else:
        (record,) = found
        assert record["entities"] == CD and round(record["score"], 3) == score


def test_top_pairs_leave_the_tracked_subjects_and_need_min_articles():
    # A 2-entity tracked tuple is scored as tracked, not again as a pair; and
    # 2 articles (fewer than min_articles 3) is no surge whatever the share.
    d = detector(tuples=[AB], top_pairs=2)
    quiet = [pair_panes(i, 100, []) for i in range(3)]
    burst = pair_panes(3, 10, [(AB, 9), (CD, 2)], sentence=0)
    assert pair_surges(d, quiet + [burst])[-1] == []


def test_a_checkpointed_detector_from_before_top_pairs_still_scores():
    d = detector()
    for name in ("top_pairs", "top_k_pairs", "pair_history"):
        delattr(d, name)   # as unpickled from a checkpoint written before them
    assert d.settings() == detector().settings() != detector(top_pairs=5).settings()
    for i in range(3):
        surge_panes(d, panes(i, 100), 0)
    assert len(surge_panes(d, panes(3, 100, tuple_articles=8), 0)) == 1
