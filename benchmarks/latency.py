"""P3: latency from producing an article to the first Avro pane that includes it.

    .venv/bin/python benchmarks/latency.py [--rate 50] [--seconds 20] [--ner-processes 2]

A streaming pipeline runs on Prism (early panes every --early-firing-seconds).
Articles are produced at a steady --rate, each a Reuters story (or a seed)
with "Russia" in its title, published "now" (a live feed). Every article
therefore adds one to RUSSIA's ``articles`` in the running totals, and the
k-th article produced is included in the first running-totals pane file whose
RUSSIA ``articles`` >= k (one partition: articles are read in order). Latency
= that file's modification time (written and renamed) - the article's produce
time. Prints p50/p95/p99 and the sustained rate; a pipeline slower than the
rate shows as latency that grows through the run.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fastavro  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from connectors.replay import ensure_topic, read_articles  # noqa: E402
from pipeline.run import cancel, resolve_bootstrap, start  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "reuters21578"


def _stories(count):
    source = [CORPUS] if CORPUS.exists() else [ROOT / "seeds"]
    out = []
    while len(out) < count:
        for a in read_articles(source):
            out.append(a)
            if len(out) == count:
                break
    return out


def _included(out_dir):
    """[(file mtime, RUSSIA articles)] of every running-totals pane file."""
    rows = []
    for path in pathlib.Path(out_dir).glob("running_entity_counts/*/pane-*.avro"):
        with path.open("rb") as f:
            n = next((r["articles"] for r in fastavro.reader(f) if r["entity_id"] == "RUSSIA"), 0)
        rows.append((path.stat().st_mtime, n))
    return sorted(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="articles per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to produce")
    parser.add_argument("--ner-processes", type=int, default=2)
    parser.add_argument("--rules-only", action="store_true")
    parser.add_argument("--early-firing-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    if "ENTITYSTREAM_PRISM_BIN" not in os.environ:
        from deploy.prism import ensure_prism
        os.environ["ENTITYSTREAM_PRISM_BIN"] = ensure_prism()
    bootstrap = resolve_bootstrap(Settings())
    topic = f"latency-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, 1)
    count = int(args.rate * args.seconds)
    stories = _stories(count)
    with tempfile.TemporaryDirectory() as out:
        settings = Settings(topic=topic, output_dir=out, bootstrap_servers=bootstrap,
                            runner="prism", group_id=f"g-{topic}", metrics_port=0,
                            early_firing_seconds=args.early_firing_seconds,
                            ner_processes=args.ner_processes, rules_only=args.rules_only,
                            sliding_window_seconds=0)
        result = start(settings)
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        # Warm-up: one article, wait until it is out (runner and model ready).
        producer.send(topic, json.dumps({"id": "warm-up", "title": "Russia", "body": "Russia.",
                                         "published_at": int(time.time() * 1000)}).encode())
        producer.flush()
        while not any(n >= 1 for _, n in _included(out)):
            time.sleep(0.2)
        produced = []
        started = time.time()
        for k, story in enumerate(stories):
            due = started + k / args.rate
            time.sleep(max(0.0, due - time.time()))
            now = time.time()
            doc = dict(story, id=f"lat-{k}", title=f"Russia: {story['title']}",
                       published_at=int(now * 1000))
            producer.send(topic, key=doc["id"].encode(), value=json.dumps(doc).encode())
            produced.append(now)
        producer.flush()
        deadline = time.time() + 300
        while max((n for _, n in _included(out)), default=0) < count + 1:
            if time.time() > deadline:
                break
            time.sleep(0.2)
        finished = time.time()
        panes = _included(out)
        cancel(result)
    latencies = []
    for k, t in enumerate(produced):
        first = next((mtime for mtime, n in panes if n >= k + 2), None)  # +1: warm-up
        if first is not None:
            latencies.append(first - t)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    print(f"{len(latencies)}/{count} articles seen in a pane; produced at {args.rate}/s for "
          f"{args.seconds:.0f} s; all out {finished - started:.1f} s after the first was produced")
    print(f"latency produce -> first pane including it: p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, "
          f"p99 {q[98]:.2f} s (ner processes {args.ner_processes}"
          f"{', rules-only' if args.rules_only else ''}, early firing {args.early_firing_seconds} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
