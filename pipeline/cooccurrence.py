"""Which entities occur together in one article, as plain functions.

For one article's mentions (each with its sentence index):

- ``pairs`` over the article's top ``max_entities`` entities (by mentions,
  ties by id; tracked tuple members always included), each pair of distinct
  ids sorted, with the number of sentences where both occur (scope
  ``sentence``) and 1 if both occur in the article (scope ``article``);
- ``tuples``: for every configured tracked tuple, the number of sentences
  holding all its members and whether the article holds all of them. Tuples
  are counted exactly, whatever ``max_entities`` is.

The cap keeps a long article with hundreds of entities from adding tens of
thousands of pairs: at most ``max_entities * (max_entities - 1) / 2`` pairs
per article (190 at the default 20).
"""
import collections
import itertools
from typing import Dict, Iterable, NamedTuple, Tuple

__all__ = ["ArticleCooccurrence", "article_cooccurrence", "DEFAULT_TUPLES", "SENTENCE", "ARTICLE"]

SENTENCE, ARTICLE = "sentence", "article"
DEFAULT_TUPLES = (("BRIDGE", "NORTH_KOREA", "RUSSIA"),)


class ArticleCooccurrence(NamedTuple):
    # {(scope, (id, id)): count} for pairs; {(scope, tuple): count} for tuples
    pairs: Dict[Tuple[str, Tuple[str, ...]], int]
    tuples: Dict[Tuple[str, Tuple[str, ...]], int]


def article_cooccurrence(mentions: Iterable, max_entities: int = 20,
                         tracked_tuples=DEFAULT_TUPLES) -> ArticleCooccurrence:
    mentions = list(mentions)
    counts = collections.Counter(m.entity_id for m in mentions)
    tuple_members = {e for t in tracked_tuples for e in t}
    ranked = sorted(counts, key=lambda e: (-counts[e], e))
    kept = set(ranked[:max_entities]) | (tuple_members & set(counts))
    by_sentence = collections.defaultdict(set)
    for m in mentions:
        by_sentence[m.sentence_index].add(m.entity_id)
    pairs = collections.Counter()
    for ids in by_sentence.values():
        for pair in itertools.combinations(sorted(ids & kept), 2):
            pairs[(SENTENCE, pair)] += 1
    for pair in itertools.combinations(sorted(kept), 2):
        pairs[(ARTICLE, pair)] += 1
    tuples = {}
    for members in tracked_tuples:
        key = tuple(sorted(members))
        need = set(key)
        sentences = sum(1 for ids in by_sentence.values() if need <= ids)
        if sentences:
            tuples[(SENTENCE, key)] = sentences
        if need <= set(counts):
            tuples[(ARTICLE, key)] = 1
    return ArticleCooccurrence(dict(pairs), tuples)
