"""Bytes the aggregation encodes into (and decodes from) the runner's state, per bundle.

    .venv/bin/python benchmarks/state_bytes.py [--articles 1000]

Publishes the first ``--articles`` Reuters-21578 articles (the slice of
tests/integration/test_external_workers.py: rules-only, phrase-only tracked
entities, 1 h tumbling and 6 h sliding windows every hour, wide pair caps) to
a fresh topic on the shared broker, and runs the bounded pipeline on Prism
with LOOPBACK workers but the aggregation's state in the runner
(``workers_in_process=False``: the path EXTERNAL workers take), so that the
SDK's state commits can be counted in this process. Prints, per state cell
of the pane DoFn, how many bundles wrote it and the bytes encoded, and how
many reads went to the runner.
"""
import argparse
import collections
import pathlib
import sys
import tempfile
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _parts(value):
    """Pickled bytes of each part of a state cell's value, when it has parts."""
    import pickle
    value = getattr(value, "value", value)  # a cell's _Weighed wrapper
    if hasattr(value, "book") and isinstance(value.book, dict):  # the header cell
        out = {f"header {k}": len(pickle.dumps(getattr(value, k)))
               for k in ("ledger", "timers", "stories", "surges")}
        out["header book"] = len(pickle.dumps(value.book))
        return out
    if hasattr(value, "book"):  # the whole AggregationState (one cell)
        snap = value.book.snapshot()
        out = {f"{k}": len(pickle.dumps(getattr(value, k))) for k in ("ledger", "pending", "timers")}
        for name, (_, buckets, windows) in snap["families"].items():
            out[f"{name} buckets"] = len(pickle.dumps(buckets))
            out[f"{name} windows"] = len(pickle.dumps(windows))
        return out
    return {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    args = parser.parse_args(argv)

    from apache_beam.runners.worker import bundle_processor
    from connectors.replay import publish, read_articles
    from deploy import broker
    from pipeline import run as run_module
    from pipeline.settings import Settings

    written = collections.defaultdict(lambda: [0, 0])  # cell -> [commits, bytes]
    reads = collections.Counter()
    parts = collections.Counter()  # part of the state -> bytes over all writes
    commit, backed_iter = (bundle_processor.SynchronousBagRuntimeState.commit,
                           bundle_processor._StateBackedIterable.__iter__)

    def counting_commit(self):
        cell = self._state_key.bag_user_state.user_state_id
        if cell and self._added_elements:
            impl = self._value_coder.get_impl()
            written[cell][0] += 1
            written[cell][1] += sum(len(impl.encode_nested(v)) for v in self._added_elements)
            for v in self._added_elements:
                for part, size in _parts(v).items():
                    parts[part] += size
        return commit(self)

    def counting_iter(self):
        cell = self._state_key.bag_user_state.user_state_id
        if cell:
            reads[cell] += 1
        return backed_iter(self)

    bundle_processor.SynchronousBagRuntimeState.commit = counting_commit
    bundle_processor._StateBackedIterable.__iter__ = counting_iter
    build = run_module.build
    run_module.build = lambda p, s, b, workers_in_process=True: build(p, s, b, False)

    articles = []
    for a in read_articles([ROOT.parent / "shared" / "corpora" / "reuters21578"]):
        articles.append(a)
        if len(articles) == args.articles:
            break
    bootstrap, topic = broker.bootstrap_servers(), f"state-bytes-{uuid.uuid4().hex[:8]}"
    publish(articles, bootstrap_servers=bootstrap, topic=topic)
    with tempfile.TemporaryDirectory() as out:
        settings = Settings(
            topic=topic, output_dir=out, bootstrap_servers=bootstrap, runner="prism",
            bounded=True, group_id=f"g-{topic}", metrics_port=0,
            tracked_tuples=(("BRIDGE", "NORTH_KOREA", "RUSSIA"),), rules_only=True,
            tracked_entities=str(ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"),
            max_entities_per_article=10_000, top_k_pairs=10_000_000, window_seconds=3600,
            sliding_window_seconds=6 * 3600, sliding_period_seconds=3600)
        state = run_module.start(settings, []).wait_until_finish()
    assert str(state).endswith("DONE"), state
    bundles = max((c for c, _ in written.values()), default=0)
    total = sum(b for _, b in written.values())
    print(f"{len(articles)} articles, {bundles} bundles writing the pane DoFn's state")
    for cell, (commits, size) in sorted(written.items()):
        print(f"  {cell:24s} written in {commits:5d} bundles, {size:12,d} bytes "
              f"({size / max(commits, 1):10,.0f} per write), runner reads {reads[cell]}")
    print(f"  total {total:,d} bytes encoded, {total / max(bundles, 1):,.0f} per bundle")
    for part, size in sorted(parts.items()):
        print(f"    {part:30s} {size / max(bundles, 1):10,.0f} bytes per bundle")


if __name__ == "__main__":
    main()
