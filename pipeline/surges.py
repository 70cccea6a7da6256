"""Surges: when a tracked entity or the tracked tuple becomes news.

For each tracked subject (a tracked entity, a tracked tuple) every closed
tumbling window is scored against a trailing baseline of the previous
windows, on its **share** of the window's articles (articles holding it /
every article counted in the window), so that a busy news day is not a
surge. The detector is the modified z-score (Iglewicz and Hoaglin), the
formula of Beam's ``apache_beam.ml.anomaly`` ``RobustZScore``, one-sided::

    score = 0.6745 * (share - median(baseline)) / max(MAD(baseline), min_spread)

A window is a surge when ``score >= threshold`` (default 3.5, Iglewicz and
Hoaglin's cut-off), at least ``min_articles`` articles hold the subject and
the baseline has at least ``min_history`` windows. The baseline is the
shares of the subject in the ``baseline_windows`` windows closed before (a
window without the subject counts as share 0; an hour without any article
opens no window and is not in the baseline). ``min_spread`` keeps a
subject that is almost always absent (MAD 0) from surging on one article.

Why not Beam's detectors themselves: they run here (checked on the
FnApiRunner and Prism 2.75, docs/surges.md), but keep their model in the
runner's per-key state, which a restart after ``kill -9`` does not give
back, and score elements in arrival order. ``SurgeDetector`` is plain data in
the aggregation's checkpointed state, fed in window order by the pane DoFn
when a tumbling window's ON_TIME pane goes out, so a restart scores the same.

**Top pairs** (``top_pairs`` N > 0, ``--surge-top-pairs``): the N largest
article-scope co-occurrence pairs of each closed window (the pair table's
order, tracked tuples left out) are scored too, on the bounds the
Misra-Gries table publishes (``pipeline/heavy_hitters.py``): the window's
share from ``articles_lower``, the baseline from what each earlier window
allows at most, ``articles_upper`` where the pair was among that window's N
largest, else that window's **bound for the pairs it did not keep**: the
N-th pair's ``count_upper`` when it had more than N, else the table's own
bound (the summary's error, 0 for a table never reduced, or the smallest
``count_upper`` when ``top_k_pairs`` pairs were reported). So a pair not in
an earlier table does not count as 0 there but as the most it can have had:
a flagged pair's share is at least what it says and its baseline median at
most. Pairs are not on the Prometheus gauge and counter (their labels would
have no bound).

``SurgeDetector.observe(entity_pane, cooc_pane)`` returns the ``surges``
records (``schemas/surge.avsc``) of that window and every subject's score.
``count_window`` sets the window gauges the dashboard's tracked rows show:
each subject's articles, stories and outlets in the latest closed window.
"""
import statistics
from collections import deque
from typing import Dict, List, NamedTuple, Tuple

from prometheus_client import Counter, Gauge

from pipeline.records import WindowPane

__all__ = ["SurgeDetector", "Scored", "SURGES", "modified_z_score", "SURGE_SCORE",
           "SURGES_TOTAL", "DEFAULT_THRESHOLD", "count_scores", "surge_panes", "count_window", "subject_label",
           "WINDOW_GAUGES"]

SURGES = "surges"
SCALE = 0.6745  # the normal distribution's MAD / sigma, as in Beam's RobustZScore
DEFAULT_THRESHOLD = 3.5

SURGE_SCORE = Gauge("entitystream_surge_score",
                    "The latest closed tumbling window's surge score of each tracked entity "
                    "and tuple (modified z-score of its share of the window's articles).",
                    ["subject"])
SURGES_TOTAL = Counter("entitystream_surges",
                       "Closed tumbling windows in which a tracked entity or tuple surged.",
                       ["subject"])
#: The latest closed tumbling window's figures of each tracked subject, by
#: record field (the dashboard's "articles, stories, outlets" panels).
WINDOW_ARTICLES = Gauge("entitystream_tracked_window_articles",
                        "Articles holding the tracked entity or tuple in the latest closed "
                        "tumbling window.", ["subject"])
WINDOW_STORIES = Gauge("entitystream_tracked_window_stories",
                       "Distinct stories among those articles.", ["subject"])
WINDOW_OUTLETS = Gauge("entitystream_tracked_window_outlets",
                       "Distinct outlets (sources) among those articles.", ["subject"])
WINDOW_GAUGES = {"articles": WINDOW_ARTICLES, "stories": WINDOW_STORIES,
                 "outlets": WINDOW_OUTLETS}


def modified_z_score(value: float, baseline, min_spread: float) -> Tuple[float, float, float]:
    """``(score, median, spread)`` of ``value`` against ``baseline`` (non-empty)."""
    median = statistics.median(baseline)
    mad = statistics.median(abs(x - median) for x in baseline)
    spread = max(mad, min_spread)
    return SCALE * (value - median) / spread, median, spread


class Scored(NamedTuple):
    subject: str   # "RUSSIA", or "BRIDGE x NORTH_KOREA x RUSSIA"
    score: float
    surge: bool


def subject_label(ids) -> str:
    """The ``subject`` label of a tracked entity or tuple's ids (sorted for a tuple)."""
    return " x ".join(ids)


def _by_subject(entity_pane, cooc_pane):
    """``{("entity", (id,)) or ("tuple", ids): record}`` of one window's panes."""
    held = {("entity", (r["entity_id"],)): r for r in entity_pane.records}
    if cooc_pane is not None:
        held.update({("tuple", tuple(r["entities"])): r for r in cooc_pane.records
                     if r["tracked"] and r["scope"] == "article"})
    return held


class SurgeDetector:
    """Baselines of the tracked subjects; picklable plain data.

    Args (keyword-only): ``entity_ids`` (tracked entity ids), ``tuples``
    (tracked tuples, sorted ids), ``baseline_windows`` (default 24),
    ``min_history`` (default 6), ``threshold`` (3.5), ``min_articles`` (3),
    ``min_spread`` (0.005: half a percentage point of the window's articles),
    ``top_pairs`` (default 0: none; N: also the N largest pairs of each
    window) and ``top_k_pairs`` (the pair table's size, default 1000: its
    bound for the pairs it did not report).
    """

    def __init__(self, *, entity_ids, tuples, baseline_windows=24, min_history=6,
                 threshold=DEFAULT_THRESHOLD, min_articles=3, min_spread=0.005, top_pairs=0,
                 top_k_pairs=1000):
        if top_pairs < 0 or top_k_pairs < 1:
            raise ValueError(f"surges need top_pairs >= 0 (0: none) and top_k_pairs >= 1, got "
                             f"{top_pairs} and {top_k_pairs}")
        if baseline_windows < 1 or not 1 <= min_history <= baseline_windows:
            raise ValueError(f"surges need baseline_windows >= 1 and 1 <= min_history <= "
                             f"baseline_windows, got {baseline_windows} and {min_history}")
        if threshold <= 0 or min_spread <= 0 or min_articles < 1:
            raise ValueError(f"surge threshold and min_spread must be > 0 and min_articles "
                             f">= 1, got {threshold}, {min_spread} and {min_articles}")
        self.subjects = ([("entity", (e,)) for e in sorted(entity_ids)]
                         + [("tuple", tuple(sorted(t))) for t in sorted(tuples)])
        self.threshold = threshold
        self.min_history = min_history
        self.min_articles = min_articles
        self.min_spread = min_spread
        self.history: Dict[tuple, deque] = {s: deque(maxlen=baseline_windows)
                                            for s in self.subjects}
        self.last_window_end = None  # ms: the newest window observed (no window twice)
        self.top_pairs, self.top_k_pairs = top_pairs, top_k_pairs
        # The earlier windows' pair tables, as far as top pairs need them.
        self.pair_history: deque = deque(maxlen=baseline_windows)

    def settings(self):
        """What a checkpoint's detector must share with this run's to be kept."""
        top_pairs = getattr(self, "top_pairs", 0)   # 0 in checkpoints from before top pairs
        return (self.subjects, self.threshold, top_pairs,
                self.top_k_pairs if top_pairs else None)

    def observe(self, entity_pane, cooc_pane) -> Tuple[List[dict], List[Scored]]:
        """Score the window of ``entity_pane`` (its ``entity_counts`` pane) and
        ``cooc_pane`` (its ``cooccurrence`` pane, or None); then add it to the
        baselines. Returns ``(surge records, every subject's Scored)``."""
        end = entity_pane.window_end_ms
        if self.last_window_end is not None and end <= self.last_window_end:
            return [], []   # already observed (a LATE pane, or re-emitted after a restart)
        self.last_window_end = end
        total = entity_pane.total_articles or 0
        held = {s: r["articles"] for s, r in _by_subject(entity_pane, cooc_pane).items()}
        records, scored = [], []
        for subject in self.subjects:
            articles = held.get(subject, 0)
            share = articles / total if total else 0.0
            history = self.history[subject]
            if len(history) >= self.min_history:
                score, median, spread = modified_z_score(share, history, self.min_spread)
                surge = score >= self.threshold and articles >= self.min_articles
                scored.append(Scored(subject_label(subject[1]), score, surge))
                if surge:
                    records.append({
                        "subject": subject[0], "tracked": True, "entities": list(subject[1]),
                        "articles": articles, "total_articles": total, "share": share,
                        "baseline": median, "spread": spread,
                        "baseline_windows": len(history), "score": score,
                        "threshold": self.threshold})
            history.append(share)
        if getattr(self, "top_pairs", 0):
            records += self._score_pairs(cooc_pane, total)
        return records, scored

    def _score_pairs(self, cooc_pane, total) -> List[dict]:
        """The surges among the window's top pairs (module docstring), then
        the window's table added to the pairs' baseline."""
        rows = [r for r in (cooc_pane.records if cooc_pane is not None else ())
                if not r["tracked"]]
        pairs = [r for r in rows if r["scope"] == "article"]
        tracked = {ids for _, ids in self.subjects}
        top = [r for r in pairs if tuple(r["entities"]) not in tracked][:self.top_pairs]
        records = []
        for r in top if total and len(self.pair_history) >= self.min_history else ():
            ids = tuple(r["entities"])
            baseline = [seen.get(ids, bound) / earlier
                        for earlier, bound, seen in self.pair_history]
            share = r["articles_lower"] / total
            score, median, spread = modified_z_score(share, baseline, self.min_spread)
            if score >= self.threshold and r["articles_lower"] >= self.min_articles:
                records.append({
                    "subject": "tuple", "tracked": False, "entities": list(ids),
                    "articles": r["articles_lower"], "total_articles": total, "share": share,
                    "baseline": median, "spread": spread,
                    "baseline_windows": len(baseline), "score": score,
                    "threshold": self.threshold})
        if total:
            self.pair_history.append((total, self._unkept_bound(rows, pairs, top),
                                      {tuple(r["entities"]): r["articles_upper"] for r in top}))
        return records

    def _unkept_bound(self, rows, pairs, top) -> int:
        """The most articles a pair outside ``top`` can have had in the window."""
        if len(pairs) > len(top) and top:   # ranked by count: below the N-th pair
            return top[-1]["count_upper"]
        if not rows:
            return 0   # no pair (a table a reduction emptied claims none: 0 too)
        if len(rows) >= self.top_k_pairs:   # the view was cut at top_k_pairs
            return min(r["count_upper"] for r in rows)
        return rows[0]["count_upper"] - rows[0]["count_lower"]   # the summary's error


def count_scores(scored: List[Scored]):
    """The Prometheus gauge and counter for one window's scores."""
    for s in scored:
        SURGE_SCORE.labels(s.subject).set(s.score)
        # Created at 0 once scored, so that increase() sees a subject's first surge.
        surges = SURGES_TOTAL.labels(s.subject)
        if s.surge:
            surges.inc()


def count_window(subjects, entity_pane, cooc_pane):
    """Set ``WINDOW_GAUGES`` of each of ``subjects`` (``SurgeDetector.subjects``) to
    its articles, stories and outlets in this closed window (0 where absent)."""
    held = _by_subject(entity_pane, cooc_pane)
    for subject in subjects:
        record = held.get(subject, {})
        for field, gauge in WINDOW_GAUGES.items():
            gauge.labels(subject_label(subject[1])).set(record.get(field) or 0)


def surge_panes(detector, panes, now_ms, scored_out=None):
    """Feed ``detector`` the ON_TIME panes of tumbling windows among ``panes``
    (in window order); the ``surges`` panes of the windows with a surge.
    ``scored_out``: a list to extend with every ``Scored`` (measurements)."""
    by_window = {}
    for pane in panes:
        if pane.pane_timing == "ON_TIME" and pane.kind in ("entity_counts", "cooccurrence"):
            by_window.setdefault((pane.window_start_ms, pane.window_end_ms), {})[pane.kind] = pane
    out = []
    for (start, end), kinds in sorted(by_window.items()):
        if "entity_counts" not in kinds:
            continue
        newer = detector.last_window_end is None or end > detector.last_window_end
        records, scored = detector.observe(kinds["entity_counts"], kinds.get("cooccurrence"))
        count_scores(scored)
        if newer:
            count_window(detector.subjects, kinds["entity_counts"], kinds.get("cooccurrence"))
        if scored_out is not None:
            scored_out.extend(scored)
        if records:
            out.append(WindowPane(SURGES, start, end, "ON_TIME", 0, True, now_ms,
                                  tuple(records)))
    return out
