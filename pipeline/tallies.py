"""What a window counts, as plain typed accumulators (no Beam).

- ``MentionTally``: per entity, mentions, articles, label and surface forms;
  exact. ``tally_article`` makes one article's tally.
- ``CooccurrenceTally``: entity pairs in a ``FrequentItems`` summary
  (``pipeline/heavy_hitters.py``: at most ``top_k`` reported, each with
  lower and upper bounds), tracked tuples exact.

Both merge, so that a sliding window is the sum of its tumbling sub-buckets
(``pipeline/window_book.py``).
"""
from dataclasses import dataclass, field
from typing import Dict, Tuple

from pipeline.heavy_hitters import FrequentItems

__all__ = ["EntityEntry", "MentionTally", "CooccurrenceTally", "tally_article"]


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


@dataclass(slots=True)
class MentionTally:
    """Mentions per entity in one window (or sub-bucket)."""
    entities: Dict[str, EntityEntry] = field(default_factory=dict)

    def add(self, tally):
        """Count one article's ``tally_article``."""
        entities = self.entities
        for entity_id, (count, label, texts) in tally.items():
            entry = entities.get(entity_id)
            if entry is None:
                entities[entity_id] = EntityEntry(count, 1, label, dict(texts))
                continue
            entry.mentions += count
            entry.articles += 1
            for text, n in texts.items():
                entry.texts[text] = entry.texts.get(text, 0) + n

    def merge(self, other: "MentionTally"):
        entities = self.entities
        for entity_id, e in other.entities.items():
            entry = entities.get(entity_id)
            if entry is None:
                entities[entity_id] = EntityEntry(e.mentions, e.articles, e.label, dict(e.texts))
                continue
            entry.mentions += e.mentions
            entry.articles += e.articles
            for text, n in e.texts.items():
                entry.texts[text] = entry.texts.get(text, 0) + n

    def rows(self) -> Tuple[dict, ...]:
        """entity_count records (without window and pane fields), most mentions first."""
        rows = []
        for entity_id, e in self.entities.items():
            # The most frequent surface form; ties broken alphabetically.
            text = min(e.texts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            rows.append({"entity_id": entity_id, "entity_text": text, "entity_label": e.label,
                         "mentions": e.mentions, "articles": e.articles})
        rows.sort(key=lambda r: (-r["mentions"], r["entity_id"]))
        return tuple(rows)


@dataclass(slots=True)
class CooccurrenceTally:
    """Pairs (bounded, ``top_k``) and tracked tuples (exact) of one window."""
    pairs: FrequentItems
    tuples: Dict[tuple, list] = field(default_factory=dict)  # (scope, ids) -> [count, articles]

    @classmethod
    def empty(cls, top_k: int) -> "CooccurrenceTally":
        return cls(FrequentItems(top_k))

    def add(self, cooc):
        """Count one article's ``ArticleCooccurrence``."""
        pairs = self.pairs
        for key, n in cooc.pairs.items():
            pairs.add(key, n)
        for key, n in cooc.tuples.items():
            entry = self.tuples.get(key)
            if entry is None:
                self.tuples[key] = [n, 1]
            else:
                entry[0] += n
                entry[1] += 1

    def merge(self, other: "CooccurrenceTally"):
        self.pairs.merge(other.pairs)
        for key, (n, articles) in other.tuples.items():
            entry = self.tuples.setdefault(key, [0, 0])
            entry[0] += n
            entry[1] += articles

    def rows(self) -> Tuple[dict, ...]:
        """cooccurrence records: tracked tuples (exact), then the top pairs with bounds."""
        rows = []
        for (scope, ids), (count, articles) in sorted(
                self.tuples.items(), key=lambda kv: (-kv[1][0], kv[0])):
            rows.append({"scope": scope, "entities": list(ids), "count": count,
                         "articles": articles, "tracked": True, "count_lower": count,
                         "count_upper": count, "articles_lower": articles,
                         "articles_upper": articles})
        for e in self.pairs.view():
            scope, ids = e.item
            rows.append({"scope": scope, "entities": list(ids), "count": e.count,
                         "articles": e.articles, "tracked": False, "count_lower": e.count,
                         "count_upper": e.count_upper, "articles_lower": e.articles,
                         "articles_upper": e.articles_upper})
        return tuple(rows)
