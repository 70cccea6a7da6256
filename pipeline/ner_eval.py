"""Score entity extraction on CoNLL-2003: the bare model beside the project's extraction.

    entitystream eval-ner --conll ../shared/corpora/conll2003/eng.testb [--markdown]

CoNLL-2003 files have one token per line (token, POS, chunk, NE tag in IOB1),
blank lines between sentences and ``-DOCSTART-`` between documents. Each
document is scored as one spaCy ``Doc`` built from its gold tokens (so spans
align exactly; an article is one Doc in the pipeline too).

- **bare**: the spaCy model's ``ner`` alone, ``doc.ents`` as they come;
- **project**: ``load_model`` (NER + tracked-entity ruler) and
  ``extract_spans`` (label filter, trimming, fragment filter, short names),
  each span with its spaCy label (a demonym alias is NORP);
- **project, as counted**: the same spans with the label they are counted
  with (a tracked entity's type: "Russian" counts as RUSSIA, a GPE).

Labels are mapped from OntoNotes to CoNLL with ``LABEL_MAP``: PERSON -> PER;
ORG -> ORG; GPE, LOC, FAC -> LOC; NORP, EVENT, WORK_OF_ART, LAW, PRODUCT,
LANGUAGE -> MISC; numeric and temporal labels are not entities in CoNLL and
are dropped. A prediction is correct when its token span and mapped type both
equal a gold entity's (exact match, as conlleval); precision, recall and F1
are per type and micro-averaged overall.
"""
import collections
import pathlib
import time
from typing import Dict, List, NamedTuple, Set, Tuple

__all__ = ["LABEL_MAP", "CONLL_TYPES", "read_conll", "score", "evaluate", "markdown_table",
           "Scores"]

LABEL_MAP = {
    "PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
    "NORP": "MISC", "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC",
    "PRODUCT": "MISC", "LANGUAGE": "MISC",
}
CONLL_TYPES = ("PER", "ORG", "LOC", "MISC")

Span = Tuple[int, int, str]  # token start, token end (exclusive), CoNLL type


class ConllDocument(NamedTuple):
    words: List[str]
    sentence_starts: List[int]
    entities: Set[Span]


class Scores(NamedTuple):
    tp: int
    fp: int
    fn: int

    @property
    def precision(self):
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self):
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self):
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _iob1_spans(tags, offset=0):
    spans, start, kind = set(), None, None
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, this = tag.partition("-")
        if start is not None and (tag == "O" or prefix == "B" or this != kind):
            spans.add((offset + start, offset + i, kind))
            start, kind = None, None
        if tag != "O" and start is None:
            start, kind = i, this
    return spans


def read_conll(path) -> List[ConllDocument]:
    """The documents of a CoNLL-2003 file (IOB1 tags in the last column)."""
    documents, words, starts, entities, tags = [], [], [], set(), []

    def end_sentence():
        if tags:
            starts.append(len(words) - len(tags))
            entities.update(_iob1_spans(tags, len(words) - len(tags)))
            tags.clear()

    def end_document():
        end_sentence()
        if words:
            documents.append(ConllDocument(list(words), list(starts), set(entities)))
        words.clear(), starts.clear(), entities.clear()

    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                end_sentence()
            elif fields[0] == "-DOCSTART-":
                end_document()
            else:
                if len(fields) < 2 or not (fields[-1] == "O" or fields[-1][:2] in ("I-", "B-")):
                    raise ValueError(f"{path}:{number}: not a CoNLL token line: {line!r}")
                words.append(fields[0])
                tags.append(fields[-1])
    end_document()
    return documents


def score(gold: List[Set[Span]], predicted: List[Set[Span]]) -> Dict[str, Scores]:
    """Exact-match scores per CoNLL type and ``overall``, over aligned documents."""
    counts = collections.defaultdict(lambda: [0, 0, 0])
    for g, p in zip(gold, predicted, strict=True):
        for kind in CONLL_TYPES:
            gk = {s for s in g if s[2] == kind}
            pk = {s for s in p if s[2] == kind}
            counts[kind][0] += len(gk & pk)
            counts[kind][1] += len(pk - gk)
            counts[kind][2] += len(gk - pk)
    result = {k: Scores(*counts[k]) for k in CONLL_TYPES}
    result["overall"] = Scores(*(sum(c[i] for c in counts.values()) for i in range(3)))
    return result


def _mapped(spans):
    return {(start, end, LABEL_MAP[label]) for start, end, label in spans if label in LABEL_MAP}


def _docs(nlp, documents):
    from spacy.tokens import Doc
    return nlp.pipe((Doc(nlp.vocab, words=d.words) for d in documents), batch_size=32)


def evaluate(path, model=None, tracked_entities=None):
    """``({system: scores}, {system: seconds}, documents)`` for bare, project and as counted."""
    import spacy
    from pipeline.entities import DEFAULT_MODEL, RULER, extract_spans, load_model
    model = model or DEFAULT_MODEL
    documents = read_conll(path)
    gold = [d.entities for d in documents]
    bare_nlp = spacy.load(model)
    bare_nlp.select_pipes(enable=["ner"])
    started = time.perf_counter()
    bare = [_mapped((e.start, e.end, e.label_) for e in doc.ents)
            for doc in _docs(bare_nlp, documents)]
    seconds = {"bare": time.perf_counter() - started}
    nlp = load_model(model, tracked_entities)
    types = nlp.get_pipe(RULER).gazetteer.types
    typed, counted = [], []
    started = time.perf_counter()
    countries = nlp.get_pipe(RULER).countries
    for doc in _docs(nlp, documents):
        spans = extract_spans(doc, tracked_types=types, countries=countries)
        in_text = extract_spans(doc, tracked_types=types, countries=countries, typed_labels=True)
        typed.append(_mapped((s.start, s.end, s.label_ if eid in types else label)
                             for s, eid, label in in_text))
        counted.append(_mapped((s.start, s.end, label) for s, eid, label in spans))
    seconds["project"] = seconds["project, as counted"] = time.perf_counter() - started
    results = {"bare": score(gold, bare), "project": score(gold, typed),
               "project, as counted": score(gold, counted)}
    return results, seconds, documents


def markdown_table(results) -> str:
    systems = list(results)
    head = "| type | " + " | ".join(f"{s} P / R / F1" for s in systems) + " |"
    lines = [head, "|---|" + "---:|" * len(systems)]
    for kind in CONLL_TYPES + ("overall",):
        cells = [f"{r[kind].precision:.1%} / {r[kind].recall:.1%} / **{r[kind].f1:.1%}**"
                 for r in results.values()]
        name = "**overall**" if kind == "overall" else kind
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="entitystream eval-ner", description=__doc__.split("\n")[0])
    parser.add_argument("--conll", required=True, type=pathlib.Path,
                        help="a CoNLL-2003 file, e.g. ../shared/corpora/conll2003/eng.testb")
    parser.add_argument("--spacy-model", default=None, help="default: the project's model")
    parser.add_argument("--tracked-entities", default=None, help="default: the shipped file")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if not args.conll.is_file():
        raise ValueError(f"no CoNLL file at {args.conll}")
    results, seconds, documents = evaluate(args.conll, args.spacy_model, args.tracked_entities)
    gold = sum(len(d.entities) for d in documents)
    print(f"{args.conll}: {len(documents)} documents, {sum(len(d.words) for d in documents)} "
          f"tokens, {gold} gold entities")
    if args.markdown:
        print(markdown_table(results))
        return 0
    for system, by_type in results.items():
        print(f"\n{system} ({seconds[system]:.1f}s)")
        print(f"  {'type':<8} {'P':>7} {'R':>7} {'F1':>7} {'tp':>6} {'fp':>6} {'fn':>6}")
        for kind, s in by_type.items():
            print(f"  {kind:<8} {s.precision:7.2%} {s.recall:7.2%} {s.f1:7.2%} "
                  f"{s.tp:6d} {s.fp:6d} {s.fn:6d}")
    return 0
