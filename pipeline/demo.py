"""``entitystream demo``: the whole path on the embedded defaults.

1. Start the local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set).
2. Publish the five seed articles to a fresh topic, in publication order.
3. Run the streaming pipeline on Prism, serving /metrics.
4. Wait until every seed window has its final (ON_TIME) pane on disk: the
   watermark reaches them once the topic has been quiet for the idle timeout.
5. Stop the pipeline and print the top entities per window, where the files
   are, and what the metrics endpoint counted.

With ``speed`` (``entitystream demo --speed X``) the seeds are published while
the pipeline runs, paced like a live feed (X seconds of publication time per
second), and each pane is printed as its file appears: EARLY panes as an
article arrives, the ON_TIME pane when the next one moves the watermark past
its hour.
"""
import collections
import pathlib
import shutil
import signal
import threading
import time
import uuid

from connectors.avro_files import window_dir
from connectors import pacing
from connectors.replay import ensure_topic, publish, publish_paced, read_articles
from pipeline import inspect_output, metrics, quiet_logs
from pipeline.aggregate import ENTITY_COUNTS
from pipeline.run import cancel, resolve_bootstrap, start, wait
from pipeline.settings import Settings

__all__ = ["run_demo", "expected_windows", "SEEDS"]

SEEDS = pathlib.Path(__file__).resolve().parent.parent / "seeds"
# What the summary shows: each seed's hour, the running totals and the tracked tuple.
DEMO_KINDS = ("entity_counts", "running_entity_counts", "running_cooccurrence")


def expected_windows(articles, window_seconds):
    """The (start_ms, end_ms) of every window the articles fall in."""
    size = window_seconds * 1000
    return sorted({(a["published_at"] // size * size, a["published_at"] // size * size + size)
                   for a in articles})


def _final_pane_written(output_dir, window):
    directory = window_dir(output_dir, ENTITY_COUNTS, *window)
    return any(directory.glob("pane-*-ON_TIME.avro")) or any(directory.glob("pane-*-LATE.avro"))


def _running_totals_current(output_dir):
    """True once the latest running-totals pane holds every article: its
    counts equal the sums over the final panes of the hour windows, which
    split the same articles between them. (The running window never closes,
    so its panes come on the early-firing cadence, or from the flush timer
    after the input stops, which Prism may fire seconds late.)"""
    from connectors.avro_files import read_records
    summed, running, latest = collections.Counter(), {}, -1
    for kind, record in read_records(output_dir):
        if kind == ENTITY_COUNTS and record["is_final"]:
            summed[record["entity_id"]] += record["mentions"]
        elif kind == "running_entity_counts":
            if record["pane_index"] > latest:
                latest, running = record["pane_index"], {}
            if record["pane_index"] == latest:
                running[record["entity_id"]] = record["mentions"]
    return bool(running) and running == dict(summed)


def _paced_plan(articles, speed):
    """(seconds the paced publication takes, longest gap between two sends)."""
    times = [send.at_s for send in pacing.schedule(sorted(articles, key=lambda a: a["published_at"]),
                                                    speed=speed)]
    return times[-1], max((b - a for a, b in zip(times, times[1:])), default=0.0)


def _print_new_panes(output, seen):
    """Print each entity_counts pane file not printed yet (window, index, timing)."""
    for path in sorted(pathlib.Path(output).glob(f"{ENTITY_COUNTS}/*/pane-*.avro")):
        if path not in seen:
            seen.add(path)
            _, index, timing = path.stem.split("-", 2)
            print(f"  pane {index:>2} {timing:<8} {ENTITY_COUNTS} {path.parent.name}", flush=True)


def run_demo(output_dir="out/demo", runner="prism", window_seconds=3600, metrics_port=9477,
             timeout_s=300, keep_running=False, speed=None):
    output = pathlib.Path(output_dir)
    if output.exists():
        shutil.rmtree(output)
    articles = list(read_articles([SEEDS]))
    topic = f"demo-articles-{uuid.uuid4().hex[:8]}"
    idle_timeout_s = 3.0
    if speed is not None:
        duration_s, longest_gap_s = _paced_plan(articles, speed)
        # A partition quiet for the idle timeout has its watermark follow the clock,
        # which is years past the seeds: the timeout must outlast the longest gap
        # between two paced seeds, or the later ones would all be late.
        idle_timeout_s += longest_gap_s
        timeout_s += duration_s
    settings = Settings(topic=topic, output_dir=str(output), runner=runner,
                        window_seconds=window_seconds, metrics_port=metrics_port,
                        group_id=f"demo-{uuid.uuid4().hex[:8]}", early_firing_seconds=2.0,
                        idle_timeout_seconds=idle_timeout_s)
    bootstrap = resolve_bootstrap(settings)
    settings = Settings(**dict(settings.__dict__, bootstrap_servers=bootstrap))
    client_config = settings.kafka_security.client_config()
    print(f"broker: {bootstrap}", flush=True)
    stop = threading.Event()  # stops the paced publisher, or a --keep-running pipeline
    if speed is None:
        sent = publish(articles, bootstrap_servers=bootstrap, topic=topic,
                       client_config=client_config)
        print(f"published {sent} seed articles to topic {topic}", flush=True)
    else:
        ensure_topic(bootstrap, topic, client_config=client_config)
        print(f"publishing {len(articles)} seed articles to topic {topic} at speed {speed:g} "
              f"(over {duration_s:.0f}s), while the pipeline runs", flush=True)
    if metrics_port:
        metrics.serve(metrics_port)
    windows = expected_windows(articles, window_seconds)
    started = time.monotonic()
    result = start(settings)
    if speed is not None:
        threading.Thread(target=publish_paced, args=(articles,), daemon=True,
                         kwargs=dict(bootstrap_servers=bootstrap, topic=topic, speed=speed,
                                     stop=stop, client_config=client_config)).start()
    print(f"pipeline running on {runner}; waiting for the final pane of "
          f"{len(windows)} windows...", flush=True)
    seen = set()
    try:
        while not (all(_final_pane_written(output, w) for w in windows)
                   and _running_totals_current(output)):
            if speed is not None:
                _print_new_panes(output, seen)
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"not every seed window was emitted within {timeout_s}s; "
                                   f"see the files under {output}")
            if str(result.state).endswith(("FAILED", "CANCELLED", "DONE")):
                raise RuntimeError(f"the pipeline stopped early: {result.state}")
            time.sleep(0.5)
        if speed is not None:
            _print_new_panes(output, seen)
        elapsed = time.monotonic() - started
        print(f"all {len(windows)} seed windows and the running totals emitted in "
              f"{elapsed:.1f}s\n", flush=True)
        print(inspect_output.table(inspect_output.load(output), kinds=DEMO_KINDS), flush=True)
        print(f"\nAvro files: {output.resolve()}/entity_counts/<window>/pane-*.avro "
              f"(entitystream inspect {output})")
        if metrics_port:
            consumed = sum(metrics.sample_value("entitystream_articles_consumed_total",
                                                {"topic": topic, "partition": str(p)})
                           for p in range(16))
            print(f"metrics: http://127.0.0.1:{metrics_port}/metrics "
                  f"(articles consumed: {consumed:.0f}, entity mentions: "
                  f"{_label_total('entitystream_entities_extracted_total'):.0f}, panes: "
                  f"{_label_total('entitystream_panes_emitted_total'):.0f})", flush=True)
        if keep_running:
            print("pipeline keeps running (Ctrl-C stops it)", flush=True)
            signal.signal(signal.SIGINT, lambda *_: (quiet_logs.stopping(), stop.set()))
            wait(result, stop)
    finally:
        stop.set()
        cancel(result)
    return 0


def _label_total(name):
    from prometheus_client import REGISTRY
    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == name)
