"""How well near-duplicate stories are found (pipeline/stories.py), measured.

Builds a test corpus from Reuters-21578 and BBC News articles plus copies
made the way outlets make them, runs the ``StoryIndex`` over it in
publication order (as the pipeline does), and reports precision and recall of
"same story" over article pairs for a range of thresholds and shingle sizes;
then counts the near-duplicate clusters the chosen setting finds in the raw
Reuters corpus and prints a sample of them to check by hand.

The copies (1 to 3 per original, published 0 to 48 hours after it), each
made by one or more of, at random (seeded):

- ``headline``: a new title (the title is not in the signature: no effect
  by construction, kept to show it);
- ``drop_last``: the last paragraph dropped (when there are two or more);
- ``boilerplate``: an outlet's boilerplate appended (one of five, the same
  text for every copy from that outlet, so different stories of one outlet
  share it: a source of false positives);
- ``words``: a few words replaced by other words of the corpus: 3 to 6
  (``--words fixed``), or 1 in 50 words, between 1 and 6
  (``--words proportional``, the default: a few words of a 40-word item
  are a rewrite, not a copy);
- ``source``: a different outlet name (no effect on the signature).

Ground truth: a copy is the same story as its original; originals are
different stories, except that originals which are near-duplicates already
(exact Jaccard similarity of their 4-word shingles >= 0.5, computed by
brute force, not with MinHash) are merged into one true story, and counted.

Run::

    .venv/bin/python -m benchmarks.stories_eval --markdown
"""
import argparse
import collections
import itertools
import pathlib
import random
import re
import sys
import time

from connectors.replay import read_articles
from pipeline.stories import StoryIndex, shingles, story_signature

__all__ = ["main", "build_corpus", "pair_scores"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
HOUR = 3_600_000
DAY = 24 * HOUR
BOILERPLATE = {
    "Daily Planet": "Copyright 2026 The Daily Planet. All rights reserved. This material may "
                    "not be published, broadcast, rewritten or redistributed.",
    "Metro Wire": "Sign up for the Metro Wire newsletter to get the day's top stories "
                  "delivered to your inbox every morning.",
    "Gazette Online": "Follow the Gazette on social media for breaking news. Reporting by "
                      "our staff; editing by the news desk.",
    "Evening Post": "Have a story? Contact the Evening Post newsroom. Readers' comments are "
                    "moderated and may be edited for length.",
    "Ledger Daily": "This article was produced with material from wire services and updated "
                    "with additional reporting. Ledger Daily, all rights reserved.",
}
OPS = ("headline", "drop_last", "boilerplate", "words", "source")


def _paragraphs(body):
    parts = [p.strip() for p in re.split(r"\n\s*\n|\n {2,}", body) if p.strip()]
    return parts or [body.strip()]


def read_bbc(folder):
    for path in sorted(pathlib.Path(folder).glob("*/*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        title, _, body = text.partition("\n")
        yield {"id": f"bbc-{path.parent.name}-{path.stem}", "source": "BBC",
               "title": title.strip(), "body": body.strip()}


def _copy(original, rng, vocabulary, n, words_mode="proportional"):
    ops = [op for op in OPS if rng.random() < 0.5] or [rng.choice(OPS)]
    outlet = rng.choice(sorted(BOILERPLATE))
    paragraphs = _paragraphs(original["body"])
    title, source = original["title"], original["source"]
    if "headline" in ops:
        title = "UPDATE: " + " ".join(reversed(title.split()))
    if "drop_last" in ops and len(paragraphs) > 1:
        paragraphs = paragraphs[:-1]
    body = "\n\n".join(paragraphs)
    if "words" in ops:
        words = body.split(" ")
        changed = (rng.randint(3, 6) if words_mode == "fixed"
                   else max(1, min(6, len(words) // 50)))
        for i in rng.sample(range(len(words)), min(len(words), changed)):
            words[i] = rng.choice(vocabulary)
        body = " ".join(words)
    if "boilerplate" in ops:
        body += "\n\n" + BOILERPLATE[outlet]
    if "source" in ops:
        source = outlet
    published = original["published_at"] + rng.randrange(0, 48 * HOUR)
    return {"id": f"{original['id']}~copy{n}", "source": source, "title": title, "body": body,
            "published_at": published, "ops": tuple(ops), "original": original["id"]}


def _exact_jaccard(a, b):
    return len(a & b) / len(a | b) if a and b else 0.0


def build_corpus(reuters_limit=2000, bbc_limit=1000, seed=7, words_mode="proportional"):
    """Originals (Reuters with their dates, BBC spread over the same span) and copies."""
    rng = random.Random(seed)
    reuters = [a for a in read_articles([CORPORA / "reuters21578"])
               if len(a["body"].split()) >= 20][:reuters_limit]
    start = min(a["published_at"] for a in reuters)
    bbc = list(read_bbc(CORPORA / "bbc"))
    rng.shuffle(bbc)
    span = max(a["published_at"] for a in reuters) - start
    for a in bbc[:bbc_limit]:
        a["published_at"] = start + rng.randrange(0, max(span, DAY))
    originals = reuters + bbc[:bbc_limit]
    vocabulary = sorted({w for a in originals[:500] for w in a["body"].split() if w.isalpha()})
    copies = []
    for original in originals:
        if rng.random() < 0.5:
            for n in range(rng.randint(1, 3)):
                copies.append(_copy(original, rng, vocabulary, n, words_mode))
    truth = _true_stories(originals)
    for c in copies:
        truth[c["id"]] = truth[c["original"]]
    articles = sorted(originals + copies, key=lambda a: (a["published_at"], a["id"]))
    return articles, truth


def _true_stories(originals):
    """Original id -> true story: connected components of exact Jaccard >= 0.5
    (brute force over pairs sharing a shingle)."""
    sets = {a["id"]: set(shingles(a["body"])) for a in originals}
    by_shingle = collections.defaultdict(list)
    for article_id, grams in sets.items():
        for g in grams:
            by_shingle[g].append(article_id)
    parent = {i: i for i in sets}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    checked = set()
    for ids in by_shingle.values():
        if len(ids) > 200:  # a shingle in hundreds of bodies (e.g. "mln dlrs vs"): skip as a key
            continue
        for a, b in itertools.combinations(ids, 2):
            if (a, b) in checked:
                continue
            checked.add((a, b))
            if _exact_jaccard(sets[a], sets[b]) >= 0.5:
                parent[find(a)] = find(b)
    return {i: find(i) for i in sets}


def assign_stories(articles, threshold, words):
    index = StoryIndex(threshold=threshold, horizon_ms=3 * DAY, max_articles=200_000)
    return {a["id"]: index.assign(a["id"], a["published_at"], story_signature(a["body"], words))
            for a in articles}


def _pairs(sizes):
    return sum(n * (n - 1) // 2 for n in sizes)


def pair_scores(predicted, truth):
    """Precision and recall of "same story" over all article pairs."""
    both = collections.Counter((predicted[i], truth[i]) for i in truth)
    tp = _pairs(both.values())
    pred = _pairs(collections.Counter(predicted[i] for i in truth).values())
    true = _pairs(collections.Counter(truth.values()).values())
    return (tp / pred if pred else 1.0), (tp / true if true else 1.0), tp, pred, true


def recall_by_op(articles, predicted, truth):
    """Per copy operation: the share of copies put in their original's story."""
    hits, totals = collections.Counter(), collections.Counter()
    for a in articles:
        for op in a.get("ops", ()):
            totals[op] += 1
            hits[op] += predicted[a["id"]] == predicted[a["original"]]
    return {op: (hits[op] / totals[op], totals[op]) for op in OPS if totals[op]}


def raw_reuters_clusters(threshold, words, sample=12, seed=3):
    articles = list(read_articles([CORPORA / "reuters21578"]))
    articles.sort(key=lambda a: (a["published_at"], a["id"]))
    predicted = assign_stories(articles, threshold, words)
    clusters = collections.defaultdict(list)
    for a in articles:
        clusters[predicted[a["id"]]].append(a)
    multi = [c for c in clusters.values() if len(c) > 1]
    rng = random.Random(seed)
    return len(articles), multi, rng.sample(multi, min(sample, len(multi)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuters", type=int, default=2000,
                        help="Reuters originals (of 20 words or more), in corpus order")
    parser.add_argument("--bbc", type=int, default=1000)
    parser.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8")
    parser.add_argument("--shingle-words", default="3,4,5")
    parser.add_argument("--chosen", default="0.55,4", help="threshold,words for the raw count")
    parser.add_argument("--words", choices=("proportional", "fixed"), default="proportional",
                        help="how many words a 'words' copy changes (module docstring)")
    parser.add_argument("--skip-raw", action="store_true")
    args = parser.parse_args(argv)
    if not (CORPORA / "reuters21578").is_dir():
        print(f"corpora not found at {CORPORA}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    articles, truth = build_corpus(args.reuters, args.bbc, words_mode=args.words)
    copies = sum(1 for a in articles if "original" in a)
    merged = len(truth) - copies - len(set(truth[a["id"]] for a in articles if "original" not in a))
    print(f"corpus: {len(articles) - copies} originals, {copies} copies, {merged} originals "
          f"merged into another's true story (exact Jaccard >= 0.5); "
          f"{time.perf_counter() - started:.0f}s")
    print("| shingle words | threshold | precision | recall | same-story pairs (true) |")
    print("|---|---|---|---|---|")
    for words in [int(w) for w in args.shingle_words.split(",")]:
        for t in [float(x) for x in args.thresholds.split(",")]:
            p, r, tp, pred, true = pair_scores(assign_stories(articles, t, words), truth)
            print(f"| {words} | {t:.2f} | {p:.4f} | {r:.4f} | {pred} ({true}) |", flush=True)
    t, words = args.chosen.split(",")
    t, words = float(t), int(words)
    predicted = assign_stories(articles, t, words)
    print(f"\nrecall per copy operation at threshold {t}, {words}-word shingles:")
    for op, (rate, n) in recall_by_op(articles, predicted, truth).items():
        print(f"| {op} | {rate:.4f} | {n} |")
    if args.skip_raw:
        return 0
    total, multi, sample = raw_reuters_clusters(t, words)
    in_clusters = sum(len(c) for c in multi)
    print(f"\nraw Reuters ({total} articles): {len(multi)} clusters of 2 or more, holding "
          f"{in_clusters} articles; largest {max(len(c) for c in multi)}")
    for c in sample:
        print(f"\n-- cluster of {len(c)}:")
        for a in c[:4]:
            body = " ".join(a["body"].split())[:160]
            print(f"   {a['id']} {a['title'][:70]!r}: {body}")
    print(f"\n{time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
