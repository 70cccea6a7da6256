"""The Misra-Gries pair summary (pipeline/heavy_hitters.py): a hand-worked
reduction, and the published bounds checked against exact counts on
generated streams (the exact counts come from collections.Counter)."""
import collections
import pickle
import random

import pytest

from pipeline.heavy_hitters import FrequentItems


def test_reduction_by_hand():
    s = FrequentItems(capacity=2)
    for item in "aaabbcd":
        s.add(item)
    # 4 items held = 2k: no reduction yet, every count exact.
    assert s.counters == {"a": [3, 3], "b": [2, 2], "c": [1, 1], "d": [1, 1]} and s.error == 0
    s.add("e")
    # 5 > 2k: the 3rd largest of 3, 2, 1, 1, 1 is 1: c, d, e dropped, a 2, b 1, error 1.
    assert s.counters == {"a": [2, 3], "b": [1, 2]} and s.error == 1
    assert [(e.item, e.count, e.count_upper, e.articles, e.articles_upper)
            for e in s.view()] == [("a", 2, 3, 3, 4), ("b", 1, 2, 2, 3)]


def test_view_reports_the_top_k_without_changing_the_summary():
    s = FrequentItems(capacity=2)
    for item in "aaabbc":
        s.add(item)
    before = pickle.dumps(s)
    # Held: a 3, b 2, c 1, exact (no reduction yet); the view: the top 2.
    assert [(e.item, e.count, e.count_upper) for e in s.view()] == [("a", 3, 3), ("b", 2, 2)]
    assert pickle.dumps(s) == before


def true_within(summary, exact, articles):
    view = summary.view()
    held = {e.item: e for e in view}
    # Not reported: at most the smallest count_upper reported.
    absent_bound = min(e.count_upper for e in view) if view else summary.error
    for item, f in exact.items():
        e = held.get(item)
        if e is None:
            assert f <= absent_bound, (item, f, absent_bound)
        else:
            assert e.count <= f <= e.count_upper, (item, e, f)
            assert e.articles <= articles[item] <= e.articles_upper, (item, e, articles[item])
    return summary.error


@pytest.mark.parametrize("seed", range(20))
def test_bounds_hold_on_skewed_streams_in_any_order(seed):
    rng = random.Random(seed)
    items = [f"p{min(int(rng.paretovariate(1.1)), 400)}" for _ in range(3_000)]
    weights = [rng.randint(1, 3) for _ in items]
    exact, articles = collections.Counter(), collections.Counter()
    for item, w in zip(items, weights):
        exact[item] += w
        articles[item] += 1
    k = 20
    s = FrequentItems(capacity=k)
    for item, w in zip(items, weights):
        s.add(item, w)
    error = true_within(s, exact, articles)
    assert error > 0   # the summary did reduce: the bounds were put to work
    # Misra-Gries: the error is at most (total - held) / (k + 1).
    assert error <= (sum(weights) - sum(c for c, _ in s.counters.values())) / (k + 1)


@pytest.mark.parametrize("seed", range(10))
def test_merged_summaries_keep_the_bounds(seed):
    rng = random.Random(100 + seed)
    parts = [[f"p{min(int(rng.paretovariate(1.2)), 300)}" for _ in range(1_000)]
             for _ in range(3)]
    exact = collections.Counter(x for part in parts for x in part)
    merged = FrequentItems(capacity=15)
    for part in parts:
        s = FrequentItems(capacity=15)
        for item in part:
            s.add(item)
        merged.merge(s)
    true_within(merged, exact, exact)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity >= 1"):
        FrequentItems(capacity=0)
