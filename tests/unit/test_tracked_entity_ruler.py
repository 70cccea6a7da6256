"""The ``tracked_entity_ruler`` spaCy component, tested like spaCy's own
spacy/tests/pipeline/test_span_ruler.py: a blank pipeline and a small patterns
file for the rules, the shipped model for the lemma patterns."""
import json

import pytest
from spacy.lang.en import English
from spacy.language import Language
from spacy.tokens import Span

from pipeline.entities import DEFAULT_MODEL, RULER, load_model
from pipeline.gazetteer import FACTORY, TrackedEntityRuler


@pytest.fixture
def patterns_file(tmp_path):
    path = tmp_path / "tracked.json"
    path.write_text(json.dumps({"version": 1, "entities": [
        {"id": "RUSSIA", "name": "Russia", "type": "GPE",
         "aliases": ["Russia", {"pattern": "Russian", "label": "NORP"}]},
        {"id": "NORTH_KOREA", "name": "North Korea", "type": "GPE",
         "aliases": ["North Korea", "DPRK"]},
        {"id": "BRIDGE", "name": "Bridge", "type": "FAC",
         "aliases": ["Friendship Bridge", [{"LOWER": {"IN": ["bridge", "bridges"]}}]]},
    ]}), encoding="utf-8")
    return str(path)


@pytest.fixture
def nlp(patterns_file):
    nlp = English()
    nlp.add_pipe(FACTORY, config={"path": patterns_file})
    return nlp


def test_factory_is_registered_with_a_complete_default_config():
    assert Language.has_factory(FACTORY)
    assert Language.get_factory_meta(FACTORY).default_config == {"path": None}


def test_aliases_become_entities_with_the_canonical_id(nlp):
    doc = nlp("Russian troops crossed from Russia into the DPRK over the bridge.")
    assert [(e.text, e.label_, e.id_) for e in doc.ents] == [
        ("Russian", "NORP", "RUSSIA"), ("Russia", "GPE", "RUSSIA"),
        ("DPRK", "GPE", "NORTH_KOREA"), ("bridge", "FAC", "BRIDGE")]
    assert isinstance(nlp.get_pipe(FACTORY), TrackedEntityRuler)


def test_phrases_match_case_insensitively(nlp):
    doc = nlp("NORTH KOREA AND RUSSIA SIGN PACT")
    assert [e.id_ for e in doc.ents] == ["NORTH_KOREA", "RUSSIA"]


def test_longest_alias_wins(nlp):
    doc = nlp('the aging "Friendship Bridge," a rail link')
    assert [(e.text, e.id_) for e in doc.ents] == [("Friendship Bridge", "BRIDGE")]


def test_tracked_spans_replace_overlapping_model_entities_and_keep_the_rest(nlp):
    # What the statistical model gave on seed 001 (see docs/ner_quality.md): the bridge
    # as a WORK_OF_ART and "North Korea's" with its possessive, beside a person.
    doc = nlp.make_doc("Mikhail Mishustin near the Friendship Bridge and North Korea's border")
    doc.ents = [Span(doc, 0, 2, "PERSON"), Span(doc, 4, 6, "WORK_OF_ART"),
                Span(doc, 7, 10, "GPE")]
    doc = nlp.get_pipe(FACTORY)(doc)
    assert [(e.text, e.label_, e.id_) for e in doc.ents] == [
        ("Mikhail Mishustin", "PERSON", ""), ("Friendship Bridge", "FAC", "BRIDGE"),
        ("North Korea", "GPE", "NORTH_KOREA")]


def test_a_bad_file_fails_when_the_component_is_added(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"entities": [{"id": "x"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="entities\\[0\\]"):
        English().add_pipe(FACTORY, config={"path": str(bad)})


@pytest.mark.spacy
def test_default_bridge_concept_matches_nouns_not_the_verb():
    nlp = load_model(DEFAULT_MODEL)
    # Seed 004's headline: "Bridging" is a verb; the two tracked countries are found.
    doc = nlp("Bridging Alliances: The New Road Between Russia and North Korea.")
    assert [e.id_ for e in doc.ents if e.id_] == ["RUSSIA", "NORTH_KOREA"]
    doc = nlp("Both bridges were built before the Friendship Bridge; a railway bridge too.")
    assert [(e.text, e.id_) for e in doc.ents if e.id_] == [
        ("bridges", "BRIDGE"), ("Friendship Bridge", "BRIDGE"), ("bridge", "BRIDGE")]


@pytest.mark.spacy
def test_load_model_enables_only_what_entities_and_sentences_need():
    # The shipped BRIDGE matches word forms (issue 13): no tagger or lemmatizer in either mode.
    full = load_model(DEFAULT_MODEL)
    assert full.pipe_names == ["senter", "ner", RULER]
    rules = load_model(DEFAULT_MODEL, rules_only=True)
    assert rules.pipe_names == ["sentencizer", RULER]
    doc = rules("Mikhail Mishustin visited North Korea. The bridge opened.")
    assert [(e.text, e.id_) for e in doc.ents] == [("North Korea", "NORTH_KOREA"),
                                                   ("bridge", "BRIDGE")]
    assert len(list(doc.sents)) == 2


@pytest.mark.spacy
def test_rules_only_without_lemma_patterns_is_the_tokenizer_and_ruler(patterns_file):
    nlp = load_model(DEFAULT_MODEL, patterns_file, rules_only=True)
    assert nlp.pipe_names == ["sentencizer", RULER]


@pytest.mark.spacy
def test_tag_patterns_need_only_the_tagger(tmp_path):
    path = tmp_path / "tag.json"
    path.write_text(json.dumps({"entities": [{"id": "BRIDGE", "name": "Bridge", "type": "FAC",
                                              "aliases": [[{"LOWER": {"IN": ["bridge", "bridges"]},
                                                            "TAG": {"IN": ["NN", "NNS", "NNP"]}}]]}]}),
                    encoding="utf-8")
    nlp = load_model(DEFAULT_MODEL, str(path), rules_only=True)
    assert nlp.pipe_names == ["sentencizer", "tok2vec", "tagger", RULER]
    doc = nlp("Two bridges bridge the river.")
    assert [(e.text, e.id_) for e in doc.ents] == [("bridges", "BRIDGE")]
