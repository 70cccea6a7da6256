"""One real-world entity, one id: the rules that join an article's mentions, and the country table.

``extract_spans`` (pipeline/entities.py) finds and trims the spans of an
article and gives each a label and a canonical text; ``resolve_article``
then decides which mentions name the same entity, deterministically and
without any network:

1. **corporate suffixes**: an ORG name loses a trailing "Inc.", "Corp.",
   "Co.", "Ltd", "plc", "Company", "Group", "AG", "SA" ... ("Apple Inc." ->
   ``apple``); a place loses a trailing "City" ("New York City" -> ``new york``);
2. **one label per entity per article**: mentions of one name take the
   label most of them have ("Ryanair" PERSON once, ORG twice: ORG; a tie goes
   to the first in ``LABEL_PREFERENCE``);
3. **acronyms**: "General Motors (GM)" defines GM anywhere in the article; else
   an acronym is the entity whose initials it spells, when exactly one entity
   of the article does ("IMF" and "International Monetary Fund");
4. **people**: full names with the same first and last word are one person
   ("Steve Jobs", "Steve P. Jobs"); a one-word PERSON, ORG, WORK_OF_ART or
   PRODUCT name that is the last name of exactly one person is that person; a
   one-word PERSON name with no such match that is the first name of exactly
   one person is too ("Kim" -> ``kim jong-un``), never when two people share it;
5. **short and long organisation names**: an ORG name that is the first
   words of exactly one longer ORG name of the article is that organisation,
   counted under the short name ("Apple" and "Apple Computer": ``ORG:apple``);
6. **countries** (``CountryTable``): a GPE, LOC or NORP mention whose text is a
   country's name, short form or demonym ("U.S.", "United States",
   "America", "American"), or an ORG mention whose text is a country's name
   (its team, its government: "Japan" tagged ORG in a sports report), is
   ``COUNTRY:<ISO alpha-3>`` (``COUNTRY:USA``),
   counted with the label GPE, whatever article it is in; a country that a
   tracked entity names (RUSSIA) is counted under the tracked id instead.

Rules 2 to 5 join mentions within one article only; rules 1 and 6 give the
same id in every article, whatever came first.

The country table: the ISO 3166-1 names of ``pycountry`` (``name``,
``common_name``, ``official_name``), plus ``pipeline/countries.json``
(common forms, demonyms, capitals, written for this project). A capital is
its own place ("a summit in Pyongyang") unless the entry or the
tracked-entities file says it stands for its state. The tracked-entities
file's optional ``countries`` object overrides the table::

    "countries": {"enabled": true,                    # false: no country table
                  "capital_is_country": ["PRK"],      # Pyongyang counts as North Korea
                  "names": {"USA": ["Uncle Sam"]},    # more names of a country
                  "demonyms": {"GBR": ["Brit"]},      # more demonyms
                  "exclude_names": ["jordan"]}        # names that are not the country
"""
import collections
import functools
import json
import pathlib
import re
from typing import Dict, Optional, Tuple

__all__ = ["resolve_article", "Item", "CountryTable", "country_table", "base_name",
           "check_countries_config", "CORPORATE_SUFFIXES", "LABEL_PREFERENCE",
           "COUNTRY_LABELS", "DEFAULT_COUNTRIES"]

DEFAULT_COUNTRIES = pathlib.Path(__file__).resolve().parent / "countries.json"
CORPORATE_SUFFIXES = frozenset("""
    inc inc. incorporated corp corp. corporation co co. company cos cos. ltd ltd. limited plc
    plc. llc l.l.c. lp l.p. group ag sa s.a. nv n.v. bv b.v. spa s.p.a. gmbh ab asa oyj
    holdings holding
""".split())
_PLACE_SUFFIXES = frozenset({"city"})
# Ties in the majority label go to the first of these.
LABEL_PREFERENCE = ("PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "PRODUCT", "EVENT",
                    "WORK_OF_ART", "LAW", "LANGUAGE")
COUNTRY_LABELS = frozenset({"GPE", "LOC", "NORP"})
_SHORT_NAME_LABELS = frozenset({"PERSON", "ORG", "WORK_OF_ART", "PRODUCT"})
_INITIAL_SKIP = frozenset({"of", "and", "the", "for", "&", "de", "du", "des", "la", "le",
                           "in", "on", "at", "to"})
_ACRONYM = re.compile(r"[A-Z](?:[A-Z&]|\.(?=[A-Z]))*\.?")
_DEFINED = re.compile(r"\s*\(\s*([A-Z][A-Z&.]{1,9})\s*\)")
_COUNTRY_KEYS = {"_comment", "enabled", "capital_is_country", "names", "demonyms",
                 "exclude_names"}


class Item:
    """One mention while its article is resolved: surface ``text`` and where it is
    (``start``, ``end`` in the article text), ``label``, canonical ``name``, and
    ``entity_id`` (set for tracked mentions, which no rule changes)."""

    __slots__ = ("text", "start", "end", "label", "name", "entity_id", "typed_label")

    def __init__(self, text, start, end, label, name, entity_id=None):
        self.text, self.start, self.end = text, start, end
        self.label, self.name, self.entity_id = label, name, entity_id
        self.typed_label = label  # the label before a country id made it GPE ("NORP")

    def __repr__(self):
        return f"Item({self.text!r}, {self.label}, {self.name!r}, {self.entity_id!r})"


def base_name(label: str, name: str) -> str:
    """``name`` without a trailing corporate suffix (ORG) or "city" (GPE, LOC)."""
    suffixes = (CORPORATE_SUFFIXES if label == "ORG"
                else _PLACE_SUFFIXES if label in ("GPE", "LOC") else ())
    words = name.split()
    while len(words) > 1 and (words[-1].strip(",") in suffixes or words[-1] in (",", "&")):
        words.pop()
    if len(words) < len(name.split()):
        words[-1] = words[-1].rstrip(",")
    return " ".join(words)


def _majority_labels(items):
    votes = collections.defaultdict(collections.Counter)
    for item in items:
        votes[item.name][item.label] += 1
    rank = {label: i for i, label in enumerate(LABEL_PREFERENCE)}
    for item in items:
        counts = votes[item.name]
        if len(counts) > 1:
            item.label = min(counts, key=lambda lab: (-counts[lab], rank.get(lab, 99), lab))


def _letters(text):
    return text.replace(".", "")


def _initials(name):
    words = [w for w in re.split(r"[\s\-]+", name) if w]
    short = "".join(w[0] for w in words if w not in _INITIAL_SKIP)
    return {short, "".join(w[0] for w in words)} if len(words) > 1 else set()


def _acronyms(items, text, countries):
    defined = {}
    for item in items:
        match = _DEFINED.match(text, item.end)
        if match and " " in item.name:
            defined.setdefault(_letters(match.group(1)).casefold(), set()).add(
                (item.name, item.label))
    by_initials = collections.defaultdict(set)
    for item in items:
        if item.label != "PERSON":
            for initials in _initials(item.name):
                by_initials[initials].add((item.name, item.label))
    for item in items:
        if not _ACRONYM.fullmatch(item.text) or len(_letters(item.text)) < 2:
            continue
        if countries is not None and countries.lookup(item.name, item.label):
            continue
        key = _letters(item.text).casefold()
        match = defined.get(key) or by_initials.get(key, ())
        if len(match) == 1:
            name, label = next(iter(match))
            if name != item.name:
                item.name, item.label = name, label


def _people(items):
    people = collections.defaultdict(set)  # (first, last) -> full names
    for item in items:
        words = item.name.split()
        if item.label == "PERSON" and len(words) > 1:
            people[(words[0], words[-1])].add(item.name)
    canonical = {}
    for names in people.values():
        chosen = min(names, key=lambda n: (len(n), n))
        canonical.update((n, chosen) for n in names)
    by_last, by_first = collections.defaultdict(set), collections.defaultdict(set)
    for (first, last), names in people.items():
        by_last[last].add(canonical[next(iter(names))])
        by_first[first].add(canonical[next(iter(names))])
    for item in items:
        if item.label == "PERSON" and item.name in canonical:
            item.name = canonical[item.name]
        elif item.label in _SHORT_NAME_LABELS and " " not in item.name:
            match = by_last.get(item.name, ())
            if not match and item.label == "PERSON":
                match = by_first.get(item.name, ())
            if len(match) == 1:
                item.label, item.name = "PERSON", next(iter(match))


def _short_organisations(items):
    orgs = {item.name for item in items if item.label == "ORG"}
    longer = {}
    for short in orgs:
        words = short.split()
        found = {n for n in orgs if n != short and n.split()[:len(words)] == words}
        if len(found) == 1:
            longer[next(iter(found))] = short
    for item in items:
        if item.label == "ORG" and item.name in longer:
            item.name = longer[item.name]


def resolve_article(items, text="", countries=None):
    """Give every ``Item`` of one article its ``entity_id`` (module docstring)."""
    free = [item for item in items if item.entity_id is None]
    for item in free:
        item.name = base_name(item.label, item.name)
    _majority_labels(free)
    _acronyms(free, text, countries)
    _people(free)
    _short_organisations(free)
    _majority_labels(free)
    for item in free:
        item.typed_label = item.label
        found = countries.lookup(item.name, item.label) if countries is not None else None
        if found:
            item.entity_id, item.label = found
        else:
            item.entity_id = f"{item.label}:{item.name}"
    return items


def _key(name: str) -> str:
    return " ".join(name.translate(str.maketrans("\u2019", "'")).casefold()
                    .replace(".", "").split())


class CountryTable:
    """Country names and demonyms -> ``(entity id, label)``; see the module docstring."""

    def __init__(self, *, names: Dict[str, Tuple[str, str]], demonyms: Dict[str, Tuple[str, str]]):
        self._names, self._demonyms = names, demonyms

    def lookup(self, name: str, label: str) -> Optional[Tuple[str, str]]:
        """The ``(id, label)`` a mention ``name`` labelled ``label`` is counted with."""
        key = _key(name)
        if label == "ORG":  # a country's name as an organisation: its team, its government
            return self._names.get(key)
        if label not in COUNTRY_LABELS:
            return None
        return self._names.get(key) or self._demonyms.get(key)

    def __len__(self):
        return len(set(self._names.values()))


def check_countries_config(source, raw, known_codes=None):
    """Check the ``countries`` object of a tracked-entities file; a ValueError names the fix."""
    def fail(where, problem):
        raise ValueError(f"tracked entities {source}: countries{where}: {problem}")
    if not isinstance(raw, dict):
        fail("", f"expected an object, got {type(raw).__name__}")
    if set(raw) - _COUNTRY_KEYS:
        fail("", f"unknown keys {sorted(set(raw) - _COUNTRY_KEYS)}; allowed: "
             f"{sorted(_COUNTRY_KEYS)}")
    if not isinstance(raw.get("enabled", True), bool):
        fail(".enabled", f"must be true or false, got {raw['enabled']!r}")
    codes = known_codes if known_codes is not None else _iso_codes()
    capitals = raw.get("capital_is_country", [])
    if not isinstance(capitals, list) or not all(isinstance(c, str) for c in capitals):
        fail(".capital_is_country", "must be a list of ISO alpha-3 codes like 'PRK'")
    for code in capitals:
        if code not in codes:
            fail(".capital_is_country", f"unknown ISO 3166 alpha-3 code {code!r}")
    for field in ("names", "demonyms"):
        value = raw.get(field, {})
        if not isinstance(value, dict):
            fail(f".{field}", "must be an object of alpha-3 code -> list of strings")
        for code, forms in value.items():
            if code not in codes:
                fail(f".{field}", f"unknown ISO 3166 alpha-3 code {code!r}")
            if not isinstance(forms, list) or not all(isinstance(f, str) and f.strip()
                                                      for f in forms):
                fail(f".{field}.{code}", "must be a list of non-empty strings")
    excluded = raw.get("exclude_names", [])
    if not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded):
        fail(".exclude_names", "must be a list of strings")
    return raw


@functools.lru_cache(maxsize=1)
def _iso_codes():
    import pycountry
    return frozenset(c.alpha_3 for c in pycountry.countries)


@functools.lru_cache(maxsize=1)
def _shipped():
    return json.loads(DEFAULT_COUNTRIES.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=8)
def country_table(config_json: str = "{}", tracked: Tuple[Tuple[str, str, Tuple[str, ...]], ...] = ()):
    """The ``CountryTable`` for a tracked-entities file's ``countries`` object (as JSON) and
    its tracked entities ``((id, type, (phrase aliases...)), ...)``, which win (None when
    the file disables the table)."""
    import pycountry
    config = json.loads(config_json)
    if not config.get("enabled", True):
        return None
    shipped = _shipped()
    excluded = {_key(n) for n in shipped.get("exclude_names", []) + config.get("exclude_names", [])}
    capitals = set(config.get("capital_is_country", []))
    names, demonyms = collections.defaultdict(set), collections.defaultdict(set)
    for country in pycountry.countries:
        for field in ("name", "common_name", "official_name"):
            if getattr(country, field, None):
                names[country.alpha_3].add(getattr(country, field))
    for code, entry in shipped["countries"].items():
        names[code].update(entry.get("names", []))
        demonyms[code].update(entry.get("demonyms", []))
        if entry.get("capital") and (entry.get("capital_is_country") or code in capitals):
            names[code].add(entry["capital"])
    for code, extra in config.get("names", {}).items():
        names[code].update(extra)
    for code, extra in config.get("demonyms", {}).items():
        demonyms[code].update(extra)
    by_alias = {_key(alias): (eid, kind) for eid, kind, aliases in tracked for alias in aliases}
    owner = {}
    for code in sorted(names):
        forms = {_key(n) for n in names[code] | demonyms[code]}
        claimed = sorted(by_alias[f] for f in forms if f in by_alias)
        owner[code] = claimed[0] if claimed else (f"COUNTRY:{code}", "GPE")
    name_map, demonym_map = {}, {}
    for target, source in ((name_map, names), (demonym_map, demonyms)):
        for code in sorted(source):
            for form in source[code]:
                key = _key(form)
                if key and key not in excluded:
                    target.setdefault(key, owner[code])
    return CountryTable(names=name_map, demonyms=demonym_map)
