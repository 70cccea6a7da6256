"""R2: kill -9 part-way, start the same command again, and the final
aggregates are exactly those of an uninterrupted run.

Reuters articles go through the real broker into the continuous pipeline on
Prism (``entitystream run`` in a process of its own, rules-only with
phrase-only tracked entities, tests/fixtures/reuters_tracked_entities.json,
so that the test is quick yet every window holds entities and pairs). When the group has committed its first checkpoint, the pipeline
and its runner get SIGKILL. The same command is started again; when the
group has committed the whole topic, the latest pane of every window must
equal ``oracle.brute_force`` over every article exactly once: the
uninterrupted answer, computed without Beam. The restarted run must also
have skipped what the checkpoint already held (``replayed``), and its books
must balance.

``ENTITYSTREAM_R2_ARTICLES`` sets how many articles (default 3,000; the
documented full run uses 10,000: docs/reliability.md).
"""
import os
import pathlib

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from tests.integration.oracle import brute_force, final_rows, mentions_of
from tests.integration.pipeline_process import PipelineProcess, committed, wait_until
from tests.scrape import total

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
ARTICLES = int(os.environ.get("ENTITYSTREAM_R2_ARTICLES", "3000"))
TRACKED = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
TUPLE = ("JAPAN", "OIL", "US")


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
            "--max-entities-per-article", 10_000, "--top-k-pairs", 10_000_000,
            "--checkpoint-interval-seconds", 2, "--early-firing-seconds", 1,
            "--idle-timeout-seconds", 2]


def test_kill_9_and_restart_loses_nothing_and_counts_nothing_twice(bootstrap, topic, tmp_path):
    articles = reuters(ARTICLES)
    n = len(articles)
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    want = brute_force(mentions_of(articles, rules_only=True, tracked_entities=TRACKED),
                       window_s=3600,
                       sliding_s=6 * 3600, period_s=3600, tuples=(TUPLE,))
    out, group = tmp_path / "out", f"g-{topic}"
    args = pipeline_args(topic, out, bootstrap, group)

    first = PipelineProcess(args, tmp_path / "first.log").start()
    try:
        # The first checkpoint's commit (every 2 s): on these machines a few
        # hundred to ~1,500 articles in, well before the end of the topic.
        at_kill = wait_until(lambda: (committed(bootstrap, group, topic)[0] or 0) >= 1,
                             240, "a first checkpoint committed", poll_s=0.1, proc=first)
    finally:
        first.kill()
    at_kill = committed(bootstrap, group, topic)[0]
    assert 0 < at_kill < n, f"the kill came too late to test anything: committed {at_kill} of {n}"
    assert (out / "_checkpoint" / "aggregation.pickle").is_file()
    # As if the last commit had been lost (a crash between a checkpoint and its
    # commit): the group goes back to half-way, so the restart re-reads
    # messages the checkpoint already holds, which must not count twice.
    rewound = at_kill // 2
    rewind(bootstrap, group, topic, rewound)

    second = PipelineProcess(args, tmp_path / "second.log").start()
    try:
        wait_until(lambda: committed(bootstrap, group, topic)[0] == n, max(300, n / 10),
                   f"all {n} offsets committed after the restart", proc=second)
        # The last panes follow the last checkpoint by at most a few seconds.
        wait_until(lambda: final_rows(inspect_output.load(out), latest=True) == want, 120,
                   "the latest panes to equal the uninterrupted result", poll_s=2, proc=second)
        samples = second.metrics()
    finally:
        second.stop()

    got = final_rows(inspect_output.load(out), latest=True)  # after a clean stop: still equal
    missing, extra = set(want) - set(got), set(got) - set(want)
    wrong = {k: (got[k], want[k]) for k in set(got) & set(want) if got[k] != want[k]}
    assert not missing and not extra and not wrong, (
        f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong; e.g. "
        f"{sorted(missing)[:3]} {sorted(extra)[:3]} {list(wrong.items())[:3]}")
    # Every kind of aggregate, many windows, the tracked tuple among them.
    assert len(want) > 1_000 and any(k[3] == TUPLE for k in want if len(k) == 5)
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
    assert "restored the aggregation checkpoint" in second.log()
    print(f"\nR2: {n} articles, {len(want)} aggregates; killed at committed offset {at_kill}, "
          f"rewound to {rewound}; second run read {consumed:.0f}: {settled}")


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
