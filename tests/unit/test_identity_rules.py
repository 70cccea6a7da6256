"""One real-world entity, one id (issue 13): each resolution rule of pipeline/resolve.py, and
the country table, on mentions of real sentences of ../shared/corpora.

The pure-logic tests give ``resolve_article`` the mentions as the model tags them in the quoted
sentence (surface text, label, canonical text): the spans and labels were read off
``entitystream extract`` on that article, the expected ids by reading the sentence. The spaCy
tests run the whole extraction (``extract_spans``) on the sentence itself.
"""
import json
import pathlib

import pytest

from pipeline.resolve import Item, base_name, check_countries_config, country_table, resolve_article

ROOT = pathlib.Path(__file__).resolve().parents[2]
BBC = ROOT.parent / "shared" / "corpora" / "bbc"


def items(*mentions, text=""):
    """``Item``s from (surface, label[, start]) with the canonical text as extract_spans makes it."""
    out = []
    for m in mentions:
        surface, label = m[0], m[1]
        start = m[2] if len(m) > 2 else (text.find(surface) if text else 0)
        out.append(Item(surface, start, start + len(surface), label, surface.lower()))
    return out


def ids(found):
    return [i.entity_id for i in found]


@pytest.fixture(scope="module")
def countries():
    return country_table("{}", (("RUSSIA", "GPE", ("Russia", "Russian")),))


def test_corporate_suffixes_are_not_part_of_the_name():
    # bbc/tech/065.txt "invested in Apple Computer and Cisco Systems"; Reuters "Apple Computer Inc".
    assert base_name("ORG", "apple computer inc.") == "apple computer"
    assert base_name("ORG", "general motors corp") == "general motors"
    assert base_name("ORG", "volkswagen ag") == "volkswagen"
    assert base_name("ORG", "hutton group") == "hutton"       # reuters-4477 "Hutton Group"
    assert base_name("ORG", "group") == "group"               # nothing left: kept
    assert base_name("GPE", "new york city") == "new york"    # AIDA: "New York City", "NEW YORK"
    assert base_name("PERSON", "john company") == "john company"  # only ORG loses suffixes


def test_parenthesised_acronym_is_its_expansion(countries):
    # bbc/business/099.txt: "US car firms General Motors (GM) and Ford ... US sales at GM sank".
    text = ("US car firms General Motors (GM) and Ford have been forced to cut production. "
            "US sales at GM sank 12.7% in February.")
    found = resolve_article(items(("US", "GPE"), ("General Motors", "ORG"), ("Ford", "ORG"),
                                  ("US", "GPE", text.rfind("US")), ("GM", "ORG", text.rfind("GM")),
                                  text=text), text, countries)
    assert ids(found) == ["COUNTRY:USA", "ORG:general motors", "ORG:ford", "COUNTRY:USA",
                          "ORG:general motors"]


def test_acronym_of_the_initials_of_one_entity(countries):
    # bbc/business: "the International Monetary Fund (IMF) said"; later "the IMF" alone, and
    # an article where only the initials match ("World Trade Organisation ... the WTO").
    found = resolve_article(items(("World Trade Organisation", "ORG"), ("WTO", "ORG"),
                                  ("Geneva", "GPE")), "", countries)
    assert ids(found) == ["ORG:world trade organisation"] * 2 + ["GPE:geneva"]
    # Two entities with the same initials: no guess.
    found = resolve_article(items(("Mobile Data Association", "ORG"), ("Metropolitan Diocese "
                                  "Authority", "ORG"), ("MDA", "ORG")), "", countries)
    assert ids(found)[2] == "ORG:mda"


def test_short_and_long_organisation_names(countries):
    # bbc/tech/065.txt "Apple Computer", later in such articles "Apple": one organisation,
    # under the short name; two longer names starting alike: no guess.
    found = resolve_article(items(("Apple Computer", "ORG"), ("Apple", "ORG")), "", countries)
    assert ids(found) == ["ORG:apple", "ORG:apple"]
    found = resolve_article(items(("Manchester United", "ORG"), ("Manchester City", "ORG"),
                                  ("Manchester", "ORG")), "", countries)
    assert ids(found) == ["ORG:manchester united", "ORG:manchester city", "ORG:manchester"]


def test_one_label_per_entity_in_an_article(countries):
    # BBC "Ryanair in $4bn Boeing plane deal": the model tags "Ryanair" PERSON in the headline
    # and ORG in the body (twice): counted once, as the majority says.
    found = resolve_article(items(("Ryanair", "PERSON"), ("Boeing", "ORG"), ("Ryanair", "ORG"),
                                  ("Ryanair", "ORG")), "", countries)
    assert ids(found) == ["ORG:ryanair", "ORG:boeing", "ORG:ryanair", "ORG:ryanair"]
    # A tie goes to the first label of LABEL_PREFERENCE (PERSON before ORG), in any order.
    a = resolve_article(items(("Jobs", "ORG"), ("Jobs", "PERSON")), "", countries)
    b = resolve_article(items(("Jobs", "PERSON"), ("Jobs", "ORG")), "", countries)
    assert ids(a) == ids(b) == ["PERSON:jobs"] * 2


def test_first_name_only_when_one_person_has_it(countries):
    # "Steve Jobs ... Steve P. Jobs ... Steve": two spellings of one person, so "Steve" is him.
    found = resolve_article(items(("Steve Jobs", "PERSON"), ("Steve P. Jobs", "PERSON"),
                                  ("Steve", "PERSON")), "", countries)
    assert ids(found) == ["PERSON:steve jobs"] * 3
    # Seed 004: "Kim Jong-un" and "Kim"; with a second Kim (Kim Yo-jong) "Kim" stays alone.
    found = resolve_article(items(("Kim Jong-un", "PERSON"), ("Kim", "PERSON")), "", countries)
    assert ids(found) == ["PERSON:kim jong-un"] * 2
    found = resolve_article(items(("Kim Jong-un", "PERSON"), ("Kim Yo-jong", "PERSON"),
                                  ("Kim", "PERSON")), "", countries)
    assert ids(found)[2] == "PERSON:kim"
    # The last name of one person: bbc/sport/123.txt "Chelsea's John Terry ... Terry".
    found = resolve_article(items(("John Terry", "PERSON"), ("Terry", "ORG")), "", countries)
    assert ids(found) == ["PERSON:john terry"] * 2


def test_countries_one_id_for_names_short_forms_and_demonyms(countries):
    # AIDA testb: "U.S.", "United States", "the United States", "American" are one page.
    found = resolve_article(items(("U.S.", "GPE"), ("United States", "GPE"), ("America", "GPE"),
                                  ("American", "NORP"), ("US", "GPE"), ("Britain", "GPE"),
                                  ("British", "NORP"), ("UK", "GPE")), "", countries)
    assert ids(found) == ["COUNTRY:USA"] * 5 + ["COUNTRY:GBR"] * 3
    assert {i.label for i in found} == {"GPE"}            # counted as the country
    assert found[3].typed_label == "NORP"                  # the demonym keeps NORP in the text
    # A tracked entity that names a country wins (seed counts: "Russian" is RUSSIA).
    found = resolve_article(items(("Russian Federation", "GPE"), ("Russians", "NORP")), "",
                            countries)
    assert ids(found) == ["RUSSIA", "RUSSIA"]


def test_capitals_are_their_own_place_unless_configured(countries):
    # Seed 003 "a summit in Pyongyang"; "Moscow's latest investment" (seed 002).
    assert ids(resolve_article(items(("Pyongyang", "GPE")), "", countries)) == ["GPE:pyongyang"]
    table = country_table(json.dumps({"capital_is_country": ["PRK"]}, sort_keys=True), ())
    assert ids(resolve_article(items(("Pyongyang", "GPE")), "", table)) == ["COUNTRY:PRK"]
    # Georgia (country or US state) is left out of the shipped table on purpose.
    assert ids(resolve_article(items(("Georgia", "GPE")), "", countries)) == ["GPE:georgia"]


def test_country_table_overrides_from_the_tracked_entities_file():
    table = country_table(json.dumps({"names": {"USA": ["Uncle Sam"]},
                                      "exclude_names": ["America"]}, sort_keys=True), ())
    found = resolve_article(items(("Uncle Sam", "GPE"), ("America", "GPE")), "", table)
    assert ids(found) == ["COUNTRY:USA", "GPE:america"]
    assert country_table(json.dumps({"enabled": False}), ()) is None
    with pytest.raises(ValueError, match=r"countries.capital_is_country: unknown ISO 3166 "
                                         r"alpha-3 code 'XXX'"):
        check_countries_config("f.json", {"capital_is_country": ["XXX"]})
    with pytest.raises(ValueError, match=r"countries: unknown keys \['capitals'\]"):
        check_countries_config("f.json", {"capitals": []})


@pytest.mark.spacy
def test_whole_extraction_on_a_real_article():
    """bbc/business/099.txt (GM, Ford, US): read by hand, every GM is General Motors and
    every US/America the United States; 'North American' and 'North America' are regions."""
    from pipeline.entities import RULER, extract_spans, load_model
    nlp = load_model()
    lines = (BBC / "business" / "099.txt").read_text(encoding="utf-8").split("\n")
    doc = nlp(lines[0] + ".\n" + "\n".join(l for l in lines[1:] if l.strip()))
    found = [(s.text, eid) for s, eid, _ in
             extract_spans(doc, tracked_types=nlp.get_pipe(RULER).gazetteer.types)]
    by_text = {}
    for text, eid in found:
        by_text.setdefault(text, set()).add(eid)
    assert by_text["GM"] == by_text["General Motors"] == {"ORG:general motors"}
    assert by_text["US"] == by_text["America"] == {"COUNTRY:USA"}
    # 8 by reading (headline 1, "General Motors (GM)" 2, then 5 "GM"); grep -ow agrees.
    assert sum(t in ("GM", "General Motors") for t, _ in found) == 8


@pytest.mark.spacy
def test_a_tracked_entities_file_can_make_a_capital_its_state(tmp_path):
    """Seed 002 "Pyongyang's broader military ambitions" (the state): with the shipped file
    Pyongyang is its own place; a copy with capital_is_country PRK counts it as the tracked
    NORTH_KOREA, which names that country."""
    from pipeline.entities import RULER, extract_spans, load_model
    from pipeline.gazetteer import DEFAULT_TRACKED_ENTITIES
    config = json.loads(DEFAULT_TRACKED_ENTITIES.read_text(encoding="utf-8"))
    config["countries"] = {"capital_is_country": ["PRK"]}
    path = tmp_path / "tracked.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    text = "Analysts said Pyongyang's broader military ambitions worry Seoul."
    for tracked, want in ((None, "GPE:pyongyang"), (str(path), "NORTH_KOREA")):
        nlp = load_model(tracked_entities=tracked)
        ruler = nlp.get_pipe(RULER)
        found = {s.text: eid for s, eid, _ in extract_spans(
            nlp(text), tracked_types=ruler.gazetteer.types, countries=ruler.countries)}
        assert found["Pyongyang"] == want
        assert found["Seoul"] == "GPE:seoul"
