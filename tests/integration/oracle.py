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
