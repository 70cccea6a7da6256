"""An independent computation of the pipeline's final entity counts.

Plain Python and spaCy, no Beam: the spaCy pipeline as shipped (with
``senter`` for sentences instead of the parser, as the project documents),
spaCy's own ``span_ruler`` loaded straight from the tracked-entities JSON,
and its own implementation of the documented id rules (pipeline/entities.py
docstring) and windowing arithmetic. It imports nothing from
pipeline.entities or pipeline.gazetteer. Text cleaning uses
pipeline.normalise.normalise_text, whose rules are pinned by hand-checked
unit tests (tests/unit/test_normalise.py).
"""
import collections
import json
import pathlib
import re

import spacy

from pipeline.normalise import normalise_text

SKIPPED_LABELS = {"CARDINAL", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL"}
TRACKED_FILE = pathlib.Path(__file__).resolve().parents[2] / "pipeline" / "tracked_entities.json"
TITLES = set("""president vice prime minister premier chancellor secretary general gen mr mrs ms
    miss dr sir dame lord lady king queen prince princess pope senator sen rep representative
    governor gov mayor chairman chairwoman chief executive ceo director judge justice ambassador
    foreign defence defense finance state former late leader colonel col lt lieutenant captain
    capt commander admiral sheikh deputy spokesman spokeswoman of the professor prof father rev
    reverend emperor crown president-elect""".split())
ENDING_WORDS = set("""of the a an and or for in on at to with by from between into over under
    about against after before as via than""".split())


@spacy.registry.misc("oracle_excluding_filter.v1")
def _excluding_filter():
    """New entities first (as spacy.prioritize_new_ents_filter.v1), without the alias matches
    that overlap an ``exclude`` match of their entity (doc.spans["oracle_excluded"])."""
    def apply(entities, spans):
        if spans:
            excluded = spans[0].doc.spans.get("oracle_excluded", [])
            spans = [s for s in spans if not any(x.id_ == s.id_ and x.start < s.end
                                                 and s.start < x.end for x in excluded)]
        new = spacy.util.filter_spans(spans)
        taken = {i for s in new for i in range(s.start, s.end)}
        return new + [e for e in entities if not any(i in taken for i in range(e.start, e.end))]
    return apply


def oracle_nlp(nlp, tracked_file=TRACKED_FILE):
    """``nlp`` (the shipped model) with spaCy's span_ruler on the tracked entities (and a
    second one on their ``exclude`` patterns); returns ``(nlp, {id: type})``."""
    config = json.loads(pathlib.Path(tracked_file).read_text(encoding="utf-8"))
    if "parser" in nlp.pipe_names:
        nlp.disable_pipe("parser")
    if "senter" in nlp.disabled:
        nlp.enable_pipe("senter")
    attr = config.get("phrase_matcher_attr", "LOWER")
    exclusions = [{"id": e["id"], "label": "EXCLUDED", "pattern": pattern}
                  for e in config["entities"] for pattern in e.get("exclude", [])]
    if exclusions:
        excluder = nlp.add_pipe("span_ruler", name="oracle_excluder", config={
            "spans_key": "oracle_excluded", "annotate_ents": False, "phrase_matcher_attr": attr})
        with nlp.select_pipes(enable=[]):
            excluder.add_patterns(exclusions)
    ruler = nlp.add_pipe("span_ruler", name="oracle_ruler", config={
        "spans_key": None, "annotate_ents": True, "overwrite": False,
        "ents_filter": {"@misc": "oracle_excluding_filter.v1"},
        "phrase_matcher_attr": attr})
    patterns = []
    for e in config["entities"]:
        for alias in e["aliases"]:
            label = alias.get("label") if isinstance(alias, dict) else None
            pattern = alias["pattern"] if isinstance(alias, dict) else alias
            patterns.append({"id": e["id"], "label": label or e["type"], "pattern": pattern})
    with nlp.select_pipes(enable=[]):
        ruler.add_patterns(patterns)
    return nlp, {e["id"]: e["type"] for e in config["entities"]}


def entity_key(label, text):
    words = text.replace("\u2019", "'").lower().split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while label == "PERSON" and len(words) > 1 and words[0].rstrip(".") in TITLES:
        words = words[1:]
    name = re.sub(r"\s*'s?$", "", " ".join(words)).strip()
    return f"{label}:{name}"


def _name_part(ent):
    tokens = list(ent)
    for i, t in enumerate(tokens):
        if t.is_space and "\n" in t.text:
            tokens = tokens[:i]
            break
    while tokens and (tokens[0].is_punct or tokens[0].is_space
                      or (tokens[0].lower_ == "the" and len(tokens) > 1)):
        tokens.pop(0)
    while ent.label_ == "PERSON" and len(tokens) > 1 and tokens[0].lower_.rstrip(".") in TITLES:
        tokens.pop(0)
    while tokens and (tokens[-1].is_punct or tokens[-1].is_space or tokens[-1].lower_ in ("'s", "'")):
        tokens.pop()
    return tokens


def _headline_piece(tokens):
    if tokens[-1].lower_ in ENDING_WORDS or not any(c.isalnum() for t in tokens for c in t.text):
        return True
    if len(tokens) < 4:
        return False
    sentence = [t for t in tokens[0].sent if t.is_alpha]
    title_case = all(t.text[0].isupper() for t in sentence if len(t.text) >= 4)
    return title_case and sum(t.is_alpha for t in tokens) >= 0.6 * len(sentence)


SUFFIXES = set("""inc inc. incorporated corp corp. corporation co co. company cos cos. ltd ltd.
    limited plc plc. llc l.l.c. lp l.p. group ag sa s.a. nv n.v. bv b.v. spa s.p.a. gmbh ab asa
    oyj holdings holding""".split())
PREFERENCE = ["PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART",
              "LAW", "LANGUAGE"]
SKIP_INITIALS = {"of", "and", "the", "for", "&", "de", "du", "des", "la", "le", "in", "on", "at",
                 "to"}
COUNTRIES_FILE = TRACKED_FILE.parent / "countries.json"


def country_names(tracked_file=TRACKED_FILE):
    """({name: id}, {demonym: id}) from pycountry and the shipped countries.json, read as
    data; a country named by a tracked entity's phrase alias takes the tracked id."""
    import pycountry

    def key(text):
        return " ".join(text.replace("\u2019", "'").lower().replace(".", "").split())
    table = json.loads(COUNTRIES_FILE.read_text(encoding="utf-8"))
    config = json.loads(pathlib.Path(tracked_file).read_text(encoding="utf-8"))
    aliases = {key(a): e["id"] for e in config["entities"] for a in e["aliases"]
               if isinstance(a, str)}
    names, demonyms = {}, {}
    for c in sorted(pycountry.countries, key=lambda c: c.alpha_3):
        entry = table["countries"].get(c.alpha_3, {})
        forms = [getattr(c, f) for f in ("name", "common_name", "official_name") if hasattr(c, f)]
        forms += entry.get("names", [])
        owner = sorted(aliases[key(f)] for f in forms + entry.get("demonyms", [])
                       if key(f) in aliases)
        owner = owner[0] if owner else "COUNTRY:" + c.alpha_3
        for f in forms:
            names.setdefault(key(f), owner)
        for f in entry.get("demonyms", []):
            demonyms.setdefault(key(f), owner)
    for n in table["exclude_names"]:
        names.pop(key(n), None)
        demonyms.pop(key(n), None)
    return names, demonyms, key


def _cut(ent):
    """The pieces of an entity: split at a spaced / or -, cut before a date."""
    tokens = list(ent)
    for i, t in enumerate(tokens):
        if i and (re.match(r"\d{4}-\d\d", t.text) or (re.fullmatch(r"(19|20)\d\d", t.text)
                  and t.i + 1 < len(t.doc) and t.doc[t.i + 1].text == "-")):
            tokens = tokens[:i]
            break
    pieces, current = [], []
    for i, t in enumerate(tokens):
        if i and t.text in ("/", "-", "--") and tokens[i - 1].whitespace_ and t.whitespace_:
            pieces.append(current)
            current = []
        else:
            current.append(t)
    pieces.append(current)
    return [ent.doc[p[0].i:p[-1].i + 1] for p in pieces if p]


def _resolve(found, text, countries):
    """Labels and names of one article's untracked mentions: ``found`` is
    [[label, name, surface, end_char]]; returns their keys (the documented rules)."""
    def majority():
        votes = {}
        for f in found:
            votes.setdefault(f[1], collections.Counter())[f[0]] += 1
        for f in found:
            c = votes[f[1]]
            best = max(c.values())
            f[0] = sorted((lab for lab in c if c[lab] == best),
                          key=lambda lab: (PREFERENCE.index(lab) if lab in PREFERENCE else 99,
                                           lab))[0]
    names, demonyms, key = countries
    for f in found:
        words = f[1].split()
        cut = SUFFIXES if f[0] == "ORG" else {"city"} if f[0] in ("GPE", "LOC") else set()
        n = len(words)
        while len(words) > 1 and (words[-1].strip(",") in cut or words[-1] in (",", "&")):
            words.pop()
        if len(words) < n:
            words[-1] = words[-1].rstrip(",")
        f[1] = " ".join(words)
    majority()
    # acronyms
    defined, initials = {}, {}
    for label, name, surface, end in found:
        m = re.match(r"\s*\(\s*([A-Z][A-Z&.]{1,9})\s*\)", text[end:])
        if m and " " in name:
            defined.setdefault(m.group(1).replace(".", "").lower(), set()).add((name, label))
        parts = [w for w in re.split(r"[\s\-]+", name) if w]
        if label != "PERSON" and len(parts) > 1:
            for ini in {"".join(w[0] for w in parts if w not in SKIP_INITIALS),
                        "".join(w[0] for w in parts)}:
                initials.setdefault(ini, set()).add((name, label))
    for f in found:
        label, name, surface, _ = f
        letters = surface.replace(".", "")
        if not re.fullmatch(r"[A-Z](?:[A-Z&]|\.(?=[A-Z]))*\.?", surface) or len(letters) < 2:
            continue
        k = key(name)
        if (label == "ORG" and k in names) or (label in ("GPE", "LOC", "NORP")
                                               and (k in names or k in demonyms)):
            continue
        match = defined.get(letters.lower()) or initials.get(letters.lower(), set())
        if len(match) == 1:
            n2, l2 = next(iter(match))
            if n2 != name:
                f[0], f[1] = l2, n2
    # people
    full = {}
    for label, name, _, _ in found:
        if label == "PERSON" and " " in name:
            full.setdefault((name.split()[0], name.split()[-1]), set()).add(name)
    short = {n: sorted(ns, key=lambda x: (len(x), x))[0] for ns in full.values() for n in ns}
    for f in found:
        if f[0] == "PERSON" and f[1] in short:
            f[1] = short[f[1]]
        elif f[0] in ("PERSON", "ORG", "WORK_OF_ART", "PRODUCT") and " " not in f[1]:
            same = {short[next(iter(ns))] for (a, b), ns in full.items() if b == f[1]}
            if not same and f[0] == "PERSON":
                same = {short[next(iter(ns))] for (a, b), ns in full.items() if a == f[1]}
            if len(same) == 1:
                f[0], f[1] = "PERSON", same.pop()
    # short organisation names
    orgs = {f[1] for f in found if f[0] == "ORG"}
    to_short = {}
    for s_ in orgs:
        longer = [o for o in orgs if o != s_ and o.split()[:len(s_.split())] == s_.split()]
        if len(longer) == 1:
            to_short[longer[0]] = s_
    for f in found:
        if f[0] == "ORG" and f[1] in to_short:
            f[1] = to_short[f[1]]
    majority()
    keys = []
    for label, name, _, _ in found:
        k = key(name)
        country = (names.get(k) if label == "ORG" else
                   (names.get(k) or demonyms.get(k)) if label in ("GPE", "LOC", "NORP") else None)
        keys.append(country or f"{label}:{name}")
    return keys


def article_keys(doc, types, countries=None):
    """The entity id of every counted mention of ``doc``."""
    countries = countries or country_names()
    found = []
    for ent in doc.ents:
        if ent.ent_id_:
            found.append([ent.ent_id_, None, None, None])
        elif ent.label_ not in SKIPPED_LABELS:
            whole = _name_part(ent)
            if not whole or _headline_piece(whole):
                continue
            for piece in _cut(ent):
                tokens = _name_part(piece) if len(piece) else []
                if tokens and not _headline_piece(tokens):
                    span = doc[tokens[0].i:tokens[-1].i + 1]
                    found.append([ent.label_, entity_key(ent.label_, span.text).split(":", 1)[1],
                                  span, None])
    # an ORG span ending in the name of a person of the article: two mentions
    full = {f[1] for f in found if f[0] == "PERSON" and " " in f[1]}
    single = {f[1] for f in found if f[0] == "PERSON" and f[1] and " " not in f[1]}
    out = []
    for f in found:
        span = f[2]
        done = False
        if f[0] == "ORG" and span is not None and len(span) > 2:
            for size in (3, 2):
                tail = span[len(span) - size:]
                if len(span) <= size or not all(t.is_alpha and t.text[0].isupper() for t in tail):
                    continue
                name = entity_key("PERSON", tail.text).split(":", 1)[1]
                if name in full or (size == 2 and name.split()[-1] in single):
                    head = [t for t in span[:len(span) - size]]
                    head = _name_part(span[:len(span) - size]) if head else []
                    if head and not _headline_piece(head):
                        h = doc[head[0].i:head[-1].i + 1]
                        out.append(["ORG", entity_key("ORG", h.text).split(":", 1)[1], h, None])
                    out.append(["PERSON", name, tail, None])
                    done = True
                    break
        if not done:
            out.append(f)
    free = [[f[0], f[1], f[2].text, f[2].end_char] for f in out if f[1] is not None]
    resolved = iter(_resolve(free, doc.text, countries))
    return [f[0] if f[1] is None else next(resolved) for f in out]


def reading_text(title, body):
    lead_words = set(re.findall(r"\w+", body.split("\n")[0].lower()))
    if not title or body.startswith(title) or set(re.findall(r"\w+", title.lower())) <= lead_words:
        return body
    return (title if re.search(r"[.!?:;]['\")\]]*$", title) else title + ".") + "\n" + body


def expected_final_counts(articles, window_seconds, nlp, types=None):
    """{(window_start_ms, entity_id): (mentions, articles)} over ``articles`` (dicts).

    ``nlp``: the shipped model; ``oracle_nlp`` adds the oracle's ruler unless it has one."""
    if "oracle_ruler" not in nlp.pipe_names:
        nlp, types = oracle_nlp(nlp)
    mentions = collections.Counter()
    in_articles = collections.defaultdict(set)
    size = window_seconds * 1000
    for a in articles:
        text = reading_text(normalise_text(a["title"]).strip(), normalise_text(a["body"]))
        start = a["published_at"] // size * size
        for key in article_keys(nlp(text), types):
            mentions[(start, key)] += 1
            in_articles[(start, key)].add(a["id"])
    return {k: (n, len(in_articles[k])) for k, n in mentions.items()}


def final_counts_from_rows(rows):
    """The same shape from ``pipeline.inspect_output.load`` rows of final panes."""
    import datetime as dt
    out = {}
    for r in rows:
        if r["kind"] != "entity_counts" or not r["is_final"]:
            continue
        start = dt.datetime.strptime(r["window_start"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc)
        out[(int(start.timestamp() * 1000), r["entity_id"])] = (r["mentions"], r["articles"])
    return out


# --- Every aggregate, brute force -------------------------------------------
# Written without pipeline.aggregate/windows/cooccurrence: plain loops over
# each article's mentions.

RUNNING_END_MS = 253402300799999


def _windows(t, size_ms, period_ms):
    out = []
    start = (t // period_ms) * period_ms
    while start + size_ms > t:
        out.append(start)
        start -= period_ms
    return out


def story_decisions(articles):
    """``{article id: (story id, source)}``: the duplicate decisions of
    ``pipeline.stories.StoryIndex`` (default settings) over replay dicts in
    publication order, as the pipeline reads them from one partition, on
    the normalised body it signs. Only the decisions come from the project;
    the counting in ``brute_force`` is done again here."""
    from pipeline.stories import StoryIndex, story_signature
    index = StoryIndex()
    out = {}
    for a in sorted(articles, key=lambda a: a["published_at"]):
        if a["id"] not in out:
            story = index.assign(a["id"], a["published_at"],
                                 story_signature(normalise_text(a["body"])))
            out[a["id"]] = (story, a["source"])
    return out


def brute_force(articles, *, window_s, sliding_s, period_s, tuples, stories=None):
    """``articles``: [(article_id, published_ms, [(entity_id, sentence_index)])].
    Returns {key: value} for every final aggregate record (see final_rows):
    ``(count, articles)``, or with ``stories`` (``story_decisions``)
    ``(count, articles, distinct stories, distinct outlets)``."""
    out = {}

    def bump(key, n, article_id):
        count, ids = out.get(key, (0, set()))
        ids = set(ids)
        ids.add(article_id)
        out[key] = (count + n, ids)

    seen = set()
    for article_id, t, mentions in articles:
        tumbling = t // (window_s * 1000) * window_s * 1000
        if (tumbling, article_id) in seen:   # a duplicate in its window
            continue
        seen.add((tumbling, article_id))
        families = [("entity_counts", [tumbling]), ("running_entity_counts", [0])]
        if sliding_s:
            families.append(("sliding_entity_counts",
                             _windows(t, sliding_s * 1000, period_s * 1000)))
        for kind, starts in families:
            for start in starts:
                for entity_id, _ in mentions:
                    bump((kind, start, entity_id), 1, article_id)
        entities = sorted({e for e, _ in mentions})
        sentences = {}
        for e, s in mentions:
            sentences.setdefault(s, set()).add(e)
        for kind, start in (("cooccurrence", tumbling), ("running_cooccurrence", 0)):
            for i, a in enumerate(entities):
                for b in entities[i + 1:]:
                    bump((kind, start, "article", (a, b), False), 1, article_id)
                    n = sum(1 for ids in sentences.values() if a in ids and b in ids)
                    if n:
                        bump((kind, start, "sentence", (a, b), False), n, article_id)
            for members in tuples:
                key = tuple(sorted(members))
                if set(key) <= set(entities):
                    bump((kind, start, "article", key, True), 1, article_id)
                n = sum(1 for ids in sentences.values() if set(key) <= ids)
                if n:
                    bump((kind, start, "sentence", key, True), n, article_id)
    if stories is None:
        return {k: (n, len(ids)) for k, (n, ids) in out.items()}
    return {k: (n, len(ids), len({stories[i][0] for i in ids}), len({stories[i][1] for i in ids}))
            for k, (n, ids) in out.items()}


def final_rows(rows, latest=False, stories=False):
    """Final-pane rows of ``inspect_output.load`` in brute_force's shape; with
    ``latest``, the rows of each window's latest pane, final or not (a
    continuous run's running totals never get a final pane); with
    ``stories``, values ``(count, articles, stories, outlets)``."""
    import datetime as dt
    from pipeline.inspect_output import latest_panes
    out = {}
    for r in latest_panes(rows) if latest else rows:
        if "pane_index" not in r or not (latest or r["is_final"]) or r["kind"] in (
                "source_counts", "surges"):
            continue
        start = int(dt.datetime.strptime(r["window_start"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp() * 1000)
        extra = (r["stories"], r["outlets"]) if stories else ()
        if "entity_id" in r:
            out[(r["kind"], start, r["entity_id"])] = (r["mentions"], r["articles"]) + extra
        else:
            key = (r["kind"], start, r["scope"], tuple(r["entities"]), r["tracked"])
            out[key] = (r["count"], r["articles"]) + extra
    return out


def mentions_of(articles, rules_only=False, tracked_entities=None):
    """``[(id, published_at, [(entity_id, sentence_index)])]`` of replay dicts,
    from the project's extraction functions called directly (no Beam):
    brute_force's input. The stream is under test, not extraction."""
    from pipeline.entities import DEFAULT_MODEL, article_text, entities_of, load_model
    from pipeline.records import Article
    nlp = load_model(DEFAULT_MODEL, tracked_entities=tracked_entities and str(tracked_entities),
                     rules_only=rules_only)
    texts = [article_text(Article(a["id"], "", None, normalise_text(a["title"]),
                                  normalise_text(a["body"]), 0, "en", "", 0, 0))
             for a in articles]
    return [(a["id"], a["published_at"], [(m.entity_id, m.sentence_index)
                                          for m in entities_of(doc)])
            for a, doc in zip(articles, nlp.pipe(texts, batch_size=64))]


def is_pair(key):
    """A co-occurrence pair key of ``final_rows`` (bounded, not exact)."""
    return len(key) == 5 and not key[4]


def differences(got, want):
    """``(missing, extra, wrong)`` of two ``final_rows`` dicts; empty when equal."""
    missing, extra = set(want) - set(got), set(got) - set(want)
    wrong = {k: (got[k], want[k]) for k in set(got) & set(want) if got[k] != want[k]}
    return missing, extra, wrong


def describe(missing, extra, wrong):
    return (f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong; e.g. "
            f"{sorted(missing)[:3]} {sorted(extra)[:3]} {list(wrong.items())[:3]}")


def pair_bounds(rows):
    """``{(kind, start, scope, ids): (count_lower, count_upper, articles_lower,
    articles_upper)}`` of the pair records of each window's latest pane."""
    import datetime as dt
    from pipeline.inspect_output import latest_panes
    out = {}
    for r in latest_panes(rows):
        if "scope" not in r or r["tracked"]:
            continue
        start = int(dt.datetime.strptime(r["window_start"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp() * 1000)
        out[(r["kind"], start, r["scope"], tuple(r["entities"]))] = (
            r["count_lower"], r["count_upper"], r["articles_lower"], r["articles_upper"])
    return out


def bound_violations(want, bounds):
    """Where the published pair bounds (``pair_bounds``) do not hold for the
    true counts (``brute_force``): a reported pair whose true count or
    articles lie outside its bounds, or an unreported pair whose true count
    exceeds the smallest ``count_upper`` its window reports
    (pipeline/heavy_hitters.py)."""
    truth = {k[:4]: v for k, v in want.items() if is_pair(k)}
    smallest_upper = {}
    for (kind, start, _, _), (_, upper, _, _) in bounds.items():
        smallest_upper[(kind, start)] = min(upper, smallest_upper.get((kind, start), upper))
    bad = []
    for key, (lo, hi, a_lo, a_hi) in bounds.items():
        count, articles = truth.get(key, (0, 0))
        if not (lo <= count <= hi and a_lo <= articles <= a_hi):
            bad.append((key, (count, articles), (lo, hi, a_lo, a_hi)))
    for key, (count, _) in truth.items():
        # A window whose whole table a reduction emptied (ties at the cut: with
        # --top-k-pairs 5, 1987-03-05 15:00 of the R2 slice) reports no pair and
        # so claims no bound for its pairs: nothing to check there.
        if key[:2] not in smallest_upper:
            continue
        if key not in bounds and count > smallest_upper[key[:2]]:
            bad.append((key, count, "not reported", smallest_upper[key[:2]]))
    return bad
