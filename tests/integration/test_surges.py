"""Surges end to end: a Reuters replay slice with an injected burst of
tracked-tuple articles, through the real broker and a bounded run, is
flagged in the burst's window and in no other window.

The burst: the five seed articles (each holds RUSSIA, NORTH_KOREA and BRIDGE:
tests/fixtures/seed_tracked_counts.json) given new ids and published inside
one hour of the Reuters slice, after enough hours for a baseline. Reuters
1987 never holds the tuple, so every other window's share is 0 and the
burst's is 5 / (that hour's articles): far above (pipeline/surges.py).
Rules-only extraction with the shipped tracked entities keeps it quick.
"""
import datetime as dt
import pathlib

import pytest

from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.run import start
from pipeline.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.spacy, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"
TUPLE = ["BRIDGE", "NORTH_KOREA", "RUSSIA"]
H = 3_600_000


def _ms(text):
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp() * 1000)


def test_an_injected_burst_is_flagged_in_its_window_only(bootstrap, topic, tmp_path):
    if not REUTERS.is_dir():
        pytest.skip(f"Reuters-21578 not found at {REUTERS} (../shared/corpora)")
    reuters = sorted(read_articles([REUTERS]), key=lambda a: a["published_at"])[:600]
    hours = sorted({a["published_at"] // H for a in reuters})
    assert len(hours) >= 12, f"the slice spans only {len(hours)} hours"
    burst_hour = hours[len(hours) * 2 // 3]   # after 6 hours or more of baseline
    seeds = list(read_articles([ROOT / "seeds"]))
    burst = [dict(s, id=f"burst-{i}", published_at=burst_hour * H + 60_000 * (i + 1))
             for i, s in enumerate(seeds)]
    publish(reuters + burst, bootstrap_servers=bootstrap, topic=topic)
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        rules_only=True, sliding_window_seconds=0)
    start(settings).wait_until_finish()
    rows = inspect_output.load(tmp_path)
    surges = [r for r in rows if r["kind"] == "surges"]
    tuple_surges = [r for r in surges if r["entities"] == TUPLE]
    assert [_ms(r["window_start"]) for r in tuple_surges] == [burst_hour * H], tuple_surges
    (s,) = tuple_surges
    in_hour = sum(1 for a in reuters + burst if a["published_at"] // H == burst_hour)
    assert (s["articles"], s["total_articles"]) == (5, in_hour)
    assert s["baseline"] == 0.0 and s["score"] >= s["threshold"]
    # The tuple's own windows: only the burst hour has it at all.
    tuple_hours = {_ms(r["window_start"]) for r in rows if r["kind"] == "cooccurrence"
                   and r["tracked"] and r["scope"] == "article" and r["entities"] == TUPLE}
    assert tuple_hours == {burst_hour * H}
    print(f"\nsurges: {len(surges)} in {len(hours) + 1} hours ({len(tuple_surges)} of the "
          f"tuple); burst {s['articles']} of {s['total_articles']}, score {s['score']:.1f}")
