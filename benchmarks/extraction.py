"""Extraction-stage throughput: the project's extraction against bare ``nlp.pipe``, one run.

    .venv/bin/python benchmarks/extraction.py [--articles 1000] [--batch-size 64] [--corpus PATH]

Workload: the first N Reuters-21578 articles with a body (or the seeds,
repeated, when the corpus is absent), normalised and joined as the pipeline
reads them (``normalise_text``, ``article_text``). Every side runs in this
process on the same texts, one after the other, with its model loaded and
warmed up on one batch first; only the pass over the N texts is timed:

1. bare ``nlp.pipe``, the model as shipped (tok2vec, tagger, parser,
   attribute_ruler, lemmatizer, ner): what a first script would run;
2. bare ``nlp.pipe``, ``ner`` + ``senter`` only: the least spaCy work that
   gives entities and sentences;
3. the project's extraction stage, full: ``_RecogniseEntitiesFn`` (the
   ExtractEntities DoFn) driven directly, without a runner: batching,
   ``load_model`` (ner, senter, the tracked-entity ruler; the shipped BRIDGE
   is word forms with exclusions, so no tagger or lemmatizer),
   ``mentions_of_texts`` (ids, resolution) and the metrics;
4. the same, ``rules_only=True``: tracked entities only;
5. rules-only with BRIDGE's word forms also required to be tagged nouns
   (``TAG`` NN/NNS/NNP/NNPS): what the tagger costs.

Prints a markdown table (articles/s, words/s, ratio to bare as shipped).

``--compare-with DIR`` instead times the ExtractEntities DoFn (full and
rules-only) of this checkout and of the checkout in DIR (e.g. /work/main,
with its own ``DIR/.venv``), each in a fresh process of its own venv on the
same workload, alternating (this, DIR, this, DIR ... ``--rounds`` times), and
prints wall and CPU seconds per side and their ratio (median over rounds).
"""
import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apache_beam.transforms.window import GlobalWindow  # noqa: E402
from apache_beam.utils.windowed_value import WindowedValue  # noqa: E402

from connectors.replay import read_articles  # noqa: E402
from pipeline.entities import DEFAULT_MODEL, EXCLUDED_LABELS, _RecogniseEntitiesFn, article_text  # noqa: E402
from pipeline.gazetteer import DEFAULT_TRACKED_ENTITIES  # noqa: E402
from pipeline.normalise import normalise_text  # noqa: E402
from pipeline.records import Article  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "reuters21578"


def workload(corpus, count):
    if corpus.exists():
        arts = []
        for a in read_articles([corpus]):
            arts.append(a)
            if len(arts) >= count:
                break
        name = "Reuters-21578"
    else:
        seeds = list(read_articles([ROOT / "seeds"]))
        arts = [dict(s, id=f"{s['id']}-{i}") for i in range(count // 5 + 1) for s in seeds][:count]
        name = "seeds (repeated)"
    records = [Article(a["id"], a["source"], None, normalise_text(a["title"]),
                       normalise_text(a["body"]), a["published_at"], "en", "bench", 0, i)
               for i, a in enumerate(arts)]
    return records, name


def bare_model(pipes):
    import spacy
    nlp = spacy.load(DEFAULT_MODEL)
    for pipe in nlp.component_names:
        if pipe in pipes and pipe in nlp.disabled:
            nlp.enable_pipe(pipe)
        elif pipe not in pipes and pipe not in nlp.disabled:
            nlp.disable_pipe(pipe)
    return nlp


def time_bare(nlp, texts, batch_size):
    list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # warm-up
    started = time.perf_counter()
    ents = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=batch_size))
    return time.perf_counter() - started, ents


def tag_variant(directory):
    """The default tracked entities with BRIDGE matched by noun forms and tags."""
    doc = json.loads(DEFAULT_TRACKED_ENTITIES.read_text(encoding="utf-8"))
    for entity in doc["entities"]:
        if entity["id"] == "BRIDGE":
            entity["aliases"] = ["Friendship Bridge", [{"LOWER": {"IN": ["bridge", "bridges"]},
                                 "TAG": {"IN": ["NN", "NNS", "NNP", "NNPS"]}}]]
    path = pathlib.Path(directory) / "tracked_tag.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def time_stage(records, batch_size, rules_only, tracked_entities=None):
    fn = _RecogniseEntitiesFn(DEFAULT_MODEL, batch_size, EXCLUDED_LABELS, tracked_entities,
                              rules_only)
    fn.setup()

    def run(batch):
        fn.start_bundle()
        out = []
        for r in batch:
            out.extend(fn.process(r, wv=WindowedValue(r, 0, [GlobalWindow()])))
        out.extend(fn.finish_bundle())
        return out

    run(records[:batch_size])  # warm-up
    started = time.perf_counter()
    out = run(records)
    return time.perf_counter() - started, sum(len(wv.value.mentions) for wv in out)


# Run with DIR's venv in DIR: the DoFn pass of that checkout, as JSON on stdout.
_STAGE_SNIPPET = """
import json, sys, time
sys.path.insert(0, '.')
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from connectors.replay import read_articles
from pipeline.entities import DEFAULT_MODEL, EXCLUDED_LABELS, _RecogniseEntitiesFn
from pipeline.normalise import normalise_text
from pipeline.records import Article
corpus, count, batch, rules_only = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
arts = []
for a in read_articles([corpus]):
    arts.append(a)
    if len(arts) >= count:
        break
records = [Article(a['id'], a['source'], None, normalise_text(a['title']), normalise_text(a['body']),
                   a['published_at'], 'en', 'bench', 0, i) for i, a in enumerate(arts)]
fn = _RecogniseEntitiesFn(DEFAULT_MODEL, batch, EXCLUDED_LABELS, None, rules_only)
fn.setup()
def run(rs):
    fn.start_bundle()
    out = []
    for r in rs:
        out.extend(fn.process(r, wv=WindowedValue(r, 0, [GlobalWindow()])))
    out.extend(fn.finish_bundle())
    return out
run(records[:batch])
wall, cpu = time.perf_counter(), time.process_time()
out = run(records)
print(json.dumps({'wall': time.perf_counter() - wall, 'cpu': time.process_time() - cpu,
                  'articles': len(records), 'mentions': sum(len(w.value.mentions) for w in out)}))
"""


def _stage_in(checkout, corpus, count, batch, rules_only):
    import subprocess
    out = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c", _STAGE_SNIPPET,
                          str(corpus), str(count), str(batch), "1" if rules_only else "0"],
                         cwd=checkout, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(other, corpus, count, batch, rounds):
    import statistics
    sides = {"this checkout": ROOT, str(other): other.resolve()}
    lines = ["| stage | checkout | articles/s (median) | wall s | CPU s | mentions |",
             "|---|---|---:|---:|---:|---:|"]
    ratios = []
    for rules_only in (False, True):
        got = {name: [] for name in sides}
        for _ in range(rounds):
            for name, path in sides.items():
                got[name].append(_stage_in(path, corpus, count, batch, rules_only))
        what = "rules-only" if rules_only else "full"
        med = {}
        for name, runs in got.items():
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            med[name] = (wall, cpu)
            lines.append(f"| {what} | {name} | {runs[0]['articles'] / wall:.1f} | {wall:.2f} | "
                         f"{cpu:.2f} | {runs[0]['mentions']:,} |")
        this, that = med["this checkout"], med[str(other)]
        ratios.append(f"{what}: this / {other} throughput {that[0] / this[0]:.2f}x wall, "
                      f"{that[1] / this[1]:.2f}x CPU")
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M} — {count} articles of {corpus}, batch {batch}, "
          f"{rounds} alternating rounds; {os.cpu_count()} cores (shared), load "
          f"{os.getloadavg()[0]:.1f}\n")
    print("\n".join(lines))
    print("\n" + "\n".join(ratios))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    parser.add_argument("--compare-with", type=pathlib.Path, default=None, metavar="DIR",
                        help="time this checkout's DoFn against the one in DIR (its .venv)")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare-with")
    args = parser.parse_args(argv)
    if args.compare_with is not None:
        return compare(args.compare_with, args.corpus, args.articles, args.batch_size,
                       args.rounds)
    records, name = workload(args.corpus, args.articles)
    texts = [article_text(r) for r in records]
    n, words = len(texts), sum(len(t.split()) for t in texts)
    shipped = bare_model(("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner"))
    runs = [("bare `nlp.pipe`, model as shipped", *time_bare(shipped, texts, args.batch_size),
             "entities")]
    del shipped
    runs.append(("bare `nlp.pipe`, ner + senter",
                 *time_bare(bare_model(("ner", "senter")), texts, args.batch_size), "entities"))
    runs.append(("ExtractEntities DoFn, full", *time_stage(records, args.batch_size, False),
                 "mentions"))
    runs.append(("ExtractEntities DoFn, rules-only", *time_stage(records, args.batch_size, True),
                 "mentions"))
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(("ExtractEntities DoFn, rules-only, BRIDGE by LOWER+TAG",
                     *time_stage(records, args.batch_size, True, tag_variant(tmp)), "mentions"))
    base = runs[0][1]
    table = ["| extraction | articles/s | words/s | found | ratio to shipped bare |",
             "|---|---:|---:|---:|---:|"]
    table += [f"| {what} | {n / s:.1f} | {words / s:,.0f} | {found:,} {unit} | {base / s:.2f}x |"
              for what, s, found, unit in runs]
    print(f"{dt.date.today()} — {n} {name} articles ({words:,} words), batch {args.batch_size}; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"command: `.venv/bin/python benchmarks/extraction.py --articles {args.articles}`\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
