"""Score entity ids against hand-linked news: one real-world entity, one id?

    entitystream eval-identity --aida ../shared/corpora/aida-conll-yago-testb [--markdown]

The AIDA CoNLL-YAGO test-b documents (NAF XML: the CoNLL-2003 ``eng.testb``
tokens, each named-entity mention linked by hand to its Wikipedia page or
left unlinked). Each document becomes one text: its tokens joined by spaces,
one sentence a line (``document_text``); the gold mentions are character
spans of that text. Two systems run on the same texts in one run:

- **bare**: the spaCy model's ``ner`` alone, id ``LABEL:text`` as written;
- **project**: ``load_model`` and ``mentions_of_texts``, the function the
  pipeline's ``ExtractEntities`` stage and ``entitystream extract`` run.

A gold mention is *found* when a predicted mention overlaps it (the one with
the largest overlap gives its id); only linked mentions are scored, and only
found ones (detection is ``eval-ner``'s subject, identity is this one's):

- **split pairs**: pairs of found mentions of one page in one document with
  different ids, over all such pairs; **split clusters**: (document, page)
  with 2+ found mentions that got more than one id;
- **merged pairs**: pairs of found mentions of different pages in one
  document sharing an id, over all such pairs;
- **ids per page**: distinct ids of the found mentions of each of the 20 pages
  with most gold mentions in the corpus, averaged;
- **count error**: for those 20 pages, per document where the page is
  mentioned or its id counted: |mentions counted under the page's id - gold
  mentions|, averaged, where the page's id is the id most of its found
  mentions got; **with perfect ids** the count would be its found mentions
  (the error left is detection's). Also the share of exact counts.
"""
import collections
import pathlib
import time
import xml.etree.ElementTree as ET
from typing import List, NamedTuple, Optional, Tuple

__all__ = ["AidaDocument", "read_naf", "read_aida", "document_text", "score_ids", "evaluate",
           "markdown_table", "main", "TOP_PAGES"]

TOP_PAGES = 20
_WIKI = "http://en.wikipedia.org/wiki/"


class AidaDocument(NamedTuple):
    name: str
    sentences: List[List[str]]
    mentions: List[Tuple[int, int, int, int, Optional[str]]]  # sentence, first, end token, page


def read_naf(path) -> AidaDocument:
    """One AIDA NAF file: sentences of tokens and the linked/unlinked gold mentions."""
    root = ET.parse(path).getroot()
    where = {}  # wf id -> (sentence index, token index)
    sentences, sent_ids = [], {}
    for wf in root.iter("wf"):
        sent = wf.get("sent")
        if sent not in sent_ids:
            sent_ids[sent] = len(sentences)
            sentences.append([])
        index = sent_ids[sent]
        where[wf.get("id")] = (index, len(sentences[index]))
        sentences[index].append(wf.text or "")
    term_to_wf = {}
    for term in root.iter("term"):
        term_to_wf[term.get("id")] = [t.get("id") for t in term.iter("target")]
    mentions = []
    for entity in root.iter("entity"):
        ref = entity.find("externalReferences/externalRef")
        page = ref.get("reference") if ref is not None else None
        if page and page.startswith(_WIKI):
            page = page[len(_WIKI):]
        tokens = [where[w] for target in entity.find("references").iter("target")
                  for w in term_to_wf.get(target.get("id"), [target.get("id")])]
        if not tokens:
            raise ValueError(f"{path}: entity {entity.get('id')} has no tokens")
        sent = tokens[0][0]
        if any(s != sent for s, _ in tokens):
            raise ValueError(f"{path}: entity {entity.get('id')} crosses a sentence")
        mentions.append((sent, min(t for _, t in tokens), max(t for _, t in tokens) + 1, page))
    return AidaDocument(pathlib.Path(path).name, sentences, mentions)


def read_aida(folder) -> List[AidaDocument]:
    """Every ``*.naf`` file of ``folder``, in numeric order of their names."""
    files = sorted(pathlib.Path(folder).glob("*.naf"),
                   key=lambda p: (len(p.name.split(".")[0]), p.name))
    if not files:
        raise ValueError(f"no AIDA NAF files (*.naf) in {folder}: give the "
                         f"aida-conll-yago-testb folder")
    return [read_naf(f) for f in files]


def document_text(doc: AidaDocument):
    """``(text, [(start, end, page)])``: tokens joined by spaces, one sentence a line, and
    each gold mention as character offsets into it."""
    starts, pieces, offset = [], [], 0
    for sentence in doc.sentences:
        row = []
        for token in sentence:
            row.append(offset)
            offset += len(token) + 1
        starts.append(row)
        pieces.append(" ".join(sentence))
    text = "\n".join(pieces)
    gold = [(starts[s][a], starts[s][b - 1] + len(doc.sentences[s][b - 1]), page)
            for s, a, b, page in doc.mentions]
    return text, gold


def _assign(gold, predicted):
    """The predicted id of each gold mention (None: not found)."""
    ids = []
    for start, end, _ in gold:
        best, best_overlap = None, 0
        for p_start, p_end, entity_id in predicted:
            overlap = min(end, p_end) - max(start, p_start)
            if overlap > best_overlap:
                best, best_overlap = entity_id, overlap
        ids.append(best)
    return ids


def _pairs(n):
    return n * (n - 1) // 2


def score_ids(documents, predictions, top=TOP_PAGES):
    """The identity figures (module docstring) of ``predictions``: per document, the
    ``[(start, end, entity_id)]`` predicted on ``document_text``'s text; ``documents``:
    per document the gold ``[(start, end, page)]``."""
    split = same_page = merged = other_page = 0
    clusters = split_clusters = found = linked = 0
    page_mentions = collections.Counter()
    page_ids = collections.defaultdict(collections.Counter)
    per_doc = []
    for gold, predicted in zip(documents, predictions, strict=True):
        ids = _assign(gold, predicted)
        by_page = collections.defaultdict(list)
        for (_, _, page), entity_id in zip(gold, ids):
            if page is None:
                continue
            linked += 1
            page_mentions[page] += 1
            if entity_id is not None:
                found += 1
                by_page[page].append(entity_id)
                page_ids[page][entity_id] += 1
        for page, got in by_page.items():
            counts = collections.Counter(got)
            same_page += _pairs(len(got))
            split += _pairs(len(got)) - sum(_pairs(c) for c in counts.values())
            if len(got) > 1:
                clusters += 1
                split_clusters += len(counts) > 1
        by_id = collections.defaultdict(collections.Counter)
        for page, got in by_page.items():
            for entity_id in got:
                by_id[entity_id][page] += 1
        total = sum(len(g) for g in by_page.values())
        other_page += _pairs(total) - sum(_pairs(len(g)) for g in by_page.values())
        merged += sum(_pairs(sum(c.values())) - sum(_pairs(n) for n in c.values())
                      for c in by_id.values())
        per_doc.append((collections.Counter(p for _, _, p in gold if p is not None),
                        {page: len(got) for page, got in by_page.items()},
                        collections.Counter(entity_id for _, _, entity_id in predicted)))
    top_pages = [p for p, _ in sorted(page_mentions.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    errors, perfect, exact = [], [], 0
    for page in top_pages:
        main_id = page_ids[page].most_common(1)[0][0] if page_ids[page] else None
        for gold_counts, found_counts, id_counts in per_doc:
            want = gold_counts.get(page, 0)
            got = id_counts.get(main_id, 0) if main_id is not None else 0
            if not want and not got:
                continue
            errors.append(abs(got - want))
            perfect.append(abs(found_counts.get(page, 0) - want))
            exact += got == want
    return {
        "linked mentions": linked, "found": found,
        "split pairs": split / same_page if same_page else 0.0,
        "split clusters": split_clusters / clusters if clusters else 0.0,
        "merged pairs": merged / other_page if other_page else 0.0,
        "ids per page": (sum(len(page_ids[p]) for p in top_pages) / len(top_pages)
                         if top_pages else 0.0),
        "count error": sum(errors) / len(errors) if errors else 0.0,
        "count error, perfect ids": sum(perfect) / len(perfect) if perfect else 0.0,
        "exact counts": exact / len(errors) if errors else 0.0,
        "top pages": {p: dict(page_ids[p].most_common()) for p in top_pages},
        "pairs": {"same page": same_page, "split": split, "other page": other_page,
                  "merged": merged, "clusters": clusters, "split clusters": split_clusters,
                  "page-documents": len(errors)},
    }


def _bare_predictions(model, texts):
    import spacy
    nlp = spacy.load(model)
    nlp.select_pipes(enable=["ner"])
    return [[(e.start_char, e.end_char, f"{e.label_}:{e.text}") for e in doc.ents]
            for doc in nlp.pipe(texts, batch_size=32)]


def _project_predictions(model, tracked_entities, texts):
    from pipeline.entities import RULER, load_model, mentions_of_texts
    nlp = load_model(model, tracked_entities)
    types = nlp.get_pipe(RULER).gazetteer.types
    found = []
    for i in range(0, len(texts), 64):
        found += mentions_of_texts(nlp, texts[i:i + 64], tracked_types=types)
    return [[(m.start, m.end, m.entity_id) for m in mentions] for mentions in found]


def evaluate(folder, model=None, tracked_entities=None):
    """``({system: figures}, {system: seconds}, documents)`` for bare and project."""
    from pipeline.entities import DEFAULT_MODEL
    model = model or DEFAULT_MODEL
    documents = read_aida(folder)
    texts, golds = zip(*(document_text(d) for d in documents))
    results, seconds = {}, {}
    for system, predict in (("bare", lambda: _bare_predictions(model, list(texts))),
                            ("project", lambda: _project_predictions(model, tracked_entities,
                                                                     list(texts)))):
        started = time.perf_counter()
        predictions = predict()
        seconds[system] = time.perf_counter() - started
        results[system] = score_ids(list(golds), predictions)
    return results, seconds, documents


_ROWS = (("ids per page (20 most frequent)", "ids per page", "{:.2f}"),
         ("split pairs", "split pairs", "{:.1%}"),
         ("split clusters", "split clusters", "{:.1%}"),
         ("merged pairs", "merged pairs", "{:.2%}"),
         ("count error per document (20 pages)", "count error", "{:.2f}"),
         ("count error with perfect ids", "count error, perfect ids", "{:.2f}"),
         ("exact counts", "exact counts", "{:.1%}"),
         ("linked mentions found", "found", "{:,}"))


def markdown_table(results) -> str:
    systems = list(results)
    lines = ["| figure | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for title, key, fmt in _ROWS:
        lines.append(f"| {title} | " + " | ".join(fmt.format(results[s][key]) for s in systems)
                     + " |")
    return "\n".join(lines)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="entitystream eval-identity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--aida", required=True, type=pathlib.Path, metavar="DIR",
                        help="the AIDA CoNLL-YAGO test-b folder of NAF files, e.g. "
                             "../shared/corpora/aida-conll-yago-testb")
    parser.add_argument("--spacy-model", default=None, help="default: the project's model")
    parser.add_argument("--tracked-entities", default=None, help="default: the shipped file")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--pages", action="store_true",
                        help="also list the ids each of the 20 most frequent pages got")
    args = parser.parse_args(argv)
    if not args.aida.is_dir():
        raise ValueError(f"no AIDA folder at {args.aida}")
    results, seconds, documents = evaluate(args.aida, args.spacy_model, args.tracked_entities)
    linked = results["bare"]["linked mentions"]
    print(f"{args.aida}: {len(documents)} documents, "
          f"{sum(len(d.mentions) for d in documents)} mentions, {linked} linked; "
          + ", ".join(f"{s} {t:.1f}s" for s, t in seconds.items()))
    print(markdown_table(results) if args.markdown else "\n".join(
        f"{title:<40} " + "  ".join(f"{s} {fmt.format(results[s][key])}" for s in results)
        for title, key, fmt in _ROWS))
    if args.pages:
        for system, r in results.items():
            print(f"\n{system}:")
            for page, ids in r["top pages"].items():
                print(f"  {page}: {ids}")
    return 0
