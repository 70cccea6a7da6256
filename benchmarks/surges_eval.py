"""The surge detector's alarm rate on the untouched Reuters corpus.

Every Reuters-21578 article (publication order) goes through the project's
rules-only extraction with a tracked-entities file, then the window book
(hourly tumbling windows) and the ``SurgeDetector`` exactly as the pane DoFn
feeds it (``pipeline.surges.surge_panes`` on each closed window's ON_TIME
panes), without Beam or Kafka. Reports, per tracked subject, how many windows
were scored and flagged, and the alarm rate per 1,000 scored windows; with
``--top-pairs N`` also how many (window, pair) surges the N largest pairs of
each window gave, per 1,000 windows.

Run::

    .venv/bin/python -m benchmarks.surges_eval [--tracked-entities FILE --tuple A,B,C]
        [--top-pairs N]
"""
import argparse
import collections
import pathlib
import sys

from connectors.replay import read_articles
from pipeline.cooccurrence import article_cooccurrence
from pipeline.entities import article_text, entities_of, load_model
from pipeline.gazetteer import load_tracked_entities
from pipeline.normalise import normalise_text
from pipeline.records import Article, ArticleEntities
from pipeline.surges import SurgeDetector, surge_panes
from pipeline.tallies import tally_article
from pipeline.window_book import WindowBook
from pipeline.windows import WindowSpec

__all__ = ["main", "alarm_rates"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"


class _Art:
    __slots__ = ("article_id", "published_ms", "tally", "cooc")

    def __init__(self, found, tuples):
        self.article_id, self.published_ms = found.article_id, found.published_at_ms
        self.tally = tally_article(found)
        self.cooc = article_cooccurrence(found.mentions, 20, tuples)


TOP_PAIRS = "top pairs"  # the label of the pairs' flagged windows


def alarm_rates(articles, tracked_entities, tuples, threshold=3.5, baseline_windows=24,
                top_pairs=0):
    """``(scored, flagged)`` Counters by subject label over ``articles``;
    ``flagged[TOP_PAIRS]``: surges of the ``top_pairs`` largest pairs."""
    nlp = load_model(tracked_entities=tracked_entities and str(tracked_entities),
                     rules_only=True)
    ids = tuple(load_tracked_entities(tracked_entities).types)
    book = WindowBook(specs=(WindowSpec.tumbling(3600),), allowed_lateness_ms=0,
                      early_firing_ms=None, top_k_pairs=1000)
    detector = SurgeDetector(entity_ids=ids, tuples=tuples, threshold=threshold,
                             baseline_windows=baseline_windows, top_pairs=top_pairs)
    clean = [Article(a["id"], a["source"], None, normalise_text(a["title"]),
                     normalise_text(a["body"]), a["published_at"], "en", "", 0, 0)
             for a in sorted(articles, key=lambda a: a["published_at"])]
    scored, flagged = collections.Counter(), collections.Counter()
    for a, doc in zip(clean, nlp.pipe((article_text(a) for a in clean), batch_size=64)):
        found = ArticleEntities(a.id, a.published_at_ms, tuple(entities_of(doc)))
        book.add(_Art(found, tuples), now_ms=a.published_at_ms)
        # Close what the article has passed, as the watermark would.
        panes = book.close_through(a.published_at_ms - a.published_at_ms % 3_600_000, 0)
        _count(detector, panes, scored, flagged)
    _count(detector, book.close_through(2 ** 62, 0), scored, flagged)
    return scored, flagged


def _count(detector, panes, scored, flagged):
    every = []
    for pane in surge_panes(detector, panes, 0, every):
        flagged[TOP_PAIRS] += sum(1 for r in pane.records if not r["tracked"])
    for s in every:
        scored[s.subject] += 1
        flagged[s.subject] += s.surge


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracked-entities", default=None,
                        help="default: the shipped file (RUSSIA, NORTH_KOREA, BRIDGE)")
    parser.add_argument("--tuple", action="append", default=None, metavar="ID,ID,...")
    parser.add_argument("--threshold", type=float, default=3.5)
    parser.add_argument("--top-pairs", type=int, default=0, metavar="N",
                        help="also score the N largest pairs of each window (default 0)")
    args = parser.parse_args(argv)
    if not REUTERS.is_dir():
        print(f"Reuters-21578 not found at {REUTERS}", file=sys.stderr)
        return 2
    tuples = tuple(tuple(sorted(t.split(","))) for t in (args.tuple or
                                                         ["BRIDGE,NORTH_KOREA,RUSSIA"]))
    articles = list(read_articles([REUTERS]))
    scored, flagged = alarm_rates(articles, args.tracked_entities, tuples, args.threshold,
                                  top_pairs=args.top_pairs)
    pairs = flagged.pop(TOP_PAIRS, 0)
    print(f"{len(articles)} Reuters articles, hourly windows, threshold {args.threshold}")
    print("| subject | windows scored | flagged | per 1,000 |")
    print("|---|---|---|---|")
    for subject in sorted(scored):
        n, f = scored[subject], flagged[subject]
        print(f"| {subject} | {n} | {f} | {1000 * f / n:.1f} |")
    n, f = sum(scored.values()), sum(flagged.values())
    print(f"| all | {n} | {f} | {1000 * f / n:.1f} |")
    if args.top_pairs:
        windows = max(scored.values())
        print(f"top {args.top_pairs} pairs: {pairs} (window, pair) surges in {windows} scored "
              f"windows: {1000 * pairs / windows:.1f} per 1,000 windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
