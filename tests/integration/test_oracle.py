"""Oracle tests: every final aggregate of the pipeline, run through the real
broker, equals a brute-force computation in plain Python (oracle.brute_force).

The oracle takes each article's mentions from the project's extraction
functions called directly (no Beam): what is under test here is the stream
(Kafka source, decode, windows, panes, sink), and extraction has tests of its
own. Co-occurrence caps are set above anything in the input so that the
oracle needs none (the caps are unit-tested).

Stories and outlets: the oracle takes the duplicate decisions of the
project's ``StoryIndex`` over the same articles in publication order
(``oracle.story_decisions``) and counts distinct stories and ``source``
values itself. The Reuters slice gets copies made the way outlets make them
(another source, boilerplate added, the last paragraph dropped), so that
``stories`` and ``outlets`` differ from ``articles``.
"""
import pathlib

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.run import start
from pipeline.settings import Settings
from tests.integration.oracle import (brute_force, describe, differences, final_rows,
                                      mentions_of, story_decisions)

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
    return final_rows(inspect_output.load(out), stories=True)


def copies(articles, every=10):
    """Copies of every ``every``-th article, as another outlet makes them: an
    hour later, its boilerplate added, the last paragraph dropped when there
    are two or more."""
    out = []
    for a in articles[::every]:
        paragraphs = a["body"].split("\n    ")
        body = "\n    ".join(paragraphs[:-1] if len(paragraphs) > 1 else paragraphs)
        out.append(dict(a, id=a["id"] + "-copy", source="Copy Wire",
                        body=body + "\n    Copyright Copy Wire. All rights reserved.",
                        published_at=a["published_at"] + 3_600_000))
    return out


def test_seeds_every_aggregate_matches_brute_force(bootstrap, topic, tmp_path):
    articles = list(read_articles([ROOT / "seeds"]))
    windows = dict(window_seconds=3600, sliding_window_seconds=86400, sliding_period_seconds=3600)
    got = run_bounded(bootstrap, topic, tmp_path, articles, **windows)
    want = brute_force(mentions_of(articles), window_s=3600, sliding_s=86400, period_s=3600,
                       tuples=TUPLES, stories=story_decisions(articles))
    assert got == want
    kinds = {k[0] for k in want}
    assert kinds == {"entity_counts", "sliding_entity_counts", "running_entity_counts",
                     "cooccurrence", "running_cooccurrence"}
    # Hand-checked (tests/fixtures/seed_tracked_counts.json): every seed holds
    # RUSSIA, NORTH_KOREA and BRIDGE, so the tracked tuple is in all 5
    # articles in the running totals, and in the one article of each seed's hour.
    tuple_key = ("BRIDGE", "NORTH_KOREA", "RUSSIA")
    # Five different stories from three outlets (seeds/manifest.json: "unknown"
    # three times, EurAsian Times, Korea JoongAng Daily).
    assert got[("running_cooccurrence", 0, "article", tuple_key, True)] == (5, 5, 5, 3)
    hours = [k for k in got if k[0] == "cooccurrence" and k[2:] == ("article", tuple_key, True)]
    assert len(hours) == 5 and all(got[k] == (1, 1, 1, 1) for k in hours)


def test_reuters_slice_every_aggregate_matches_brute_force(bootstrap, topic, tmp_path):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    articles = []
    for a in read_articles([REUTERS]):
        articles.append(a)
        if len(articles) == 2000:
            break
    made = copies(articles)
    articles += made
    windows = dict(window_seconds=3600, sliding_window_seconds=6 * 3600,
                   sliding_period_seconds=3600)
    got = run_bounded(bootstrap, topic, tmp_path, articles, **windows)
    decisions = story_decisions(articles)
    want = brute_force(mentions_of(articles), window_s=3600, sliding_s=6 * 3600,
                       period_s=3600, tuples=TUPLES, stories=decisions)
    assert len(want) > 10_000
    assert not any(differences(got, want)), describe(*differences(got, want))
    # The copies were found: most joined their original's story, and the
    # running totals count fewer stories than articles, two outlets or more.
    joined = sum(decisions[c["id"]][0] == decisions[c["id"][:-len("-copy")]][0] for c in made)
    running = [v for k, v in want.items() if k[0] == "running_entity_counts"]
    assert joined >= 0.9 * len(made), (joined, len(made))
    assert any(v[2] < v[1] for v in running) and max(v[3] for v in running) >= 2


def test_two_partitions_story_counts_match_brute_force(bootstrap, topic, tmp_path):
    """Several partitions (docs/stories.md): an uninterrupted Prism run over a
    2-partition topic, where the aggregation sees the articles in the order
    the reader takes them from the two partitions (not sorted by publication
    time), against the oracle's decisions in publication order. Lean: 600 Reuters articles and two copies of every
    10th (clusters of three, most spread over both partitions), rules-only
    extraction with phrase-only entities."""
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    from kafka import KafkaConsumer
    tracked = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
    tuples = (("JAPAN", "OIL", "US"),)
    articles = sorted(read_articles([REUTERS]), key=lambda a: a["published_at"])[:600]
    first, second = copies(articles), copies(articles)
    second = [dict(c, id=c["id"] + "2", source="Second Wire",
                   published_at=c["published_at"] + 3_600_000) for c in second]
    articles += first + second
    publish(articles, bootstrap_servers=bootstrap, topic=topic, partitions=2)
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="prism", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        tracked_tuples=tuples, rules_only=True, tracked_entities=str(tracked),
                        window_seconds=3600, sliding_window_seconds=6 * 3600,
                        sliding_period_seconds=3600, **WIDE)
    start(settings).wait_until_finish()
    got = final_rows(inspect_output.load(tmp_path), stories=True)
    decisions = story_decisions(articles)
    want = brute_force(mentions_of(articles, rules_only=True, tracked_entities=tracked),
                       window_s=3600, sliding_s=6 * 3600, period_s=3600, tuples=tuples,
                       stories=decisions)
    # What makes it a test of several partitions: the clusters span both.
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    partition_of = {m.key.decode(): m.partition for m in consumer}
    consumer.close()
    clusters = {}
    for article_id, (story, _) in decisions.items():
        clusters.setdefault(story, set()).add(partition_of[article_id])
    spread = sum(1 for parts in clusters.values() if len(parts) == 2)
    assert len(partition_of) == len(articles) and spread >= 20, (len(partition_of), spread)
    assert not any(differences(got, want)), describe(*differences(got, want))
    running = [v for k, v in want.items() if k[0] == "running_entity_counts"]
    assert any(v[2] < v[1] for v in running) and max(v[3] for v in running) >= 3
    print(f"\n2 partitions: {len(articles)} articles, {len(clusters)} stories, {spread} of them "
          f"spread over both partitions; {len(want)} aggregates equal to brute force")
