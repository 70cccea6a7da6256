"""eval-identity's reading of AIDA NAF and its figures, on hand-made predictions."""
import pathlib

import pytest

from pipeline.identity_eval import document_text, read_naf, score_ids

AIDA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "corpora" / "aida-conll-yago-testb"


def test_read_naf_of_the_first_document():
    doc = read_naf(AIDA / "1.conll.naf")
    # 1.conll.naf: 45 <entity> elements (grep -c '<entity '); the first is "JAPAN" in the
    # headline "SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT .", linked to the team.
    assert len(doc.mentions) == 45
    text, gold = document_text(doc)
    start, end, page = gold[0]
    assert text[start:end] == "JAPAN" and page == "Japan_national_football_team"
    assert text.startswith("SOCCER - JAPAN GET LUCKY WIN")


def test_split_merge_and_count_figures_by_hand():
    # One document: page A three times, page B once, one unlinked mention.
    gold = [[(0, 2, "A"), (5, 7, "A"), (10, 12, "A"), (15, 17, "B"), (20, 22, None)]]
    # Predicted: A's first two share id x, the third is y; B is also x (a merge).
    predicted = [[(0, 2, "x"), (5, 7, "x"), (10, 12, "y"), (15, 17, "x")]]
    r = score_ids(gold, predicted, top=2)
    assert r["split pairs"] == pytest.approx(2 / 3)   # pairs of A: (1,2) same, (1,3) (2,3) split
    assert r["split clusters"] == 1.0
    assert r["merged pairs"] == pytest.approx(2 / 3)  # A-B pairs: 3, two share x
    assert r["ids per page"] == pytest.approx(1.5)    # A: x, y; B: x
    # A's id is x: 3 mentions counted under x (2 of A + B's), gold 3: error 0; B's id x: 3
    # counted, gold 1: error 2. Perfect ids: 3 and 1 found: 0 and 0.
    assert r["count error"] == pytest.approx(1.0)
    assert r["count error, perfect ids"] == 0.0
