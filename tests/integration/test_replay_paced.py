"""`entitystream replay --rate/--speed/--loop/--rebase-time` through the real broker:
what the topic holds and how long the sends took. The schedule itself is unit-tested
(tests/unit/test_pacing.py); here the thin wall-clock part and the command line."""
import json
import pathlib
import signal
import time

import pytest

from pipeline import cli
from tests.topic import topic_records

pytestmark = [pytest.mark.broker]
SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"


@pytest.fixture
def replay(bootstrap):
    previous = signal.getsignal(signal.SIGINT)  # the command stops on Ctrl-C cleanly

    def run(*args):
        started = time.monotonic()
        assert cli.main(["replay", *args, "--bootstrap-servers", bootstrap]) == 0
        return time.monotonic() - started
    yield run
    signal.signal(signal.SIGINT, previous)


def test_rate_and_loop_send_fresh_ids_a_span_later(bootstrap, topic, replay, capsys):
    elapsed = replay(str(SEEDS), "--topic", topic, "--rate", "10", "--loop", "--limit", "7")
    got = topic_records(bootstrap, topic)
    # The seeds by publication time (seeds/manifest.json), then the first two again.
    order = ["seed-002", "seed-003", "seed-001", "seed-004", "seed-000"]
    assert [k for k, _, _ in got] == order + ["seed-002~c1", "seed-003~c1"]
    # Span by hand: 2024-12-16T12:00Z to 2025-05-28T12:00Z is 163 days = 14,083,200,000 ms,
    # plus the mean gap over 4 gaps (3,520,800,000 ms): 17,604,000,000 ms.
    first = {k: ts for k, ts, _ in got}
    assert first["seed-002~c1"] - first["seed-002"] == 17_604_000_000
    assert first["seed-003~c1"] - first["seed-003"] == 17_604_000_000
    assert all(ts == doc["published_at"] for _, ts, doc in got)
    assert elapsed >= 0.6  # 7 sends at 10/s: the last 0.6 s after the first
    assert "sent 7 articles" in capsys.readouterr().out


def test_speed_with_rebase_time_is_live_like(bootstrap, topic, replay, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps({"id": f"j{i}", "title": "t", "body": "b",
                                        "published_at": f"1987-03-01T00:00:0{i}Z"}) + "\n"
                            for i in range(3)), encoding="utf-8")
    before_ms = time.time() * 1000
    elapsed = replay(str(feed), "--topic", topic, "--speed", "2", "--rebase-time")
    got = topic_records(bootstrap, topic)
    # 1 s apart in publication time, at 2 s per s: sent 0.5 s apart, 1 s in all;
    # rebased, the first is stamped with the time the replay started.
    assert [k for k, _, _ in got] == ["j0", "j1", "j2"]
    stamps = [ts for _, ts, _ in got]
    assert [s - stamps[0] for s in stamps] == [0, 1000, 2000]
    assert before_ms <= stamps[0] <= before_ms + 10_000
    assert elapsed >= 1.0
