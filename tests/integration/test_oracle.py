"""Oracle tests: every final aggregate of the pipeline, run through the real
broker, equals a brute-force computation in plain Python (oracle.brute_force).

The oracle takes each article's mentions from the project's extraction
functions called directly (no Beam): what is under test here is the stream
(Kafka source, decode, windows, panes, sink), and extraction has tests of its
own. Co-occurrence caps are set above anything in the input so that the
oracle needs none (the caps are unit-tested).
"""
import pathlib

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.run import start
from pipeline.settings import Settings
from tests.integration.oracle import brute_force, describe, differences, final_rows, mentions_of

pytestmark = [pytest.mark.broker, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
TUPLES = (("BRIDGE", "NORTH_KOREA", "RUSSIA"), ("COUNTRY:USA", "COUNTRY:JPN"))
WIDE = dict(max_entities_per_article=10_000, top_k_pairs=10_000_000)


def run_bounded(bootstrap, topic, out, articles, **windows):
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    settings = Settings(topic=topic, output_dir=str(out), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        tracked_tuples=TUPLES, **WIDE, **windows)
    start(settings).wait_until_finish()
    return final_rows(inspect_output.load(out))


def test_seeds_every_aggregate_matches_brute_force(bootstrap, topic, tmp_path):
    articles = list(read_articles([ROOT / "seeds"]))
    windows = dict(window_seconds=3600, sliding_window_seconds=86400, sliding_period_seconds=3600)
    got = run_bounded(bootstrap, topic, tmp_path, articles, **windows)
    want = brute_force(mentions_of(articles), window_s=3600, sliding_s=86400, period_s=3600,
                       tuples=TUPLES)
    assert got == want
    kinds = {k[0] for k in want}
    assert kinds == {"entity_counts", "sliding_entity_counts", "running_entity_counts",
                     "cooccurrence", "running_cooccurrence"}
    # Hand-checked (tests/fixtures/seed_tracked_counts.json): every seed holds
    # RUSSIA, NORTH_KOREA and BRIDGE, so the tracked tuple is in all 5
    # articles in the running totals, and in the one article of each seed's hour.
    tuple_key = ("BRIDGE", "NORTH_KOREA", "RUSSIA")
    assert got[("running_cooccurrence", 0, "article", tuple_key, True)] == (5, 5)
    hours = [k for k in got if k[0] == "cooccurrence" and k[2:] == ("article", tuple_key, True)]
    assert len(hours) == 5 and all(got[k] == (1, 1) for k in hours)


def test_reuters_slice_every_aggregate_matches_brute_force(bootstrap, topic, tmp_path):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    articles = []
    for a in read_articles([REUTERS]):
        articles.append(a)
        if len(articles) == 2000:
            break
    windows = dict(window_seconds=3600, sliding_window_seconds=6 * 3600,
                   sliding_period_seconds=3600)
    got = run_bounded(bootstrap, topic, tmp_path, articles, **windows)
    want = brute_force(mentions_of(articles), window_s=3600, sliding_s=6 * 3600,
                       period_s=3600, tuples=TUPLES)
    assert len(want) > 10_000
    assert not any(differences(got, want)), describe(*differences(got, want))
