"""P3: latency from producing an article to the first Avro pane that includes it.

    .venv/bin/python benchmarks/latency.py [--rate 50] [--seconds 20] [--ner-processes 2]
                                           [--rules-only [--tracked-entities F]] [RUN FLAGS]

(Other flags go to ``entitystream run``, e.g. ``--checkpoint-interval-seconds 1``.)

A streaming pipeline (``entitystream run --runner prism`` in a process of its
own, early panes every --early-firing-seconds) reads a fresh topic. Articles
are produced at a steady --rate, each a Reuters story (or a seed) with
"Russia" in its title, published "now" (a live feed). Every article therefore
adds one to RUSSIA's ``articles`` in the running totals, and the k-th article
produced is included in the first running-totals pane file whose RUSSIA
``articles`` >= k (one partition: articles are read in order). Latency = that
file's modification time (written and renamed) - the article's produce time.
Prints p50/p95/p99 and the sustained rate; a pipeline slower than the rate
shows as latency that grows through the run.

``measure(...)`` is the same, for ``benchmarks/run.py`` (suite ``p3``): it
returns the figures and the RSS samples of the pipeline's process tree. A
tracked-entities file without RUSSIA (``--tracked-entities``) gets a RUSSIA
phrase alias added (a copy), since the measurement counts RUSSIA.
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastavro  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from benchmarks.processes import TreeSampler  # noqa: E402
from benchmarks.workloads import articles as corpus_articles  # noqa: E402
from benchmarks.workloads import delete_topics  # noqa: E402
from connectors.replay import ensure_topic  # noqa: E402
from pipeline.run import resolve_bootstrap  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.integration.pipeline_process import PipelineProcess  # noqa: E402

__all__ = ["measure", "with_russia"]


def _included(out_dir):
    """[(file mtime, RUSSIA articles)] of every running-totals pane file."""
    rows = []
    for path in pathlib.Path(out_dir).glob("running_entity_counts/*/pane-*.avro"):
        with path.open("rb") as f:
            n = next((r["articles"] for r in fastavro.reader(f) if r["entity_id"] == "RUSSIA"), 0)
        rows.append((path.stat().st_mtime, n))
    return sorted(rows)


def with_russia(tracked_entities, directory):
    """``tracked_entities`` (a path), with RUSSIA as a phrase alias added if missing (a copy)."""
    doc = json.loads(pathlib.Path(tracked_entities).read_text(encoding="utf-8"))
    if not any(e["id"] == "RUSSIA" for e in doc["entities"]):
        doc["entities"].append({"id": "RUSSIA", "name": "Russia", "type": "GPE",
                                "aliases": ["Russia"]})
    path = pathlib.Path(directory) / "tracked_with_russia.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def _wait_for(predicate, timeout_s, proc, what):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if not proc.alive() or time.monotonic() > deadline:
            msg = (f"latency benchmark: the pipeline {'exited' if not proc.alive() else 'timed out'}"
                   f" before {what}; log {proc.log_path}:\n{proc.log()[-3000:]}")
            raise RuntimeError(msg)
        time.sleep(0.2)


def measure(rate=50.0, seconds=20.0, ner_processes=2, rules_only=False,
            early_firing_seconds=1.0, tracked_entities=None, bootstrap=None, work_dir=None,
            extra_flags=()):
    """Produce ``rate * seconds`` articles at ``rate``/s into a streaming pipeline
    (``extra_flags``: more ``entitystream run`` flags).

    Returns {"latencies": [s, ...], "p50", "p95", "p99", "count", "all_out_s", "sampler"}."""
    bootstrap = (bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
                 or resolve_bootstrap(Settings()))
    topic = f"latency-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, 1)
    count = int(rate * seconds)
    stories = corpus_articles(count)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        out = pathlib.Path(tmp) / "out"
        args = ["--topic", topic, "--output", out, "--bootstrap-servers", bootstrap,
                "--group-id", f"g-{topic}", "--runner", "prism",
                "--early-firing-seconds", early_firing_seconds, "--ner-processes", ner_processes,
                "--sliding-window-seconds", 0]
        if rules_only:
            args.append("--rules-only")
        if tracked_entities:
            args += ["--tracked-entities", with_russia(tracked_entities, tmp)]
        args += list(extra_flags)
        proc = PipelineProcess(args, pathlib.Path(tmp) / "pipeline.log").start()
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        try:
            with TreeSampler(proc.proc.pid) as sampler:
                # Warm-up: one article, wait until it is out (runner and model ready).
                producer.send(topic, json.dumps({
                    "id": "warm-up", "title": "Russia", "body": "Russia.",
                    "published_at": int(time.time() * 1000)}).encode())
                producer.flush()
                _wait_for(lambda: any(n >= 1 for _, n in _included(out)), 300, proc,
                          "the warm-up article was out")
                produced = []
                started = time.time()
                for k, story in enumerate(stories):
                    time.sleep(max(0.0, started + k / rate - time.time()))
                    now = time.time()
                    doc = dict(story, id=f"lat-{k}", title=f"Russia: {story['title']}",
                               published_at=int(now * 1000))
                    producer.send(topic, key=doc["id"].encode(), value=json.dumps(doc).encode())
                    produced.append(now)
                producer.flush()
                deadline = time.time() + 300
                while (max((n for _, n in _included(out)), default=0) < count + 1
                       and time.time() < deadline and proc.alive()):
                    time.sleep(0.2)
                finished = time.time()
                panes = _included(out)
        finally:
            producer.close()
            proc.stop()
            delete_topics(bootstrap, [topic])
    latencies = []
    for k, t in enumerate(produced):
        first = next((mtime for mtime, n in panes if n >= k + 2), None)  # +1: warm-up
        if first is not None:
            latencies.append(first - t)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"latencies": latencies, "p50": q[49], "p95": q[94], "p99": q[98], "count": count,
            "all_out_s": finished - started, "rate": rate, "seconds": seconds,
            "sampler": sampler}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="articles per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to produce")
    parser.add_argument("--ner-processes", type=int, default=2)
    parser.add_argument("--rules-only", action="store_true")
    parser.add_argument("--tracked-entities", default=None,
                        help="tracked-entities JSON (RUSSIA is added when missing)")
    parser.add_argument("--early-firing-seconds", type=float, default=1.0)
    args, extra = parser.parse_known_args(argv)
    r = measure(args.rate, args.seconds, args.ner_processes, args.rules_only,
                args.early_firing_seconds, args.tracked_entities, extra_flags=extra)
    print(f"{len(r['latencies'])}/{r['count']} articles seen in a pane; produced at {args.rate}/s "
          f"for {args.seconds:.0f} s; all out {r['all_out_s']:.1f} s after the first was produced")
    tenth = max(1, len(r["latencies"]) // 10)
    print("median latency of each tenth, in the order produced: " + ", ".join(
        f"{statistics.median(r['latencies'][i:i + tenth]):.1f}"
        for i in range(0, len(r["latencies"]) - tenth + 1, tenth)) + " s")
    print(f"latency produce -> first pane including it: p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, "
          f"p99 {r['p99']:.2f} s (ner processes {args.ner_processes}"
          f"{', rules-only' if args.rules_only else ''}, early firing {args.early_firing_seconds} s); "
          f"peak RSS {r['sampler'].peak_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
