"""The CoNLL-2003 evaluator: reading IOB1, exact-match scoring by hand, the label map."""
import pathlib

import pytest

from pipeline.ner_eval import LABEL_MAP, _mapped, evaluate, markdown_table, read_conll, score

CONLL = pathlib.Path(__file__).resolve().parents[3] / "shared" / "corpora" / "conll2003"

# Two documents. Gold, read by hand (token offsets per document, end exclusive):
#   doc 1: EU (0,1) ORG, German (2,3) MISC, Peter Blackburn (5,7) PER, BRUSSELS (8,9) LOC
#   doc 2: Japan (0,1) LOC, China (2,3) LOC, Hong Kong (3,5) LOC -- "Hong" is B-LOC because
#          it follows another LOC directly (IOB1).
SNIPPET = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
in IN I-PP O
BRUSSELS NNP I-NP I-LOC

-DOCSTART- -X- O O

Japan NNP I-NP I-LOC
and CC O O
China NNP I-NP I-LOC
Hong NNP I-NP B-LOC
Kong NNP I-NP I-LOC
. . O O
"""


@pytest.fixture
def snippet(tmp_path):
    path = tmp_path / "tiny.conll"
    path.write_text(SNIPPET, encoding="utf-8")
    return path


def test_read_conll_documents_sentences_and_iob1_entities(snippet):
    docs = read_conll(snippet)
    assert [len(d.words) for d in docs] == [9, 6]
    assert docs[0].sentence_starts == [0, 5] and docs[1].sentence_starts == [0]
    assert docs[0].entities == {(0, 1, "ORG"), (2, 3, "MISC"), (5, 7, "PER"), (8, 9, "LOC")}
    assert docs[1].entities == {(0, 1, "LOC"), (2, 3, "LOC"), (3, 5, "LOC")}


def test_scores_computed_by_hand(snippet):
    gold = [d.entities for d in read_conll(snippet)]
    predicted = [
        {(0, 1, "ORG"), (2, 3, "MISC"), (5, 7, "PER"), (8, 9, "ORG")},  # BRUSSELS typed ORG
        {(0, 1, "LOC"), (2, 5, "LOC")},                                # China Hong Kong merged
    ]
    s = score(gold, predicted)
    # PER 1/1 right; ORG: 2 predicted, 1 right, 1 gold; LOC: 2 predicted, 1 right, 4 gold.
    assert (s["PER"].precision, s["PER"].recall, s["PER"].f1) == (1.0, 1.0, 1.0)
    assert (s["ORG"].precision, s["ORG"].recall) == (0.5, 1.0)
    assert s["ORG"].f1 == pytest.approx(2 / 3)
    assert (s["LOC"].precision, s["LOC"].recall) == (0.5, 0.25)
    assert s["LOC"].f1 == pytest.approx(1 / 3)  # 2 * .5 * .25 / .75
    # Overall: 4 right of 6 predicted and 7 gold: P 4/6, R 4/7, F1 8/13.
    o = s["overall"]
    assert (o.tp, o.fp, o.fn) == (4, 2, 3)
    assert (o.precision, o.recall, o.f1) == pytest.approx((4 / 6, 4 / 7, 8 / 13))


def test_label_map_from_ontonotes():
    assert _mapped([(0, 1, "PERSON"), (1, 2, "GPE"), (2, 3, "FAC"), (3, 4, "NORP"),
                    (4, 5, "DATE"), (5, 6, "CARDINAL"), (6, 7, "EVENT")]) == \
        {(0, 1, "PER"), (1, 2, "LOC"), (2, 3, "LOC"), (3, 4, "MISC"), (6, 7, "MISC")}
    assert set(LABEL_MAP.values()) == {"PER", "ORG", "LOC", "MISC"}


def test_a_line_that_is_not_conll_is_an_error(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP I-NP ORG\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.conll:1"):
        read_conll(path)


@pytest.mark.skipif(not (CONLL / "eng.testb").is_file(),
                    reason=f"CoNLL-2003 not found at {CONLL} (../shared/corpora)")
def test_eng_testb_matches_the_published_reference_counts():
    # ../shared/corpora/README.md: 231 documents, 3,453 sentences, 46,435 tokens, 5,648 entities.
    docs = read_conll(CONLL / "eng.testb")
    assert len(docs) == 231
    assert sum(len(d.sentence_starts) for d in docs) == 3453
    assert sum(len(d.words) for d in docs) == 46435
    assert sum(len(d.entities) for d in docs) == 5648


@pytest.mark.spacy
def test_evaluate_reports_bare_project_and_as_counted(snippet):
    results, seconds, docs = evaluate(snippet)
    assert list(results) == ["bare", "project", "project, as counted"]
    for by_type in results.values():
        o = by_type["overall"]
        assert o.tp + o.fn == 7  # every gold entity is found or missed
    table = markdown_table(results)
    assert table.count("\n") == 6 and "**overall**" in table
