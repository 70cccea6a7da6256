"""``entitystream extract``: the pipeline's entity extraction on files, as JSON lines.

    entitystream extract PATH... [--tracked-entities F] [--rules-only] [--output FILE]

Reads what ``entitystream replay`` reads (``connectors.replay.read_articles``:
a seeds folder, Reuters ``reut2-*.sgm`` files or their folder, ``.jsonl``
articles) and runs each article through the stages the pipeline runs before
counting, with the same functions: ``decode_article`` (the message checks),
``normalise_text`` on title and body (``NormaliseText``), ``article_text``
(title and body as one text) and ``mentions_of_texts`` (``load_model``,
``nlp.pipe``, ``extract_spans``: what ``ExtractEntities`` runs). So a line
printed here is what the pipeline counts for that article.

One JSON object per article and line::

    {"id": "seed-000", "published_at": 1718000000000,
     "text": "<the normalised text that was analysed>",
     "mentions": [{"start": 0, "end": 6, "text": "Russia", "label": "GPE",
                   "entity_id": "RUSSIA", "entity_name": "Russia"}, ...]}

``published_at`` is epoch milliseconds; ``start``/``end`` are character
offsets into ``text`` (``text[start:end] == mention text``); ``label`` is the
label the mention is counted with; ``entity_name`` is a tracked entity's
display name, else the canonical text of the id. An article in another
language than the model's has no mentions (as in the pipeline). An article the
pipeline would dead-letter is not printed: it is reported on stderr with its
reason (``bad_timestamp``, ``empty_body`` ...), and the run goes on.
"""
import argparse
import json
import sys

__all__ = ["main", "extract_articles", "BATCH_SIZE"]

BATCH_SIZE = 64


def _decoded(raw, index):
    """The pipeline's ``Article`` of a replay dict, normalised as ``NormaliseText`` does."""
    from pipeline.decode import decode_article
    from pipeline.normalise import normalise_text
    value = json.dumps(raw, ensure_ascii=False).encode("utf-8")
    article = decode_article(value, topic="extract", partition=0, offset=index)
    return article._replace(title=normalise_text(article.title), body=normalise_text(article.body))


def extract_articles(raw_articles, *, nlp, excluded_labels=None, errors=None):
    """Yield ``(article, text, [FoundMention])`` for each replay dict, batched through
    ``mentions_of_texts``; an article the pipeline would dead-letter goes to ``errors``
    (a list of ``(index, id, reason, detail)``) instead."""
    from pipeline.decode import DecodeError
    from pipeline.entities import (EXCLUDED_LABELS, RULER, article_text, in_model_language,
                                   mentions_of_texts)
    excluded = frozenset(EXCLUDED_LABELS if excluded_labels is None else excluded_labels)
    types = nlp.get_pipe(RULER).gazetteer.types
    batch = []

    def flush():
        modelled = [(a, t) for a, t in batch if in_model_language(a, nlp.lang)]
        found = iter(mentions_of_texts(nlp, [t for _, t in modelled], excluded, types)
                     if modelled else ())
        modelled_ids = {id(a) for a, _ in modelled}
        for article, text in batch:
            yield article, text, (next(found) if id(article) in modelled_ids else ())
        batch.clear()

    for index, raw in enumerate(raw_articles):
        try:
            article = _decoded(raw, index)
        except DecodeError as exc:
            if errors is not None:
                shown = raw.get("id") if isinstance(raw, dict) else None
                errors.append((index, shown, exc.reason, exc.detail))
            continue
        batch.append((article, article_text(article)))
        if len(batch) >= BATCH_SIZE:
            yield from flush()
    yield from flush()


def _line(article, text, found, names):
    mentions = [{"start": m.start, "end": m.end, "text": m.text, "label": m.label,
                 "entity_id": m.entity_id,
                 "entity_name": names.get(m.entity_id) or m.entity_id.split(":", 1)[-1]}
                for m in found]
    return json.dumps({"id": article.id, "published_at": article.published_at_ms,
                       "text": text, "mentions": mentions}, ensure_ascii=False)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="entitystream extract",
        description="Print the entity mentions the pipeline counts in each article, as JSON "
                    "lines (id, published_at, text, mentions with offsets and ids).")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="seeds directory or manifest.json, Reuters reut2-*.sgm (or their "
                             "directory), or .jsonl files: what 'replay' reads")
    parser.add_argument("--tracked-entities", default=None, metavar="F",
                        help="tracked-entities JSON file (default: the shipped one)")
    parser.add_argument("--rules-only", action="store_true",
                        help="tracked entities only, without the statistical NER")
    parser.add_argument("--spacy-model", default=None, help="spaCy model package")
    parser.add_argument("--output", default=None, metavar="FILE",
                        help="write the JSON lines here (default: stdout)")
    args = parser.parse_args(argv)
    from connectors.replay import read_articles
    from pipeline.entities import DEFAULT_MODEL, RULER, load_model
    from pipeline.gazetteer import load_tracked_entities
    load_tracked_entities(args.tracked_entities)  # a bad file: its error, before the model loads
    nlp = load_model(args.spacy_model or DEFAULT_MODEL, args.tracked_entities, args.rules_only)
    names = nlp.get_pipe(RULER).gazetteer.names
    skipped, errors, written = {}, [], 0
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for article, text, found in extract_articles(read_articles(args.paths, skipped),
                                                     nlp=nlp, errors=errors):
            out.write(_line(article, text, found, names) + "\n")
            written += 1
    finally:
        if args.output:
            out.close()
    for index, shown, reason, detail in errors:
        print(f"entitystream extract: article {index} (id {shown!r}) not extracted: "
              f"{reason}: {detail}", file=sys.stderr)
    extra = f"; skipped while reading {skipped}" if skipped else ""
    print(f"extracted {written} articles, {len(errors)} rejected{extra}", file=sys.stderr)
    return 0
