"""R2: kill -9 part-way, start the same command again, and the final
aggregates are exactly those of an uninterrupted run, their distinct
stories and outlets too (the story index is in the checkpoint).

Reuters articles go through the real broker into the continuous pipeline on
Prism (``entitystream run`` in a process of its own, rules-only with
phrase-only tracked entities, tests/fixtures/reuters_tracked_entities.json,
so that the test is quick yet every window holds entities and pairs). When the group has committed its first checkpoint, the pipeline
and its runner get SIGKILL. The same command is started again; when the
group has committed the whole topic, the latest pane of every window must
equal ``oracle.brute_force`` over every article exactly once (the
uninterrupted answer, computed without Beam) for every exact aggregate:
mention counts and tracked tuples. Co-occurrence pairs are kept in a
Misra-Gries summary of ``--top-k-pairs`` (5 here, so that the running
table and the busier hours are pruned): there every reported pair's true
count and articles must lie within the bounds the record publishes, and
every pair not reported must be at most what its window's bounds allow
(``oracle.bound_violations``). The pair tables are also compared with a clean
run of the same summary over the same articles in order (the window book,
no Beam): the test prints how many entries differ; each difference is
within the bounds, since both hold the truth. The restarted run must also
have skipped what the checkpoint already held (``replayed``), and its books
must balance.

The test runs twice: with LOOPBACK workers (the state in the launching
process) and with EXTERNAL ones (Prism ``--environment_type=EXTERNAL`` and a
worker pool of its own, the shape in which Flink runs Python: the state in
the runner's state, ``RunnerLayout``; the checkpoint written and restored by
the worker; /metrics fed by Beam metrics). There the kill is a crash of the
launcher's machine: SIGKILL to the launcher, its Prism, the pool and its SDK
workers; the restart gets a fresh pool.

``ENTITYSTREAM_R2_ARTICLES`` sets how many articles (default 3,000; the
documented full run uses 10,000: docs/reliability.md), and
``ENTITYSTREAM_R2_WORKERS`` the worker shapes (default ``loopback,external``;
``external-pool-survives`` kills only the launcher and its Prism, and the
restart reuses the pool).
"""
import os
import pathlib

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from tests.integration.oracle import (bound_violations, brute_force, describe, differences,
                                      final_rows, is_pair, mentions_of, pair_bounds,
                                      story_decisions)
from tests.integration.pipeline_process import (PipelineProcess, WorkerPool, committed,
                                                 wait_until)
from tests.scrape import total

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
ARTICLES = int(os.environ.get("ENTITYSTREAM_R2_ARTICLES", "3000"))
TRACKED = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
TUPLE = ("JAPAN", "OIL", "US")
# Where the SDK workers run: "loopback" (in the launcher), "external" (a pool,
# killed with the launcher; a fresh one for the restart), "external-pool-survives"
# (only the launcher and its Prism killed; the restart uses the same pool).
WORKERS = os.environ.get("ENTITYSTREAM_R2_WORKERS", "loopback,external").split(",")
if not set(WORKERS) <= {"loopback", "external", "external-pool-survives"}:
    raise ValueError(f"ENTITYSTREAM_R2_WORKERS={','.join(WORKERS)!r}: use a comma-separated "
                     f"list of loopback, external and external-pool-survives")
TOP_K = 5  # the phrase-only entities give 28 distinct running pairs, up to 20 an hour


def reuters(n):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    articles = []
    for a in read_articles([REUTERS]):
        articles.append(a)
        if len(articles) == n:
            return articles
    return articles


def rewind(bootstrap, group, topic, offset):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()
    assert committed(bootstrap, group, topic)[0] == offset


def pipeline_args(topic, out, bootstrap, group):
    return ["--topic", topic, "--output", out, "--bootstrap-servers", bootstrap,
            "--group-id", group, "--runner", "prism", "--rules-only",
            "--tracked-entities", TRACKED, "--tracked-tuple", ",".join(TUPLE),
            "--window-seconds", 3600, "--sliding-window-seconds", 6 * 3600,
            "--sliding-period-seconds", 3600,
            "--max-entities-per-article", 10_000, "--top-k-pairs", TOP_K,
            "--checkpoint-interval-seconds", 2, "--early-firing-seconds", 1,
            "--idle-timeout-seconds", 2]


def clean_pair_tables(mentions):
    """The pair tables of an uninterrupted run of the same summary over the
    articles in order: the window book driven directly (no Beam, no Kafka)."""
    from pipeline.cooccurrence import article_cooccurrence
    from pipeline.records import ArticleEntities, Mention
    from pipeline.tallies import tally_article
    from pipeline.window_book import WindowBook
    from pipeline.windows import RUNNING_END_MS, WindowSpec
    book = WindowBook(specs=(WindowSpec.tumbling(3600), WindowSpec.sliding(6 * 3600, 3600),
                             WindowSpec.running()),
                      allowed_lateness_ms=0, early_firing_ms=None, top_k_pairs=TOP_K)

    class Art:
        def __init__(self, article_id, t, found):
            ms = tuple(Mention(e, e, "X", i) for e, i in found)
            self.article_id, self.published_ms = article_id, t
            self.tally = tally_article(ArticleEntities(article_id, t, ms))
            self.cooc = article_cooccurrence(ms, 10_000, (TUPLE,))

    for article_id, t, found in mentions:
        book.add(Art(article_id, t, found), now_ms=t)
    out = {}
    for pane in book.close_through(RUNNING_END_MS, 0):
        for r in pane.records:
            if "scope" in r and not r["tracked"]:
                out[(pane.kind, pane.window_start_ms, r["scope"], tuple(r["entities"]))] = (
                    r["count_lower"], r["count_upper"], r["articles_lower"], r["articles_upper"])
    return out


def crash_and_restart(launch, doomed, bootstrap, group, topic, n, out, exact, want):
    """Run ``launch("first")`` until its first checkpoint is committed, SIGKILL
    it and the worker pools in ``doomed`` (the launcher's machine crashed), move
    the group back half-way, run ``launch("second")`` until the latest panes
    equal ``want``, stop it cleanly. Returns its /metrics samples, its log, the
    committed offset at the kill and the rewind."""
    first = launch("first")
    try:
        # The first checkpoint's commit (every 2 s): on these machines a few
        # hundred to ~1,500 articles in, well before the end of the topic.
        wait_until(lambda: (committed(bootstrap, group, topic)[0] or 0) >= 1,
                   240, "a first checkpoint committed", poll_s=0.1, proc=first)
    finally:
        for pool in doomed:
            pool.kill()
        first.kill()
    at_kill = committed(bootstrap, group, topic)[0]
    assert 0 < at_kill < n, f"the kill came too late to test anything: committed {at_kill} of {n}"
    assert (out / "_checkpoint" / "aggregation.pickle").is_file()
    # As if the last commit had been lost (a crash between a checkpoint and its
    # commit): the group goes back to half-way, so the restart re-reads
    # messages the checkpoint already holds, which must not count twice.
    rewound = at_kill // 2
    rewind(bootstrap, group, topic, rewound)

    second = launch("second")
    try:
        wait_until(lambda: committed(bootstrap, group, topic)[0] == n, max(300, n / 10),
                   f"all {n} offsets committed after the restart", proc=second)
        # The last panes follow the last checkpoint by at most a few seconds.
        wait_until(lambda: exact(inspect_output.load(out)) == want, 120,
                   "the latest panes to equal the uninterrupted result", poll_s=2, proc=second)
        samples = second.metrics()
    finally:
        second.stop()

    return samples, second.log(), at_kill, rewound


@pytest.mark.parametrize("workers", WORKERS)
def test_kill_9_and_restart_loses_nothing_and_counts_nothing_twice(bootstrap, topic, tmp_path,
                                                                   workers):
    articles = reuters(ARTICLES)
    n = len(articles)
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    mentions = mentions_of(articles, rules_only=True, tracked_entities=TRACKED)
    truth = brute_force(mentions, window_s=3600, sliding_s=6 * 3600, period_s=3600,
                        tuples=(TUPLE,))
    # Exact aggregates with their distinct stories and outlets: the story index
    # restored from the checkpoint must decide as an uninterrupted one would.
    with_stories = brute_force(mentions, window_s=3600, sliding_s=6 * 3600, period_s=3600,
                               tuples=(TUPLE,), stories=story_decisions(articles))
    want = {k: v for k, v in with_stories.items() if not is_pair(k)}
    exact = lambda rows: {k: v for k, v in final_rows(rows, latest=True, stories=True).items()
                          if not is_pair(k)}
    out, group = tmp_path / "out", f"g-{topic}"
    args = pipeline_args(topic, out, bootstrap, group)
    pools = []  # EXTERNAL: each run's worker pool

    def launch(name):
        """The same command; EXTERNAL: its SDK workers in a fresh pool of their own."""
        if workers == "loopback":
            return PipelineProcess(args, tmp_path / f"{name}.log").start()
        if not pools or workers == "external":
            pools.append(WorkerPool(tmp_path / f"{name}-pool.log").start())
        return PipelineProcess(args + pools[-1].beam_args(), tmp_path / f"{name}.log").start()

    try:
        samples, logs, at_kill, rewound = crash_and_restart(
            launch, pools if workers == "external" else [], bootstrap, group, topic, n, out,
            exact, want)
    finally:
        for pool in pools:
            pool.stop()
    rows = inspect_output.load(out)   # after a clean stop: still equal
    assert not any(differences(exact(rows), want)), describe(*differences(exact(rows), want))
    # Every kind of aggregate, many windows, the tracked tuple among them.
    assert len(want) > 1_000 and any(k[3] == TUPLE for k in want if len(k) == 5)
    # The pairs: every published bound holds, and the summary was put to work
    # (some pair's bounds are apart: the table was pruned).
    bounds = pair_bounds(rows)
    bad = bound_violations(truth, bounds)
    assert not bad, f"{len(bad)} pair bounds do not hold, e.g. {bad[:3]}"
    pruned = {k[:2] for k, (lo, hi, _, _) in bounds.items() if hi > lo}
    assert ("running_cooccurrence", 0) in pruned, "the running pair table was never pruned"
    clean = clean_pair_tables(mentions)
    assert not bound_violations(truth, clean)      # the clean run's bounds hold too
    everywhere = set(clean) | set(bounds)
    differ = {k for k in everywhere if clean.get(k) != bounds.get(k)}
    running = {k for k in everywhere if k[0] == "running_cooccurrence"}
    assert {k[0] for k in want} == {
        "entity_counts", "sliding_entity_counts", "running_entity_counts", "cooccurrence",
        "running_cooccurrence"}
    # The second run read from the committed offset: what the checkpoint held
    # was skipped, the rest counted, and every message read is in the books.
    consumed = total(samples, "entitystream_articles_consumed_total")
    settled = {o: total(samples, "entitystream_messages_settled_total", outcome=o)
               for o in ("aggregated", "late", "duplicate", "dead_letter", "replayed")}
    assert consumed == sum(settled.values()) and consumed >= n - rewound, (consumed, settled)
    assert settled["replayed"] >= at_kill - rewound, settled
    assert settled["dead_letter"] == 0 and settled["late"] == 0, settled
    # Reuters holds a few repeated stories (same id in the same hour): duplicates.
    assert settled["aggregated"] + settled["duplicate"] + settled["replayed"] == consumed
    # EXTERNAL: the worker, which restores it, logs to its pool's log.
    logs += "".join(pool.log() for pool in pools)
    assert "restored the aggregation checkpoint" in logs
    print(f"\nR2 ({workers}): {n} articles, {len(want)} exact aggregates, {len(bounds)} pairs "
          f"reported in {len({k[:2] for k in bounds})} windows ({len(pruned)} pruned); killed at "
          f"committed offset {at_kill}, rewound to {rewound}; second run read "
          f"{consumed:.0f}: {settled}; pair tables: {len(differ)} of {len(everywhere)} entries "
          f"differ from a clean run ({len(differ & running)} of {len(running)} in the running "
          f"table), all within the bounds")


def test_a_finished_bounded_run_then_new_input_starts_new_windows(bootstrap, topic, tmp_path):
    """A bounded run closes every window (final panes) and checkpoints that it
    finished: the next bounded run over new input counts it in new windows
    (not late), and skips nothing new."""
    import json
    from pipeline.run import start
    from pipeline.settings import Settings
    seeds = sorted(read_articles([ROOT / "seeds"]), key=lambda a: a["published_at"])
    fixture = json.loads((ROOT / "tests" / "fixtures" / "seed_tracked_counts.json").read_text())
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        rules_only=True)
    publish(seeds[:3], bootstrap_servers=bootstrap, topic=topic)
    start(settings).wait_until_finish()
    publish(seeds[3:], bootstrap_servers=bootstrap, topic=topic)
    start(settings).wait_until_finish()
    rows = inspect_output.load(tmp_path)
    assert not (tmp_path / "late_articles").exists()
    hours = {}
    for r in rows:
        if r["kind"] == "entity_counts" and r["entity_id"] == "RUSSIA" and r["is_final"]:
            hours[r["window_start"]] = r["mentions"]
    assert sorted(hours.values()) == sorted(fixture["counts"][a["id"]]["RUSSIA"] for a in seeds)
    assert committed(bootstrap, f"g-{topic}", topic)[0] == len(seeds)
