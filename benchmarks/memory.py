"""P4: memory of every pipeline process through a long replay.

``measure(count, bootstrap, work_dir, flags)`` publishes ``count`` articles
(Reuters-21578 cycled: each cycle later in time, fresh ids; see
``workloads.cycled``) to a fresh topic, runs the pipeline continuously on
Prism in a process of its own until it has settled them all, and samples the
RSS of its process tree (pipeline, NER worker processes, Prism) every 0.5 s
against its progress (``entitystream_messages_settled_total``).

Growth, per process role and for the whole tree:
``max RSS over the last 20 % of the run / RSS when the first 10 % of the
articles were settled (the end of warm-up) - 1``, the run being the time from
the first article read to the last pane emitted once all were settled (the
windows the replay opened closed: see ``endtoend.run_pipeline``). The aggregation's checkpoint
(``OUTPUT/_checkpoint/aggregation.pickle``: every open window and the source
ledger) is measured the same way, and at the end it is opened to report the
open windows and the largest one's pickled size (the state per window).
"""
import pathlib
import pickle
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.endtoend import checkpoint_path, run_pipeline  # noqa: E402
from benchmarks.processes import TreeSampler  # noqa: E402
from benchmarks.workloads import cycled, delete_topics, publish_topic, texts, words  # noqa: E402

__all__ = ["measure", "growth", "checkpoint_summary"]

WARM_UP = 0.10  # of the articles settled: the reference point
TAIL = 0.20     # the last fraction of the run's time: where the growth is read


def growth(run, warm_up=WARM_UP, tail=TAIL):
    """{role or 'total': (MB at warm-up end, max MB in the tail, growth)}; per role the sum
    over that role's processes, and per process for roles with several."""
    samples = [s for s in run.sampler.samples if s.t <= run.finished]
    after = [s for s in samples if s.extra and (s.extra.get("settled") or 0) >= warm_up * run.count]
    t0 = run.first_article or run.started
    last = [s for s in samples if s.t >= run.finished - tail * (run.finished - t0)]
    if not after or not last:
        return {}
    ref = after[0]
    roles = sorted(set(ref.roles.values()))
    out = {}
    for role in roles + [None]:
        start = TreeSampler.total_mb(ref, role)
        peak = max(TreeSampler.total_mb(s, role) for s in last)
        out[role or "total"] = (start, peak, peak / start - 1 if start else float("nan"))
    for pid, role in ref.roles.items():
        if list(ref.roles.values()).count(role) > 1:
            start = ref.rss_kb[pid] / 1024
            peak = max(s.rss_kb.get(pid, 0) for s in last) / 1024
            out[f"{role} {pid}"] = (start, peak, peak / start - 1 if start else float("nan"))
    sizes = [s.extra["checkpoint_bytes"] for s in last if (s.extra or {}).get("checkpoint_bytes")]
    if ref.extra.get("checkpoint_bytes") and sizes:
        start = ref.extra["checkpoint_bytes"] / 2**20
        out["checkpoint file"] = (start, max(sizes) / 2**20, max(sizes) / 2**20 / start - 1)
    return out


def checkpoint_summary(out_dir):
    """{'bytes', 'windows', 'largest_window_bytes', 'largest_window', 'ledger_bytes'} of the
    checkpoint at the end (best effort: only 'bytes' when its layout is not the known one)."""
    path = checkpoint_path(out_dir)
    if not path.exists():
        return {}
    summary = {"bytes": path.stat().st_size}
    try:
        with path.open("rb") as f:
            _, windows = pickle.load(f)
        sizes = {key: len(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
                 for key, entry in windows.items()}
        summary["windows"] = len(sizes)
        if sizes:
            key = max(sizes, key=sizes.get)
            summary["largest_window_bytes"], summary["largest_window"] = sizes[key], key
        ledger = getattr(windows, "ledger", None)
        if ledger is not None:
            summary["ledger_bytes"] = len(pickle.dumps(ledger, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # noqa: BLE001 - the layout is the aggregation's, and may change
        summary["error"] = f"{type(exc).__name__}: {exc}"
    return summary


def measure(count, bootstrap, work_dir, flags=(), timeout_s=7200):
    """Publish, run, sample; returns {'run', 'publish_s', 'words', 'growth', 'checkpoint'}."""
    arts = cycled(count)
    base = {a["id"].split("~c")[0]: a for a in arts}  # a cycle's texts are the first's
    per_id = dict(zip(base, (words([t]) for t in texts(base.values()))))
    n_words = sum(per_id[a["id"].split("~c")[0]] for a in arts)
    started = time.monotonic()
    topic = publish_topic(arts, bootstrap, prefix="p4")
    publish_s = time.monotonic() - started
    del arts
    out = pathlib.Path(work_dir) / "p4-out"
    try:
        run = run_pipeline(topic, bootstrap, str(out), pathlib.Path(work_dir) / "p4.log", count,
                           flags, bounded=False, timeout_s=timeout_s)
    finally:
        delete_topics(bootstrap, [topic])
    return {"run": run, "publish_s": publish_s, "words": n_words, "growth": growth(run),
            "checkpoint": checkpoint_summary(out)}
