"""The benchmarks' cycled workload over a recent corpus (the seeds fallback):
Kafka 4 rejects record timestamps more than an hour ahead of its clock, so the
cycles go back in time. Expected dates are read from seeds/manifest.json."""
import datetime as dt
import json
import pathlib

from benchmarks import workloads

ROOT = pathlib.Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


def ms(iso):
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_seed_cycles_go_back_in_time_and_end_where_the_seeds_end(monkeypatch):
    monkeypatch.setattr(workloads, "CORPUS", ROOT / "no-such-corpus")  # the seeds fallback
    dates = sorted(ms(a["published_at"])
                   for a in json.loads((ROOT / "seeds" / "manifest.json").read_text())["articles"])
    span = dates[-1] - dates[0] + DAY_MS  # the seeds' span plus a quiet day
    # 200 articles: 40 cycles; forward, the last would be in the 2040s.
    out = workloads.cycled(200)
    assert len(out) == 200 and len({a["id"] for a in out}) == 200
    got = [a["published_at"] for a in out]
    # Cycle 0 (ids as published) is shifted back 39 spans, the last cycle not at all.
    assert sorted(got[:5]) == [d - 39 * span for d in dates]
    assert sorted(got[-5:]) == dates
    assert max(got) == dates[-1] < dt.datetime.now().timestamp() * 1000
