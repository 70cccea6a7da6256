"""The tracked entities in the five seeds, against the hand-checked fixture
tests/fixtures/seed_tracked_counts.json (how it was counted is in its comments);
and the seeds' ids: one per real-world entity."""
import collections
import json
import pathlib

import pytest

from connectors.replay import read_articles
from pipeline.entities import DEFAULT_MODEL, RULER, article_text, entities_of, load_model
from pipeline.normalise import normalise_text
from pipeline.records import Article

pytestmark = pytest.mark.spacy

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "seed_tracked_counts.json").read_text())


def seed_mentions(rules_only=False):
    nlp = load_model(DEFAULT_MODEL, rules_only=rules_only)
    types = nlp.get_pipe(RULER).gazetteer.types
    out = {}
    for a in read_articles([ROOT / "seeds"]):
        article = Article(a["id"], a["source"], None, normalise_text(a["title"]),
                          normalise_text(a["body"]), a["published_at"], "en", "", 0, 0)
        out[a["id"]] = entities_of(nlp(article_text(article)), tracked_types=types)
    return out


@pytest.fixture(scope="module")
def mentions():
    return seed_mentions()


def tracked_counts(found):
    return {seed: dict(collections.Counter(m.entity_id for m in ms
                                           if m.entity_id in ("RUSSIA", "NORTH_KOREA", "BRIDGE")))
            for seed, ms in found.items()}


def test_tracked_counts_match_the_hand_checked_fixture(mentions):
    assert tracked_counts(mentions) == FIXTURE["counts"]


def test_rules_only_finds_the_same_tracked_mentions():
    assert tracked_counts(seed_mentions(rules_only=True)) == FIXTURE["counts"]


def test_tracked_mentions_carry_the_configured_type(mentions):
    labels = {(m.entity_id, m.label) for ms in mentions.values() for m in ms
              if m.entity_id in ("RUSSIA", "NORTH_KOREA", "BRIDGE")}
    assert labels == {("RUSSIA", "GPE"), ("NORTH_KOREA", "GPE"), ("BRIDGE", "FAC")}


def test_one_id_per_real_world_entity(mentions):
    ids = {m.entity_id for ms in mentions.values() for m in ms}
    # No possessive or headline variants, no short names beside the full ones.
    assert not [i for i in ids if "'" in i or "\u2019" in i]
    assert not [i for i in ids if "korea" in i.lower() and i.startswith(("GPE:", "NORP:"))
                and "south" not in i and i != "GPE:korea"]
    for short, full in [("mishustin", "mikhail mishustin"), ("putin", "vladimir putin"),
                        ("trump", "donald trump"), ("zelenskyy", "volodymyr zelenskyy"),
                        ("kim", "kim jong-un")]:
        assert f"PERSON:{full}" in ids and not any(i.endswith(f":{short}") for i in ids)
    assert "ORG:regional implications of" not in ids and not any("implications" in i for i in ids)
    # Sentence numbers stay in order within each article.
    for ms in mentions.values():
        assert [m.sentence_index for m in ms] == sorted(m.sentence_index for m in ms)
