"""An independent computation of the pipeline's final entity counts.

Plain Python and spaCy, no Beam: the full spaCy pipeline as shipped (not the
project's trimmed one), its own id rule and its own windowing arithmetic.
Text cleaning uses pipeline.normalise.normalise_text, whose rules are pinned
by hand-checked unit tests (tests/unit/test_normalise.py).
"""
import collections
import re

from pipeline.normalise import normalise_text

SKIPPED_LABELS = {"CARDINAL", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL"}


def entity_key(label, text):
    text = " ".join(text.replace("\u2019", "'").split()).lower()
    if text.startswith("the "):
        text = text[4:]
    text = re.sub(r"'s?$", "", text).strip()
    return f"{label}:{text}"


def expected_final_counts(articles, window_seconds, nlp):
    """{(window_start_ms, entity_id): (mentions, articles)} over ``articles`` (dicts)."""
    mentions = collections.Counter()
    in_articles = collections.defaultdict(set)
    size = window_seconds * 1000
    for a in articles:
        title, body = normalise_text(a["title"]), normalise_text(a["body"])
        text = body if body.startswith(title) else f"{title}\n{body}"
        start = a["published_at"] // size * size
        for ent in nlp(text).ents:
            if ent.label_ in SKIPPED_LABELS:
                continue
            key = (start, entity_key(ent.label_, ent.text))
            mentions[key] += 1
            in_articles[key].add(a["id"])
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


def brute_force(articles, *, window_s, sliding_s, period_s, tuples):
    """``articles``: [(article_id, published_ms, [(entity_id, sentence_index)])].
    Returns {key: value} for every final aggregate record (see final_rows)."""
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
    return {k: (n, len(ids)) for k, (n, ids) in out.items()}


def final_rows(rows):
    """Final-pane rows of ``inspect_output.load`` in brute_force's shape."""
    import datetime as dt
    out = {}
    for r in rows:
        if "pane_index" not in r or not r["is_final"]:
            continue
        start = int(dt.datetime.strptime(r["window_start"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp() * 1000)
        if "entity_id" in r:
            out[(r["kind"], start, r["entity_id"])] = (r["mentions"], r["articles"])
        else:
            key = (r["kind"], start, r["scope"], tuple(r["entities"]), r["tracked"])
            out[key] = (r["count"], r["articles"])
    return out
