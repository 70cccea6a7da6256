"""Property-based tests of ``load_tracked_entities``: whatever the file holds
(any bytes, any JSON, a valid file with any one part replaced by any JSON
value), the only error is a ``ValueError`` naming the file, and what it
accepts spaCy's ruler accepts too; every valid file loads as written."""
import json

import pytest
import spacy
from hypothesis import given
from hypothesis import strategies as st
from spacy.pipeline.span_ruler import SpanRuler
from spacy.tokens import Doc

from pipeline.gazetteer import load_tracked_entities

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-10 ** 30, max_value=10 ** 30)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)

IDS = st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True)
LABELS = st.from_regex(r"[A-Z][A-Z_]{0,7}", fullmatch=True)
PHRASES = st.text(min_size=1, max_size=20).filter(str.strip)
ATTRS = st.sampled_from(["ORTH", "TEXT", "LOWER", "NORM", "LEMMA", "POS", "TAG", "MORPH", "DEP",
                         "SHAPE", "IS_ALPHA", "IS_DIGIT", "LIKE_NUM", "LENGTH", "OP", "ENT_TYPE",
                         "IS_SENT_START", "_", "lower", "REGEX", "IN", "FUZZY"])
TOKEN_VALUES = st.one_of(
    JSON, PHRASES, st.sampled_from(["?", "*", "+", "!", "{2}", "{1,3}", "{3,1}", "{,2}", "x"]),
    st.dictionaries(st.sampled_from(["IN", "NOT_IN", "REGEX", "FUZZY", "FUZZY2", ">=", "==",
                                     "INTERSECTS"]),
                    st.one_of(JSON, PHRASES, st.sampled_from(["(", "[a-z]+", "^x$"]),
                              st.lists(PHRASES, max_size=3)), min_size=1, max_size=2))
TOKEN_PATTERNS = st.lists(st.dictionaries(ATTRS, TOKEN_VALUES, max_size=3), min_size=1, max_size=3)
# Token patterns spaCy documents, which must load.
VALID_TOKEN_PATTERNS = st.sampled_from([
    [{"LOWER": "tumen"}, {"LOWER": "river"}],
    [{"LEMMA": {"IN": ["bridge", "Bridge"]}, "POS": {"IN": ["NOUN", "PROPN"]}}],
    [{"TEXT": {"REGEX": "^[Pp]yongyang$"}}],
    [{"ORTH": "Kim"}, {"IS_TITLE": True, "OP": "?"}],
    [{"LOWER": {"FUZZY": "vladivostok"}}],
    [{"TAG": "NNP", "OP": "+"}, {"LOWER": "bridge"}],
    [{"LENGTH": {">=": 3}, "IS_UPPER": True}],
    [{"DEP": "compound", "OP": "*"}, {"LOWER": "bridge"}],
    [{"MORPH": {"IS_SUPERSET": ["Number=Plur"]}, "LEMMA": "bridge"}],
])

ENTITY_KEYS = ("id", "name", "type", "aliases")

# A file with no entities is valid; spaCy warns that the ruler has no patterns.
pytestmark = pytest.mark.filterwarnings("ignore:.*W036")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return tmp_path_factory.mktemp("tracked") / "tracked.json"


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def load_or_error(path, content):
    """``load_tracked_entities`` on a file holding ``content`` (bytes, or JSON to
    dump): the gazetteer, or the ValueError, which must name the file."""
    path.write_bytes(content if isinstance(content, bytes)
                     else json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    try:
        return load_tracked_entities(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return exc


def build_ruler(nlp, gazetteer):
    """The patterns in a SpanRuler as TrackedEntityRuler configures it, run on a
    document annotated by exactly the components ``required_pipes`` names (the
    pipeline keeps only those): spaCy's Matcher raises if a pattern needs more."""
    ruler = SpanRuler(nlp, "tracked", spans_key=None, annotate_ents=True, validate=True,
                      phrase_matcher_attr=gazetteer.phrase_matcher_attr)
    ruler.add_patterns(gazetteer.span_ruler_patterns())
    pipes = gazetteer.required_pipes
    ruler(Doc(nlp.vocab, words=["Tumen", "River", "bridges", "12"],
              tags=["NNP", "NNP", "NNS", "CD"] if "tagger" in pipes else None,
              pos=["PROPN", "PROPN", "NOUN", "NUM"] if "attribute_ruler" in pipes else None,
              morphs=["Number=Sing"] * 2 + ["Number=Plur", "NumType=Card"]
              if "attribute_ruler" in pipes else None,
              lemmas=["Tumen", "River", "bridge", "12"] if "lemmatizer" in pipes else None,
              heads=[1, 2, 2, 2] if "parser" in pipes else None,
              deps=["compound", "compound", "ROOT", "nummod"] if "parser" in pipes else None))


@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_a_value_error(config_file, content):
    load_or_error(config_file, content)


@given(JSON)
def test_any_json_loads_or_raises_a_value_error(config_file, doc):
    load_or_error(config_file, doc)


@st.composite
def valid_configs(draw):
    """A valid file: unique ids, phrases unique across entities (case-folded
    under LOWER), labels and token patterns spaCy accepts."""
    attr = draw(st.sampled_from([None, "ORTH", "LOWER", "NORM"]))
    ids = draw(st.lists(IDS, min_size=0, max_size=4, unique=True))
    owner = {}
    entities = []
    for entity_id in ids:
        aliases = []
        for kind in draw(st.lists(st.sampled_from(["phrase", "labelled", "tokens"]),
                                  min_size=1, max_size=4)):
            if kind == "tokens":
                aliases.append(draw(VALID_TOKEN_PATTERNS))
                continue
            phrase = draw(PHRASES)
            key = phrase.lower() if attr in (None, "LOWER") else phrase
            if owner.setdefault(key, entity_id) != entity_id:
                continue    # an alias may name one entity only: tested elsewhere
            aliases.append(phrase if kind == "phrase"
                           else {"pattern": phrase, "label": draw(LABELS)})
        if not aliases:
            aliases.append(draw(VALID_TOKEN_PATTERNS))
        entities.append({"id": entity_id, "name": draw(PHRASES), "type": draw(LABELS),
                         "aliases": aliases})
    doc = {"entities": entities}
    if attr is not None:
        doc["phrase_matcher_attr"] = attr
    if draw(st.booleans()):
        doc["version"] = 1
    if draw(st.booleans()):
        doc["_comment"] = draw(JSON)
    return doc


@given(valid_configs())
def test_valid_files_load_as_written(config_file, nlp, doc):
    g = load_or_error(config_file, doc)
    assert not isinstance(g, ValueError), g
    assert g.phrase_matcher_attr == doc.get("phrase_matcher_attr", "LOWER")
    assert [(e.id, e.name, e.type) for e in g.entities] == \
        [(e["id"], e["name"], e["type"]) for e in doc["entities"]]
    assert [[(a.pattern, a.label) for a in e.aliases] for e in g.entities] == [
        [(a["pattern"], a["label"]) if isinstance(a, dict) else (a, None) for a in e["aliases"]]
        for e in doc["entities"]]
    build_ruler(nlp, g)


@given(TOKEN_PATTERNS)
def test_token_patterns_load_with_their_entry_named_or_build_a_ruler(config_file, nlp, pattern):
    doc = {"entities": [{"id": "TUMEN", "name": "Tumen", "type": "LOC",
                         "aliases": ["Tumen River", pattern]}]}
    g = load_or_error(config_file, doc)
    if isinstance(g, ValueError):
        assert "entities[0].aliases[1]" in str(g)
    else:
        build_ruler(nlp, g)


@st.composite
def broken_configs(draw):
    """A valid file with one part (top level, entity, key or alias) replaced by
    arbitrary JSON or a token pattern built from spaCy's vocabulary."""
    doc = draw(valid_configs())
    junk = draw(st.one_of(JSON, TOKEN_PATTERNS, st.lists(TOKEN_PATTERNS, max_size=2)))
    where = draw(st.sampled_from(["top", "entities", "entity", "key", "alias", "pattern"]))
    entities = doc["entities"]
    if where == "top":
        doc[draw(st.sampled_from(["version", "phrase_matcher_attr", "entities", "other"]))] = junk
    elif where == "entities" or not entities:
        doc["entities"] = junk
    else:
        entity = entities[draw(st.integers(0, len(entities) - 1))]
        if where == "entity":
            entities[entities.index(entity)] = junk
        elif where == "key":
            entity[draw(st.sampled_from(ENTITY_KEYS + ("extra",)))] = junk
        else:
            j = draw(st.integers(0, len(entity["aliases"]) - 1))
            entity["aliases"][j] = junk if where == "alias" else {"pattern": junk}
    return doc


@given(broken_configs())
def test_broken_files_raise_a_value_error_or_build_a_ruler(config_file, nlp, doc):
    g = load_or_error(config_file, doc)
    if not isinstance(g, ValueError):
        build_ruler(nlp, g)
