"""The tracked-entities file: the shipped default and every schema error."""
import json

import pytest

from pipeline.gazetteer import DEFAULT_TRACKED_ENTITIES, load_tracked_entities

RUSSIA = {"id": "RUSSIA", "name": "Russia", "type": "GPE", "aliases": ["Russia"]}


def write(tmp_path, doc):
    path = tmp_path / "tracked.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def test_default_file_has_the_seed_entities():
    g = load_tracked_entities()
    assert g.source == str(DEFAULT_TRACKED_ENTITIES)
    assert g.types == {"RUSSIA": "GPE", "NORTH_KOREA": "GPE", "BRIDGE": "FAC"}
    phrases = {a.pattern for e in g.entities for a in e.aliases if isinstance(a.pattern, str)}
    assert {"Russia", "Russian Federation", "Russian", "Russians", "North Korea", "DPRK",
            "Democratic People's Republic of Korea", "North Korean", "North Koreans"} <= phrases
    # BRIDGE matches word forms, with context exclusions: no tagger or lemmatizer (issue 13).
    assert not g.needs_tagger and "LEMMA" not in g.token_attrs
    bridge = next(e for e in g.entities if e.id == "BRIDGE")
    assert bridge.exclude and "Stamford Bridge" in bridge.exclude
    demonyms = {a.pattern: a.label for e in g.entities for a in e.aliases if a.label}
    assert demonyms == {"Russian": "NORP", "Russians": "NORP", "North Korean": "NORP",
                        "North Koreans": "NORP"}


def test_span_ruler_patterns_carry_id_and_label():
    g = load_tracked_entities()
    patterns = g.span_ruler_patterns()
    assert {"label": "NORP", "pattern": "Russian", "id": "RUSSIA"} in patterns
    assert {"label": "GPE", "pattern": "DPRK", "id": "NORTH_KOREA"} in patterns


def test_a_user_file_without_token_patterns_needs_no_tagger(tmp_path):
    g = load_tracked_entities(write(tmp_path, {"version": 1, "entities": [RUSSIA]}))
    assert not g.needs_tagger and g.phrase_matcher_attr == "LOWER"


@pytest.mark.parametrize("doc, message", [
    ("{not json", "not valid JSON"),
    ([RUSSIA], "top level: expected an object"),
    ({"entities": [RUSSIA], "entitys": []}, "unknown keys ['entitys']"),
    ({"version": 2, "entities": [RUSSIA]}, "only version 1"),
    ({"phrase_matcher_attr": "LEMMA", "entities": [RUSSIA]}, "phrase_matcher_attr: must be one of"),
    ({"entities": {"RUSSIA": RUSSIA}}, "entities: must be a list"),
    ({"entities": [dict(RUSSIA, id="russia")]}, "entities[0].id: must be upper-case"),
    ({"entities": [dict(RUSSIA, id="GPE:RUSSIA")]}, "entities[0].id: must be upper-case"),
    ({"entities": [{k: v for k, v in RUSSIA.items() if k != "type"}]}, "missing ['type']"),
    ({"entities": [dict(RUSSIA, type="gpe")]}, "entities[0].type: must be an upper-case label"),
    ({"entities": [dict(RUSSIA, name=" ")]}, "entities[0].name: must be a non-empty string"),
    ({"entities": [dict(RUSSIA, aliases=[])]}, "entities[0].aliases: must be a non-empty list"),
    ({"entities": [dict(RUSSIA, aliases=["Russia", ""])]}, "entities[0].aliases[1]: a phrase alias"),
    ({"entities": [dict(RUSSIA, aliases=[42])]}, "entities[0].aliases[0]: an alias is"),
    ({"entities": [dict(RUSSIA, aliases=[[{"LEMMA": {"IN": "bridge"}}]])]},
     "entities[0].aliases[0]: not a valid spaCy token pattern"),
    ({"entities": [dict(RUSSIA, aliases=[{"pattern": "Russian", "label": "norp"}])]},
     "entities[0].aliases[0]: label must be upper-case"),
    ({"entities": [dict(RUSSIA, aliases=[{"text": "Russian"}])]}, "an alias object has 'pattern'"),
    ({"entities": [RUSSIA, RUSSIA]}, "entities[1].id: RUSSIA is listed twice"),
    ({"entities": [RUSSIA, dict(RUSSIA, id="RUS", aliases=["RUSSIA"])]},
     "entities[1].aliases[0]: phrase 'RUSSIA' is already an alias of RUSSIA"),
])
def test_schema_errors_name_the_entry_and_the_problem(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(ValueError) as info:
        load_tracked_entities(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="cannot read it .*--tracked-entities"):
        load_tracked_entities(tmp_path / "nope.json")


# --- Found by the property-based tests (tests/unit/test_fuzz_tracked_entities.py)
# and by reading for them: every problem is a ValueError naming the file and the
# entry, and what loads, spaCy's ruler accepts. ---

import spacy  # noqa: E402
from spacy.pipeline.span_ruler import SpanRuler  # noqa: E402


def one_alias(pattern):
    return {"entities": [dict(RUSSIA, aliases=["Russia", pattern])]}


def test_bytes_that_are_not_utf8_name_the_file(tmp_path):
    # Hypothesis: b"\x80" raised UnicodeDecodeError without the file's name.
    path = tmp_path / "tracked.json"
    path.write_bytes(b"\x80")
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0x80 at offset 0\)") as info:
        load_tracked_entities(path)
    assert str(path) in str(info.value)


def test_a_utf8_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "tracked.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"entities": [RUSSIA]}).encode())
    assert load_tracked_entities(path).types == {"RUSSIA": "GPE"}


@pytest.mark.parametrize("doc, message", [
    # By reading: json.loads raises RecursionError, or a plain ValueError for a number
    # of 4,301+ digits, neither caught as "not valid JSON".
    ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deep"),
    ('{"version": 1' + "0" * 5000 + "}", "not valid JSON: Exceeds the limit"),
    # Hypothesis: spaCy compiles REGEX only when the ruler is built (re.error).
    (one_alias([{"ORTH": {"REGEX": "("}}]),
     "entities[0].aliases[1]: spaCy's Matcher refuses this token pattern: missing )"),
    # Hypothesis: an operator spaCy's schema lets through and its Matcher refuses.
    (one_alias([{"OP": "{1,0}"}]), "entities[0].aliases[1]: spaCy's Matcher refuses"),
    # By reading: a float where the Matcher wants an integer (E153).
    (one_alias([{"LENGTH": 1.5}]), "entities[0].aliases[1]: spaCy's Matcher refuses"),
    # Hypothesis: custom attributes raised TypeError when built ({"IN": []}) or
    # AttributeError on the first article (unregistered extension).
    (one_alias([{"_": {"IN": []}}]), "entities[0].aliases[1]: custom attributes ('_')"),
    (one_alias([{"_": {"x": 1}}]), "entities[0].aliases[1]: custom attributes ('_')"),
    # By reading: "$" also matched before a final line break, and True == 1.
    ({"entities": [dict(RUSSIA, id="RUSSIA\n")]}, "entities[0].id: must be upper-case"),
    ({"entities": [dict(RUSSIA, type="GPE\n")]}, "entities[0].type: must be an upper-case"),
    (one_alias({"pattern": "Rus", "label": "NORP\n"}), "aliases[1]: label must be upper-case"),
    ({"version": True, "entities": [RUSSIA]}, "version: only version 1 is known, got True"),
    ({"version": 1.0, "entities": [RUSSIA]}, "version: only version 1 is known, got 1.0"),
])
def test_what_spacy_or_python_would_refuse_later_is_refused_with_its_entry(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(ValueError) as info:
        load_tracked_entities(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_a_bad_value_is_shown_cut(tmp_path):
    path = write(tmp_path, {"entities": [dict(RUSSIA, id="x" * 10_000)]})
    with pytest.raises(ValueError) as info:
        load_tracked_entities(path)
    assert "(10,002 chars)" in str(info.value) and len(str(info.value)) < 400


def test_a_dependency_pattern_keeps_the_parser(tmp_path):
    # Hypothesis: [{"DEP": "0"}] loaded, but the pipeline keeps only required_pipes and
    # had dropped the parser: spaCy's Matcher raised E155 on every article.
    g = load_tracked_entities(write(tmp_path, one_alias([{"DEP": "compound"},
                                                         {"LOWER": "bridge"}])))
    assert g.required_pipes == {"tok2vec", "parser"}


def test_what_loads_builds_a_ruler(tmp_path):
    g = load_tracked_entities(write(tmp_path, one_alias([{"TEXT": {"REGEX": "^Mosc"}}])))
    ruler = SpanRuler(spacy.blank("en"), "r", spans_key=None, annotate_ents=True, validate=True)
    ruler.add_patterns(g.span_ruler_patterns())


@pytest.mark.parametrize("entity, message", [
    (dict(RUSSIA, exclude="Russian roulette"), r"entities\[0\]\.exclude: must be a list"),
    (dict(RUSSIA, exclude=[""]), r"entities\[0\]\.exclude\[0\]: a phrase must not be empty"),
    (dict(RUSSIA, exclude=[[{"LOWER": "x", "OP": "!!"}]]), r"entities\[0\]\.exclude\[0\]: "),
    (dict(RUSSIA, exclude=[3]), r"entities\[0\]\.exclude\[0\]: an exclusion is a phrase"),
])
def test_bad_exclusions_name_the_entry(tmp_path, entity, message):
    with pytest.raises(ValueError, match=message):
        load_tracked_entities(write(tmp_path, {"version": 1, "entities": [entity]}))


@pytest.mark.spacy
def test_an_exclusion_removes_only_its_entitys_overlapping_matches(tmp_path):
    import spacy
    from pipeline.gazetteer import TrackedEntityRuler
    path = write(tmp_path, {"version": 1, "entities": [
        dict(RUSSIA, exclude=["Russia Today"]),
        {"id": "BANK", "name": "Bank", "type": "ORG", "aliases": ["Russia Today"]}]})
    nlp = spacy.blank("en")
    nlp.add_pipe("tracked_entity_ruler", config={"path": str(path)})
    assert isinstance(nlp.get_pipe("tracked_entity_ruler"), TrackedEntityRuler)
    doc = nlp("Russia Today reported on Russia.")
    assert [(e.text, e.id_) for e in doc.ents] == [("Russia Today", "BANK"), ("Russia", "RUSSIA")]
