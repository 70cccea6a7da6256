"""End-to-end throughput against bare spaCy, measured side by side in one run.

    ./dev bench [--articles 1000] [--runner direct|prism] [--corpus PATH] [--write-docs]

Workload: the first N Reuters-21578 articles with a body (or the seeds,
repeated, when the corpus is absent). Steps, in one process:

1. publish them to a fresh topic on the broker (not timed);
2. bare: ``nlp.pipe`` over the same texts the pipeline reads (title + body,
   normalised), with the same trimmed model and batch size;
3. pipeline: ``entitystream run --bounded`` on the chosen runner, timed from
   submission to completion (consume, decode, normalise, NER, windows, Avro);
4. print the table (and append it to docs/benchmarks.md with --write-docs).
"""
import argparse
import datetime as dt
import os
import pathlib
import platform
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.replay import publish, read_articles  # noqa: E402
from pipeline.entities import DEFAULT_MODEL, article_text, load_model  # noqa: E402
from pipeline.normalise import normalise_text  # noqa: E402
from pipeline.records import Article  # noqa: E402
from pipeline.run import resolve_bootstrap, start, wait  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "reuters21578"


def workload(corpus, count):
    if corpus.exists():
        arts, name = [], "Reuters-21578"
        for a in read_articles([corpus]):
            arts.append(a)
            if len(arts) >= count:
                break
        return arts, name
    seeds = list(read_articles([ROOT / "seeds"]))
    return [dict(s, id=f"{s['id']}-{i}") for i in range(count // 5 + 1) for s in seeds][:count], "seeds (repeated)"


def bare_nlp_pipe(arts, batch_size, rules_only=False):
    nlp = load_model(DEFAULT_MODEL, rules_only=rules_only)
    texts = [article_text(Article(a["id"], "", None, normalise_text(a["title"]),
                                  normalise_text(a["body"]), 0, "en", "", 0, 0)) for a in arts]
    started = time.perf_counter()
    ents = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=batch_size))
    return time.perf_counter() - started, sum(len(t.split()) for t in texts), ents


def pipeline_run(arts, bootstrap, runner, batch_size, rules_only=False, ner_processes=1):
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    publish(arts, bootstrap_servers=bootstrap, topic=topic)
    with tempfile.TemporaryDirectory() as out:
        settings = Settings(topic=topic, output_dir=out, bootstrap_servers=bootstrap,
                            runner=runner, bounded=True, batch_size=batch_size,
                            group_id=f"bench-{topic}", metrics_port=0,
                            rules_only=rules_only, ner_processes=ner_processes)
        started = time.perf_counter()
        result = start(settings)
        wait(result) if runner == "prism" else result.wait_until_finish()
        elapsed = time.perf_counter() - started
        files = sum(1 for _ in pathlib.Path(out).rglob("*.avro"))
    return elapsed, files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--runner", choices=("direct", "prism"), default="direct")
    parser.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rules-only", action="store_true")
    parser.add_argument("--ner-processes", type=int, default=1)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.runner == "prism":
        from deploy.prism import ensure_prism
        os.environ.setdefault("ENTITYSTREAM_PRISM_BIN", ensure_prism())
    arts, name = workload(args.corpus, args.articles)
    bootstrap = resolve_bootstrap(Settings())
    bare_s, words, ents = bare_nlp_pipe(arts, args.batch_size, args.rules_only)
    pipe_s, files = pipeline_run(arts, bootstrap, args.runner, args.batch_size,
                                 args.rules_only, args.ner_processes)
    n = len(arts)
    rows = [("bare nlp.pipe (the pipeline's load_model)", n / bare_s, words / bare_s, 1.0),
            (f"end-to-end, {args.runner}, bounded, {args.ner_processes} NER process(es)"
             + (", rules-only" if args.rules_only else ""),
             n / pipe_s, words / pipe_s, bare_s / pipe_s)]
    table = ["| workload | articles/s | words/s | ratio to bare |", "|---|---:|---:|---:|"]
    table += [f"| {w} | {a:.1f} | {wd:,.0f} | {r:.2f}x |" for w, a, wd, r in rows]
    header = (f"{dt.date.today()} — {n} {name} articles ({words:,} words, {ents:,} entities), "
              f"batch {args.batch_size}; {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; {files} Avro pane files written; "
              f"command: `./dev bench {' '.join(argv if argv is not None else sys.argv[1:])}`")
    text = header + "\n\n" + "\n".join(table) + "\n"
    print(text)
    if args.write_docs:
        docs = ROOT / "docs" / "benchmarks.md"
        with docs.open("a", encoding="utf-8") as f:
            f.write("\n### " + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
