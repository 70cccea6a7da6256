"""Entity ids and the per-window tally, on hand-made mentions."""
from pipeline.tallies import MentionTally, tally_article
from pipeline.entities import canonical_id
from pipeline.records import ArticleEntities, Mention


def test_canonical_id_folds_case_possessive_and_article():
    assert canonical_id("GPE", "North Korea's") == "GPE:north korea"
    assert canonical_id("GPE", "North Korea\u2019s") == "GPE:north korea"
    assert canonical_id("ORG", "The  Kremlin") == "ORG:kremlin"
    assert canonical_id("GPE", "Russia") == "GPE:russia"


def m(entity, text, label="GPE"):
    return Mention(entity, text, label, 0)


def test_tally_counts_mentions_and_articles():
    a1 = ArticleEntities("a1", 0, (m("GPE:russia", "Russia"), m("GPE:russia", "Russia"),
                                   m("GPE:north korea", "North Korea")))
    a2 = ArticleEntities("a2", 0, (m("GPE:russia", "RUSSIA"),))
    acc = MentionTally()
    for a in (a1, a2):
        acc.add(tally_article(a))
    rows = {r["entity_id"]: r for r in acc.rows()}
    # Hand count: russia 2 + 1 = 3 mentions in 2 articles; north korea 1 in 1.
    assert (rows["GPE:russia"]["mentions"], rows["GPE:russia"]["articles"]) == (3, 2)
    assert rows["GPE:russia"]["entity_text"] == "Russia"  # most frequent form
    assert (rows["GPE:north korea"]["mentions"], rows["GPE:north korea"]["articles"]) == (1, 1)


def test_merge_equals_sequential_adds():
    t1 = tally_article(ArticleEntities("a", 0, (m("GPE:x", "X"),) * 3))
    t2 = tally_article(ArticleEntities("b", 0, (m("GPE:x", "X"), m("GPE:y", "Y"))))
    left, right = MentionTally(), MentionTally()
    left.add(t1)
    right.add(t2)
    left.merge(right)
    merged = left.rows()
    assert merged == ({"entity_id": "GPE:x", "entity_text": "X", "entity_label": "GPE",
                       "mentions": 4, "articles": 2},
                      {"entity_id": "GPE:y", "entity_text": "Y", "entity_label": "GPE",
                       "mentions": 1, "articles": 1})
