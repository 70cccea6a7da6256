"""What a window counts, as plain typed accumulators (no Beam).

- ``MentionTally``: per entity, mentions, articles, distinct stories
  (``pipeline/stories.py``) and outlets (``source`` values), label and
  surface forms; exact. ``tally_article`` makes one article's tally.
- ``CooccurrenceTally``: entity pairs in a ``FrequentItems`` summary
  (``pipeline/heavy_hitters.py``: at most ``top_k`` reported, each with
  lower and upper bounds; stories and outlets as lower bounds), tracked
  tuples exact (stories and outlets too).

Both merge, so that a sliding window is the sum of its tumbling sub-buckets
(``pipeline/window_book.py``).
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

from pipeline.heavy_hitters import FrequentItems

__all__ = ["EntityEntry", "MentionTally", "CooccurrenceTally", "tally_article",
           "count_by_source", "source_rows", "UNKNOWN_SOURCE"]

UNKNOWN_SOURCE = "(none)"  # an article without a source, in the per-outlet breakdown


def tally_article(article_entities):
    """Per-entity tally of one article: ``{id: (mentions, label, {text: n})}``."""
    tally = {}
    for m in article_entities.mentions:
        count, label, texts = tally.get(m.entity_id, (0, m.label, {}))
        texts[m.text] = texts.get(m.text, 0) + 1
        tally[m.entity_id] = (count + 1, label, texts)
    return tally


@dataclass(slots=True)
class EntityEntry:
    mentions: int
    articles: int
    label: str
    texts: Dict[str, int]
    stories: Set[str] = field(default_factory=set)
    outlets: Set[str] = field(default_factory=set)


def _note(stories, outlets, story, outlet):
    if story is not None:
        stories.add(story)
    if outlet is not None:
        outlets.add(outlet)


@dataclass(slots=True)
class MentionTally:
    """Mentions per entity in one window (or sub-bucket)."""
    entities: Dict[str, EntityEntry] = field(default_factory=dict)

    def add(self, tally, story: Optional[str] = None, outlet: Optional[str] = None):
        """Count one article's ``tally_article``, of ``story`` from ``outlet``."""
        entities = self.entities
        for entity_id, (count, label, texts) in tally.items():
            entry = entities.get(entity_id)
            if entry is None:
                entry = entities[entity_id] = EntityEntry(count, 1, label, dict(texts))
                _note(entry.stories, entry.outlets, story, outlet)
                continue
            entry.mentions += count
            entry.articles += 1
            _note(entry.stories, entry.outlets, story, outlet)
            for text, n in texts.items():
                entry.texts[text] = entry.texts.get(text, 0) + n

    def merge(self, other: "MentionTally"):
        entities = self.entities
        for entity_id, e in other.entities.items():
            entry = entities.get(entity_id)
            if entry is None:
                entities[entity_id] = EntityEntry(e.mentions, e.articles, e.label, dict(e.texts),
                                                  set(e.stories), set(e.outlets))
                continue
            entry.mentions += e.mentions
            entry.articles += e.articles
            entry.stories |= e.stories
            entry.outlets |= e.outlets
            for text, n in e.texts.items():
                entry.texts[text] = entry.texts.get(text, 0) + n

    def rows(self) -> Tuple[dict, ...]:
        """entity_count records (without window and pane fields), most mentions first."""
        rows = []
        for entity_id, e in self.entities.items():
            # The most frequent surface form; ties broken alphabetically.
            text = min(e.texts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            rows.append({"entity_id": entity_id, "entity_text": text, "entity_label": e.label,
                         "mentions": e.mentions, "articles": e.articles,
                         "stories": len(e.stories), "outlets": len(e.outlets)})
        rows.sort(key=lambda r: (-r["mentions"], r["entity_id"]))
        return tuple(rows)


@dataclass(slots=True)
class CooccurrenceTally:
    """Pairs (bounded, ``top_k``) and tracked tuples (exact) of one window."""
    pairs: FrequentItems
    # (scope, ids) -> [count, articles, {story ids}, {outlets}]
    tuples: Dict[tuple, list] = field(default_factory=dict)

    @classmethod
    def empty(cls, top_k: int) -> "CooccurrenceTally":
        return cls(FrequentItems(top_k))

    def add(self, cooc, story: Optional[str] = None, outlet: Optional[str] = None):
        """Count one article's ``ArticleCooccurrence``, of ``story`` from ``outlet``."""
        pairs = self.pairs
        for key, n in cooc.pairs.items():
            pairs.add(key, n, 1, story, outlet)
        for key, n in cooc.tuples.items():
            entry = self.tuples.get(key)
            if entry is None:
                entry = self.tuples[key] = [n, 1, set(), set()]
            else:
                entry[0] += n
                entry[1] += 1
            _note(entry[2], entry[3], story, outlet)

    def merge(self, other: "CooccurrenceTally"):
        self.pairs.merge(other.pairs)
        for key, (n, articles, stories, outlets) in other.tuples.items():
            entry = self.tuples.setdefault(key, [0, 0, set(), set()])
            entry[0] += n
            entry[1] += articles
            entry[2] |= stories
            entry[3] |= outlets

    def rows(self) -> Tuple[dict, ...]:
        """cooccurrence records: tracked tuples (exact), then the top pairs with bounds."""
        rows = []
        for (scope, ids), (count, articles, stories, outlets) in sorted(
                self.tuples.items(), key=lambda kv: (-kv[1][0], kv[0])):
            rows.append({"scope": scope, "entities": list(ids), "count": count,
                         "articles": articles, "tracked": True, "count_lower": count,
                         "count_upper": count, "articles_lower": articles,
                         "articles_upper": articles, "stories": len(stories),
                         "outlets": len(outlets)})
        for e in self.pairs.view():
            scope, ids = e.item
            rows.append({"scope": scope, "entities": list(ids), "count": e.count,
                         "articles": e.articles, "tracked": False, "count_lower": e.count,
                         "count_upper": e.count_upper, "articles_lower": e.articles,
                         "articles_upper": e.articles_upper, "stories": e.stories,
                         "outlets": e.outlets})
        return tuple(rows)


def count_by_source(table, article, story, outlet, tracked_ids):
    """Add ``article``'s tracked entities and tracked tuples (article scope)
    to the per-outlet ``table``: ``(outlet, ("entity", id) or ("tuple", ids))
    -> [mentions or count, articles, {stories}]``."""
    outlet = outlet or UNKNOWN_SOURCE
    found = [(("entity", (entity_id,)), count)
             for entity_id, (count, _, _) in article.tally.items() if entity_id in tracked_ids]
    found += [(("tuple", ids), n) for (scope, ids), n in article.cooc.tuples.items()
              if scope == "article"]
    for subject, n in found:
        entry = table.get((outlet, subject))
        if entry is None:
            entry = table[(outlet, subject)] = [0, 0, set()]
        entry[0] += n
        entry[1] += 1
        if story is not None:
            entry[2].add(story)


def source_rows(table) -> Tuple[dict, ...]:
    """source_count records (schemas/source_count.avsc), by outlet then subject."""
    return tuple({"source": outlet, "subject": subject_kind, "entities": list(ids),
                  "count": n, "articles": articles, "stories": len(stories)}
                 for (outlet, (subject_kind, ids)), (n, articles, stories)
                 in sorted(table.items()))
