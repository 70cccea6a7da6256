"""Near-duplicate stories: which articles are copies of one story.

An outlet that republishes a wire story changes its headline, drops a
paragraph, adds its boilerplate, changes a few words. Counting each copy
again inflates every count; this module says which articles are one story,
so that the aggregation can count ``stories`` (distinct) beside ``articles``.

- ``story_signature(body)``: a ``Signature``: how many distinct shingles the
  body has and their MinHash (``datasketch``, 256 permutations, fixed seed);
  shingles are the body's normalised word n-grams (lower-cased words of
  letters and digits, ``SHINGLE_WORDS`` at a time).
  The headline is left out on purpose: outlets rewrite it. A pure function
  of the text, computed in parallel before the aggregation (``SignStories``).
- ``StoryIndex``: the articles seen within the horizon, in LSH bands of
  their signatures. ``assign(article_id, published_ms, signature)`` returns
  the article's ``story_id``: the story of the most similar indexed article
  whose estimated **containment** is at least ``threshold`` and whose
  publication time is within ``horizon_ms`` of this one (ties: the earlier
  published, then the smaller id), else the article's own id (a new story:
  a story's id is the first article seen of it). Containment is the share
  of the smaller article's shingles that the other has:
  ``|A & B| / min(|A|, |B|)``, from the MinHash estimate ``J`` of the
  Jaccard similarity and the two sizes (``|A & B| = J (|A| + |B|) / (1 + J)``).
  Containment, not Jaccard, because an outlet that drops the last paragraph
  or adds its boilerplate keeps most of the story but changes the union
  (docs/stories.md has both measured). Candidates come from LSH bands tuned
  for Jaccard ``CANDIDATE_JACCARD`` (0.2; 85 bands of 3 of the 256 values):
  a copy keeping 60 % of a story half its length or more is at 0.25 or more. The decision is a pure
  function of the index and the article, and the index is plain data that
  the aggregation's checkpoint holds (``pipeline/checkpointer.py``), so a
  restart after ``kill -9`` gives the same story ids for the same input order.
  (With several partitions the order among them may differ after a restart:
  then which copy of a story came first, hence its id, may differ; the
  number of stories only where a copy sits between two thresholds' worth of
  its relatives.)

Bounds: the index holds at most ``max_articles`` articles (the oldest
inserted go first) and forgets an article once the newest publication time
seen is more than ``horizon_ms`` past it, from the oldest inserted (an
article published out of order waits for those inserted before it). An
entry is about 2.5 KiB (1 KiB of signature, 85 band keys and ids).

How the default threshold was chosen: ``benchmarks/stories_eval.py``, results
in docs/stories.md.
"""
import functools
import itertools
import re
from typing import Dict, List, NamedTuple, Optional

import apache_beam as beam
import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param

__all__ = ["story_signature", "shingles", "similarity", "containment", "Signature",
           "StoryIndex", "SignStories", "CANDIDATE_JACCARD",
           "DEFAULT_THRESHOLD", "DEFAULT_HORIZON_SECONDS", "DEFAULT_MAX_ARTICLES",
           "NUM_PERM", "SHINGLE_WORDS"]

NUM_PERM = 256
SHINGLE_WORDS = 4
SEED = 1
DEFAULT_THRESHOLD = 0.55         # docs/stories.md: chosen from benchmarks/stories_eval.py
CANDIDATE_JACCARD = 0.2          # what the LSH bands are tuned for
DEFAULT_HORIZON_SECONDS = 3 * 86400
DEFAULT_MAX_ARTICLES = 200_000
_WORD = re.compile(r"[^\W_]+")
SCHEME = "affine32"  # datasketch 2.0.0's default, named: signatures of other schemes differ
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME).permutations  # read-only


def shingles(text: str, words: int = SHINGLE_WORDS) -> List[bytes]:
    """The text's word ``words``-grams, lower-cased, as UTF-8 bytes (a text
    shorter than that: one shingle of all its words; no words: none)."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) <= words:
        return [" ".join(tokens).encode("utf-8")] if tokens else []
    return [" ".join(tokens[i:i + words]).encode("utf-8")
            for i in range(len(tokens) - words + 1)]


class Signature(NamedTuple):
    """What the index needs of an article's body."""
    shingles: int   # distinct shingles
    values: bytes   # the MinHash: NUM_PERM 32-bit values


def story_signature(body: str, words: int = SHINGLE_WORDS) -> Optional[Signature]:
    """The ``Signature`` of ``body``, or None when the body has no words."""
    grams = set(shingles(body, words))
    if not grams:
        return None
    m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_PERMUTATIONS, scheme=SCHEME)
    m.update_batch(grams)
    return Signature(len(grams), m.hashvalues.astype(np.uint32).tobytes())


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal values)."""
    return float(np.count_nonzero(np.frombuffer(a.values, np.uint32)
                                  == np.frombuffer(b.values, np.uint32)) / NUM_PERM)


def containment(a: Signature, b: Signature) -> float:
    """Estimated share of the smaller one's shingles that the other has."""
    j = similarity(a, b)
    shared = j * (a.shingles + b.shingles) / (1 + j)
    return min(1.0, shared / min(a.shingles, b.shingles))


@functools.lru_cache(maxsize=None)
def _bands_and_rows():
    """The LSH bands for CANDIDATE_JACCARD (datasketch's search: 40 ms CPU, once)."""
    return _optimal_param(CANDIDATE_JACCARD, NUM_PERM, 0.5, 0.5)


class _Entry(NamedTuple):
    published_ms: int
    story_id: str
    signature: Signature


class StoryIndex:
    """Recent articles' signatures in LSH bands; picklable plain data.

    Args (keyword-only): ``threshold`` (estimated containment, 0 < t < 1),
    ``horizon_ms`` (publication-time distance within which copies are one
    story), ``max_articles`` (the index's bound).

    Example::

        index = StoryIndex(threshold=0.5, horizon_ms=3 * 86_400_000, max_articles=200_000)
        index.assign("a1", published_ms, story_signature(body))   # "a1": a new story
        index.assign("a2", published_ms, story_signature(copy))   # "a1"
    """

    def __init__(self, *, threshold=DEFAULT_THRESHOLD, horizon_ms=DEFAULT_HORIZON_SECONDS * 1000,
                 max_articles=DEFAULT_MAX_ARTICLES):
        if not 0 < threshold < 1:
            raise ValueError(f"the story threshold must be between 0 and 1 (exclusive), got "
                             f"{threshold}; e.g. {DEFAULT_THRESHOLD}")
        if horizon_ms <= 0 or max_articles < 1:
            raise ValueError(f"the story horizon must be > 0 and the index size >= 1, got "
                             f"{horizon_ms} ms and {max_articles}")
        self.threshold = threshold
        self.horizon_ms = horizon_ms
        self.max_articles = max_articles
        bands, rows = _bands_and_rows()
        self.rows = rows
        self.bands = bands
        self.entries: Dict[str, _Entry] = {}  # insertion order: the oldest first
        self.tables: List[Dict[bytes, List[str]]] = [{} for _ in range(bands)]
        self.newest_ms: Optional[int] = None

    inserted = 0  # articles indexed so far (0 in an index pickled before it was counted)

    def settings(self) -> tuple:
        return (self.threshold, self.horizon_ms, self.max_articles)

    def __len__(self):
        return len(self.entries)

    def _keys(self, signature):
        width, values = 4 * self.rows, signature.values  # bytes per band
        return [values[i * width:(i + 1) * width] for i in range(self.bands)]

    def assign(self, article_id: str, published_ms: int,
               signature: Optional[Signature]) -> str:
        """The article's story id (see the module docstring); indexes it."""
        known = self.entries.get(article_id)
        if known is not None:  # seen again (a duplicate message): the same answer
            return known.story_id
        if signature is None:
            return article_id
        keys = self._keys(signature)
        best = None  # (-similarity, published, id, story)
        seen = set()
        for table, key in zip(self.tables, keys):
            for other in table.get(key, ()):
                if other in seen:
                    continue
                seen.add(other)
                entry = self.entries[other]
                if abs(entry.published_ms - published_ms) > self.horizon_ms:
                    continue
                sim = containment(signature, entry.signature)
                if sim >= self.threshold:
                    rank = (-sim, entry.published_ms, other, entry.story_id)
                    best = rank if best is None or rank < best else best
        story_id = article_id if best is None else best[3]
        self._hold(article_id, _Entry(published_ms, story_id, signature), keys)
        self.inserted += 1
        if self.newest_ms is None or published_ms > self.newest_ms:
            self.newest_ms = published_ms
        self._evict()
        return story_id

    def recent(self, count: int) -> list:
        """The last ``count`` articles indexed that the index still holds, oldest
        first, as ``(article_id, entry)``: what ``with_entries`` takes back.
        (The index holds a suffix of the articles in the order indexed: it
        forgets the oldest inserted first.)"""
        newest = itertools.islice(reversed(self.entries.items()), min(count, len(self.entries)))
        return list(newest)[::-1]

    def without_entries(self) -> "StoryIndex":
        """A copy with the settings, the newest time and the count of entries
        held, but no entries (small: written where the entries are not)."""
        shell = object.__new__(StoryIndex)
        shell.__dict__.update(self.__dict__, entries={}, tables=[], held=len(self.entries))
        return shell

    def with_entries(self, items) -> "StoryIndex":
        """The index again, from a ``without_entries`` copy and ``items``: the
        entries of ``recent`` calls in the order indexed; only the last as
        many as it held are kept (the earlier ones it had forgotten)."""
        items = list(items)
        index = object.__new__(StoryIndex)
        index.__dict__.update(self.__dict__)
        held = index.__dict__.pop("held")
        index._index(items[len(items) - held:] if held else [])
        return index

    def _index(self, items):
        """Hold ``items`` (``(article_id, entry)``, oldest first) and nothing else."""
        self.entries, self.tables = {}, [{} for _ in range(self.bands)]
        for article_id, entry in items:
            self._hold(article_id, entry, self._keys(entry.signature))

    def _hold(self, article_id, entry, keys):
        """Hold ``entry`` under ``article_id``, in the LSH table of each band key."""
        self.entries[article_id] = entry
        for table, key in zip(self.tables, keys):
            table.setdefault(key, []).append(article_id)

    def __getstate__(self):
        """Pickled as columns (ids, times, story ids, sizes, the signatures as
        one bytes), without the LSH tables (rebuilt when unpickled): a
        checkpoint holds the index, and a tuple per entry pickles slowly."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("entries", "tables")}
        entries = self.entries.values()
        state["columns"] = (list(self.entries), [e.published_ms for e in entries],
                            [e.story_id for e in entries],
                            [e.signature.shingles for e in entries],
                            b"".join(e.signature.values for e in entries))
        return state

    def __setstate__(self, state):
        state = dict(state)
        columns = state.pop("columns", None)
        self.__dict__.update(state)
        if columns is not None:  # (an index pickled before had its entries and tables)
            ids, published, story_ids, sizes, values = columns
            width = 4 * NUM_PERM
            self._index((article_id, _Entry(published[i], story_ids[i], Signature(
                sizes[i], values[i * width:(i + 1) * width]))) for i, article_id in enumerate(ids))

    def _evict(self):
        oldest = self.newest_ms - self.horizon_ms
        while self.entries:
            article_id, entry = next(iter(self.entries.items()))
            if len(self.entries) <= self.max_articles and entry.published_ms >= oldest:
                return
            del self.entries[article_id]
            for table, key in zip(self.tables, self._keys(entry.signature)):
                ids = table[key]
                ids.remove(article_id)
                if not ids:
                    del table[key]


class _SignFn(beam.DoFn):
    def __init__(self, words):
        self._words = words

    def process(self, article):
        yield article._replace(signature=story_signature(article.body, self._words))


class SignStories(beam.PTransform):
    """``Article`` -> the same ``Article`` with its ``signature`` (for ``StoryIndex``)."""

    def __init__(self, *, shingle_words=SHINGLE_WORDS):
        super().__init__()
        if shingle_words < 1:
            raise ValueError(f"shingle_words must be >= 1, got {shingle_words}")
        self._words = shingle_words

    def expand(self, articles):
        return articles | "Sign" >> beam.ParDo(_SignFn(self._words))
