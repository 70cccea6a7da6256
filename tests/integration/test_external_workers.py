"""The pipeline with its SDK workers outside the launching process: Prism
with ``--environment_type=EXTERNAL`` and a worker pool of its own
(``python -m apache_beam.runners.worker.worker_pool_main``, the shape in
which Flink runs Python). The aggregation's state then lives in the runner's
state, not in the launcher (``workers_in_process=False``).

Through the real broker, bounded runs over the seeds (full extraction) and
a Reuters slice (rules-only, phrase-only tracked entities, so that it is
quick) must give every final aggregate equal to ``oracle.brute_force``, and
equal to the same run with LOOPBACK workers. Co-occurrence caps are set
above anything in the input so that pairs are exact too. The workers'
prometheus-client counts reach the launcher as Beam metrics
(``pipeline/metrics.py``, ``BeamJobMetrics``): the books must balance there.
"""
import pathlib
import time

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.metrics import BeamJobMetrics
from pipeline.run import start
from pipeline.settings import Settings
from tests.integration.oracle import brute_force, describe, differences, final_rows, mentions_of
from tests.integration.pipeline_process import WorkerPool

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
TRACKED = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
TUPLES = (("BRIDGE", "NORTH_KOREA", "RUSSIA"),)
WIDE = dict(max_entities_per_article=10_000, top_k_pairs=10_000_000)


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """A Beam worker pool on a free port, for the module (``WorkerPool``)."""
    pool = WorkerPool(tmp_path_factory.mktemp("pool") / "pool.log").start()
    yield pool.port
    pool.stop()


def run(bootstrap, topic, out, beam_args, **settings):
    settings = Settings(topic=topic, output_dir=str(out), bootstrap_servers=bootstrap,
                        runner="prism", bounded=True, group_id=f"g-{out.name}-{topic}",
                        metrics_port=0, tracked_tuples=TUPLES, **WIDE, **settings)
    started = time.monotonic()
    result = start(settings, beam_args)
    state = result.wait_until_finish()
    assert str(state).endswith("DONE"), state
    job_metrics = BeamJobMetrics()
    job_metrics.attach(result)
    return final_rows(inspect_output.load(out)), time.monotonic() - started, job_metrics.values()


def external(port):
    return ["--environment_type=EXTERNAL", f"--environment_config=localhost:{port}"]


def check_both_ways(bootstrap, topic, tmp_path, articles, want, worker_pool, **settings):
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    got, external_s, counted = run(bootstrap, topic, tmp_path / "external",
                                   external(worker_pool), **settings)
    assert not any(differences(got, want)), describe(*differences(got, want))
    loopback, loopback_s, _ = run(bootstrap, topic, tmp_path / "loopback", [], **settings)
    assert loopback == got
    # The books, as the workers counted them and the launcher would serve them.
    n = len(articles)
    value = lambda name, **labels: sum(v for (s, ls), v in counted.items()
                                       if s == name and set(labels.items()) <= set(ls))
    assert value("entitystream_articles_consumed_total") == n, counted
    assert (value("entitystream_messages_settled_total", outcome="aggregated")
            + value("entitystream_messages_settled_total", outcome="duplicate")) == n
    assert value("entitystream_panes_emitted_total") > 0
    assert value("entitystream_avro_written_bytes_total", kind="entity_counts") > 0
    return external_s, loopback_s


def test_seeds_with_external_workers_equal_the_oracle_and_loopback(bootstrap, topic, tmp_path,
                                                                   worker_pool):
    articles = list(read_articles([ROOT / "seeds"]))
    want = brute_force(mentions_of(articles), window_s=3600, sliding_s=86400, period_s=3600,
                       tuples=TUPLES)
    check_both_ways(bootstrap, topic, tmp_path, articles, want, worker_pool)
    # Hand-checked (tests/fixtures/seed_tracked_counts.json): the tuple is in all 5 seeds.
    assert want[("running_cooccurrence", 0, "article", TUPLES[0], True)] == (5, 5)


def test_reuters_slice_with_external_workers_equals_the_oracle_and_loopback(
        bootstrap, topic, tmp_path, worker_pool):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    articles = []
    for a in read_articles([REUTERS]):
        articles.append(a)
        if len(articles) == 1000:
            break
    windows = dict(window_seconds=3600, sliding_window_seconds=6 * 3600,
                   sliding_period_seconds=3600)
    want = brute_force(mentions_of(articles, rules_only=True, tracked_entities=TRACKED),
                       window_s=3600, sliding_s=6 * 3600, period_s=3600, tuples=TUPLES)
    assert len(want) > 500
    external_s, loopback_s = check_both_ways(
        bootstrap, topic, tmp_path, articles, want, worker_pool, rules_only=True,
        tracked_entities=str(TRACKED), **windows)
    print(f"\n1,000 Reuters articles, rules-only, bounded, with start-up: EXTERNAL "
          f"{external_s:.1f} s, LOOPBACK {loopback_s:.1f} s "
          f"({loopback_s / external_s:.2f}x of LOOPBACK's throughput)")


def test_continuous_run_with_external_workers_serves_their_counts(bootstrap, topic, tmp_path,
                                                                 worker_pool):
    """``entitystream run`` (continuous) with its workers in the pool: its
    /metrics endpoint serves what the workers counted, under the usual names."""
    from tests.integration.pipeline_process import PipelineProcess, wait_until
    from tests.scrape import total
    articles = list(read_articles([ROOT / "seeds"]))
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    args = ["--topic", topic, "--output", tmp_path / "out", "--bootstrap-servers", bootstrap,
            "--group-id", f"g-{topic}", "--runner", "prism", "--early-firing-seconds", 1,
            "--idle-timeout-seconds", 2, *external(worker_pool)]
    proc = PipelineProcess(args, tmp_path / "run.log").start()
    settled = lambda s: total(s, "entitystream_messages_settled_total")
    try:
        samples = wait_until(lambda: (lambda s: s if settled(s) >= 5 else None)(proc.metrics()),
                             180, "the five seeds settled in /metrics", poll_s=1, proc=proc)
        # Every seed read once and counted once; panes went out; who runs it.
        assert total(samples, "entitystream_articles_consumed_total") == 5
        assert total(samples, "entitystream_messages_settled_total", outcome="aggregated") == 5
        assert total(samples, "entitystream_panes_emitted_total") > 0
        assert total(samples, "entitystream_build_info", runner="prism") == 1
    finally:
        proc.stop()
