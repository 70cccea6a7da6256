"""Frequent items with a stated error bound: the Misra-Gries summary.

The co-occurrence pair table of a window can hold far more distinct pairs
than are worth keeping. ``FrequentItems(capacity=k)`` keeps at most ``2k``
counters and, when it holds more, subtracts the ``(k+1)``-th largest count
from every counter and drops those left at or below zero (the Misra-Gries
algorithm, with the lazy reduction of Berinde et al. and of Apache
DataSketches' frequent-items sketch). What it reports is bounded:

* every count it holds is a **lower bound**: ``estimate <= true``;
* ``true <= estimate + error``, where ``error`` is the sum of the amounts
  subtracted by the reductions so far, and
  ``error <= (total - held) / (k + 1)``: each reduction takes ``c`` from at
  least ``k + 1`` counters (Misra and Gries 1982; the bound for arbitrary
  merges is Theorem 1 of Agarwal et al., "Mergeable Summaries", PODS 2012:
  a merge adds the counters and the errors, then reduces);
* an item not held has a true count of at most ``error``.

``view()`` reports the ``k`` largest counters held, as they are, without
changing the summary (emitting a pane never changes what later panes say).
A pair it does not report has a true count of at most the smallest
``count_upper`` it reports: either it is not held (true <= ``error``) or its
counter is at most the smallest reported one.

Each item also carries a second, auxiliary count (``articles``: the
articles that brought it) with the same bounds: it is counted exactly while
the item is held, and what a dropped item had brought is at most its
dropped weight (each article brings a weight of at least 1), itself at most
``error``.
"""
import heapq
from typing import Dict, List, NamedTuple

__all__ = ["FrequentItems", "Estimate"]


class Estimate(NamedTuple):
    """One item as reported by ``FrequentItems.view``."""
    item: object
    count: int           # the estimate, a lower bound
    count_upper: int     # the true count is at most this
    articles: int        # lower bound
    articles_upper: int  # upper bound


class FrequentItems:
    """A Misra-Gries summary of ``capacity`` counters; picklable, mergeable.

    Example::

        pairs = FrequentItems(capacity=1000)
        pairs.add(("sentence", ("GPE:japan", "GPE:us")), 2)
        [e.count for e in pairs.view()]   # [2]
    """

    __slots__ = ("capacity", "counters", "total", "error")

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"FrequentItems needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.counters: Dict[object, List[int]] = {}  # item -> [count, articles]
        self.total = 0   # weight added
        self.error = 0   # sum of the reductions: the bound on any item's undercount

    def __getstate__(self):
        return (self.capacity, self.counters, self.total, self.error)

    def __setstate__(self, state):
        self.capacity, self.counters, self.total, self.error = state

    def add(self, item, weight: int = 1, articles: int = 1):
        self.total += weight
        entry = self.counters.get(item)
        if entry is None:
            self.counters[item] = [weight, articles]
            if len(self.counters) > 2 * self.capacity:
                self.error += _reduce(self.counters, self.capacity)
        else:
            entry[0] += weight
            entry[1] += articles

    def merge(self, other: "FrequentItems"):
        """Add ``other`` into this summary (Agarwal et al.: errors add up)."""
        for item, (count, articles) in other.counters.items():
            entry = self.counters.get(item)
            if entry is None:
                self.counters[item] = [count, articles]
            else:
                entry[0] += count
                entry[1] += articles
        self.total += other.total
        self.error += other.error
        if len(self.counters) > 2 * self.capacity:
            self.error += _reduce(self.counters, self.capacity)

    def view(self) -> List[Estimate]:
        """The ``capacity`` largest counters, by estimate (ties by item), with bounds."""
        error = self.error
        ranked = sorted(self.counters.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [Estimate(item, count, count + error, articles, articles + error)
                for item, (count, articles) in ranked[:self.capacity]]


def _reduce(counters: Dict[object, List[int]], k: int) -> int:
    """Subtract the (k+1)-th largest count from every counter, drop those at
    or below zero; return the amount subtracted (at most k counters remain)."""
    cut = heapq.nlargest(k + 1, (entry[0] for entry in counters.values()))[-1]
    for item in [item for item, entry in counters.items() if entry[0] <= cut]:
        del counters[item]
    for entry in counters.values():
        entry[0] -= cut
    return cut
