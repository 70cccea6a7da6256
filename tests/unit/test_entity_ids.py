"""Canonical ids and the mention rules of pipeline/entities.py, on hand-built Docs.

The entities are set by hand, as the statistical model gave them on the seed
sentences quoted in each test, so no model is loaded; the expected ids are read
off the rules in the pipeline/entities.py docstring.
"""
import pytest
from spacy.lang.en import English
from spacy.tokens import Doc, Span

from pipeline.entities import canonical_id, entities_of, extract_spans
from pipeline.records import Mention

VOCAB = English().vocab


@pytest.mark.parametrize("label, text, expected", [
    ("GPE", "North Korea\u2019s", "GPE:north korea"),          # seed 000: curly possessive
    ("GPE", "North Korea's", "GPE:north korea"),
    ("ORG", "the  Kremlin", "ORG:kremlin"),                   # leading "the", spaces
    ("PERSON", "President Vladimir Putin", "PERSON:vladimir putin"),
    # A nationality is not a title (the model tags "Russian" apart, as NORP).
    ("PERSON", "Russian Prime Minister Mikhail Mishustin", "PERSON:russian prime minister mikhail mishustin"),
    ("PERSON", "Prime Minister Mikhail Mishustin", "PERSON:mikhail mishustin"),
    ("PERSON", "Secretary of State Marco Rubio", "PERSON:marco rubio"),  # seed 004
    ("PERSON", "Former President Donald Trump\u2019s", "PERSON:donald trump"),
    ("PERSON", "Dr.", "PERSON:dr."),                          # a title alone stays
    ("ORG", "General Motors", "ORG:general motors"),          # titles only for PERSON
])
def test_canonical_id(label, text, expected):
    assert canonical_id(label, text) == expected


def doc_of(words, ents, sent_starts=None):
    """A Doc of ``words`` (space after each) with ``ents`` = [(start, end, label[, id])]."""
    doc = Doc(VOCAB, words=words, sent_starts=sent_starts)
    doc.ents = [Span(doc, s, e, label=l, span_id=rest[0] if rest else 0)
                for s, e, l, *rest in ents]
    return doc


def test_short_name_is_the_person_with_that_last_name_in_the_article():
    # Seed 001: "Russian Prime Minister Mikhail Mishustin presided ... Mishustin emphasized",
    # and "Putin's Pyongyang Visit ... President Vladimir Putin's landmark visit".
    words = ["Russian", "Prime", "Minister", "Mikhail", "Mishustin", "presided", ".",
             "Mishustin", "emphasized", "it", ".", "Putin", "'s", "visit", "and",
             "President", "Vladimir", "Putin", "'s", "visit", "."]
    doc = doc_of(words, [(0, 1, "NORP", "RUSSIA"), (3, 5, "PERSON"), (7, 8, "PERSON"),
                         (11, 13, "PERSON"), (15, 19, "PERSON")],
                 sent_starts=[True] + [False] * 6 + [True] + [False] * 3 + [True] + [False] * 9)
    assert entities_of(doc, tracked_types={"RUSSIA": "GPE"}) == (
        Mention("RUSSIA", "Russian", "GPE", 0),
        Mention("PERSON:mikhail mishustin", "Mikhail Mishustin", "PERSON", 0),
        Mention("PERSON:mikhail mishustin", "Mishustin", "PERSON", 1),
        Mention("PERSON:vladimir putin", "Putin", "PERSON", 2),           # "'s" trimmed
        Mention("PERSON:vladimir putin", "Vladimir Putin", "PERSON", 2))  # title trimmed


def test_short_name_mislabelled_org_joins_the_person_but_ambiguous_names_stay():
    # Seed 004: the model gave "Trump" as ORG beside "Donald Trump" (PERSON).
    words = ["Donald", "Trump", "met", "Trump", "and", "Ivanka", "Trump", "and", "Kim", "Jong-un",
             "and", "Kim"]
    doc = doc_of(words, [(0, 2, "PERSON"), (3, 4, "ORG"), (5, 7, "PERSON"), (8, 10, "PERSON"),
                         (11, 12, "PERSON")])
    ids = [eid for _, eid, _ in extract_spans(doc)]
    # "Trump" matches two people's last name: left as it is. "Kim" matches no last name
    # but one first name (family name first).
    assert ids == ["PERSON:donald trump", "ORG:trump", "PERSON:ivanka trump",
                   "PERSON:kim jong-un", "PERSON:kim jong-un"]


def test_headline_fragments_and_numbers_are_not_counted():
    # Seed 001's sub-heading, as the model tagged it: "The Regional Implications of" (ORG).
    words = ["The", "Regional", "Implications", "of", "Russia", "-", "North", "Korea",
             "Connectivity", "Boost", ".", "About", "600", "soldiers", "died", "."]
    doc = doc_of(words, [(0, 4, "ORG"), (4, 5, "GPE", "RUSSIA"), (6, 8, "GPE", "NORTH_KOREA"),
                         (12, 13, "CARDINAL")])
    assert [eid for _, eid, _ in extract_spans(doc)] == ["RUSSIA", "NORTH_KOREA"]
    assert [eid for _, eid, _ in extract_spans(doc, excluded_labels=())] == \
        ["RUSSIA", "NORTH_KOREA", "CARDINAL:600"]


def test_a_title_case_headline_taken_whole_is_a_fragment():
    # Seed 001: "How Putin's Pyongyang Visit Cemented Crucial Infrastructure Deal." with
    # "Pyongyang ... Deal" as one ORG: 6 of the sentence's 8 words.
    words = ["How", "Putin", "'s", "Pyongyang", "Visit", "Cemented", "Crucial",
             "Infrastructure", "Deal", ".", "The", "Center", "for", "Strategic", "and",
             "International", "Studies", "analysed", "satellite", "imagery", "."]
    doc = doc_of(words, [(1, 2, "PERSON"), (3, 9, "ORG"), (10, 17, "ORG")],
                 sent_starts=[True] + [False] * 9 + [True] + [False] * 10)
    assert [(s.text, eid) for s, eid, _ in extract_spans(doc)] == [
        ("Putin", "PERSON:putin"),
        ("Center for Strategic and International Studies",
         "ORG:center for strategic and international studies")]


def test_an_entity_stops_at_a_line_break_and_loses_quotes():
    # Seed 002 before boilerplate removal: the model ran an ORG across two lines;
    # and 'the "Storm Corps' with its opening quote.
    words = ["EurAsian", "Times", "\n", "Follow", "the", '"', "Storm", "Corps", '"']
    doc = Doc(VOCAB, words=words, spaces=[True, False, False, True, True, False, True, False, False])
    doc.ents = [Span(doc, 0, 4, "ORG"), Span(doc, 4, 9, "ORG")]
    assert [(s.text, eid) for s, eid, _ in extract_spans(doc)] == [
        ("EurAsian Times", "ORG:eurasian times"), ("Storm Corps", "ORG:storm corps")]
