"""Wire the stages into one pipeline and run it.

``build(p, settings, bootstrap)`` applies, in order::

    ReadArticles -> DecodeArticles -> NormaliseText -> SignStories -> ExtractEntities
      -> AggregateEntities -> WriteAggregates (Avro files per kind, window, pane)
                           -> PublishAggregates (optional: Avro on --aggregates-topic)
                           -> PublishSurges (optional: the surges records on --surges-topic)
      AggregateEntities.late_articles -> WriteLateArticles
    DecodeArticles.dead_letters -> PublishDeadLetters (topic <topic>.dlq)

``run(argv)`` parses the application's flags, passes the rest to Beam's
``PipelineOptions``, and runs on the chosen runner:

- ``prism``: Beam's Prism runner (streaming unless ``--bounded``), the binary
  built by ``deploy.prism``; SDK workers run in this process (LOOPBACK), so
  the Prometheus endpoint served here sees every DoFn's metrics. Beam's own
  ``--environment_type=EXTERNAL --environment_config=HOST:PORT`` (passed
  through) runs them in a worker pool of their own instead
  (``python -m apache_beam.runners.worker.worker_pool_main
  --service_port=PORT``, the project's virtualenv first on PATH); the
  aggregation then keeps its state in the runner's state
  (``workers_in_process``).
- ``direct``: Beam's FnApiRunner in this process, for ``--bounded`` runs.
"""
import argparse
import contextlib
import io
import logging
import signal
import threading
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from connectors.aggregates_topic import PublishAggregates, PublishSurges
from connectors.avro_files import WriteLateArticles, WriteWindowPanes
from connectors.checkpoint_files import CheckpointFiles
from connectors.kafka_offsets import CommitOffsets
from connectors.kafka_read import ReadFromKafka
from connectors.kafka_security import check_connection
from connectors.kafka_write import WriteToKafka
from connectors.replay import ensure_topic
from pipeline import metrics, quiet_logs, status
from pipeline.aggregate import AggregateEntities
from pipeline.decode import DecodeArticles
from pipeline.entities import ExtractEntities
from pipeline.normalise import NormaliseText
from pipeline.settings import Settings, add_arguments, from_args
from pipeline.gazetteer import load_tracked_entities
from pipeline.stories import SignStories

__all__ = ["build", "run", "start", "wait", "cancel", "resolve_bootstrap", "external_workers"]

_LOG = logging.getLogger(__name__)


def build(p, settings: Settings, bootstrap_servers: str, workers_in_process: bool = True):
    """Apply the whole pipeline to ``p``; return the PCollection of written file paths.

    ``workers_in_process``: the SDK workers run in this process (LOOPBACK, the
    FnApiRunner), so the aggregation may keep its state here (PRISM-9)."""
    checkpointed = settings.checkpoint_interval_seconds > 0 and bool(settings.group_id)
    security = settings.kafka_security.client_config()  # TLS/SASL for every Kafka client
    records = p | "ReadArticles" >> ReadFromKafka(
        bootstrap_servers=bootstrap_servers, topic=settings.topic,
        group_id=settings.group_id, bounded=settings.bounded,
        start_from=settings.start_from, idle_timeout_seconds=settings.idle_timeout_seconds,
        max_records_per_call=settings.max_records_per_call, consumer_config=security,
        # With checkpoints, offsets are committed once counted durably (below).
        commit_offsets=not checkpointed)
    decoded = records | "DecodeArticles" >> DecodeArticles(
        max_message_bytes=settings.max_message_bytes,
        max_future_seconds=settings.max_future_seconds)
    normalised = decoded.articles | "NormaliseText" >> NormaliseText()
    if settings.story_threshold:
        normalised = normalised | "SignStories" >> SignStories()
    found = (normalised
             | "ExtractEntities" >> ExtractEntities(model=settings.spacy_model,
                                                    batch_size=settings.batch_size,
                                                    excluded_labels=settings.excluded_labels,
                                                    tracked_entities=settings.tracked_entities,
                                                    rules_only=settings.rules_only,
                                                    processes=settings.ner_processes))
    published_dead_letters = (
        (decoded.dead_letters, found.dead_letters)
        | "AllDeadLetters" >> beam.Flatten()
        | "PublishDeadLetters" >> WriteToKafka(
            bootstrap_servers=bootstrap_servers, topic=settings.dlq_topic,
            key_fn=lambda d: d["key"], producer_config=security))
    aggregated = ({"articles": found.found, "dead_letters": published_dead_letters}
                  | "AggregateEntities" >> AggregateEntities(
                      window_seconds=settings.window_seconds,
                      sliding_window_seconds=settings.sliding_window_seconds,
                      sliding_period_seconds=settings.sliding_period_seconds,
                      early_firing_seconds=None if settings.bounded else settings.early_firing_seconds,
                      allowed_lateness_seconds=settings.allowed_lateness_seconds,
                      max_entities_per_article=settings.max_entities_per_article,
                      top_k_pairs=settings.top_k_pairs,
                      tracked_tuples=settings.tracked_tuples,
                      story_threshold=settings.story_threshold,
                      story_horizon_seconds=settings.story_horizon_seconds,
                      story_index_size=settings.story_index_size,
                      tracked_entity_ids=tuple(load_tracked_entities(
                          settings.tracked_entities).types),
                      by_source=settings.by_source, surge_threshold=settings.surge_threshold,
                      surge_baseline_windows=settings.surge_baseline_windows,
                      surge_top_pairs=settings.surge_top_pairs,
                      checkpoint=CheckpointFiles(settings.output_dir) if checkpointed else None,
                      checkpoint_interval_seconds=settings.checkpoint_interval_seconds or 5.0,
                      on_checkpoint=CommitOffsets(
                          bootstrap_servers=bootstrap_servers, group_id=settings.group_id,
                          consumer_config=security) if checkpointed else None,
                      # Both runners here fail the job on a failed bundle; with
                      # the SDK worker in this process the state may stay here.
                      state_in_process=workers_in_process))
    late = aggregated.late_articles | "WriteLateArticles" >> WriteLateArticles(
        output_dir=settings.output_dir)
    if settings.aggregates_topic:
        aggregated.panes | "PublishAggregates" >> PublishAggregates(
            bootstrap_servers=bootstrap_servers, topic=settings.aggregates_topic,
            producer_config=security)
    if settings.surges_topic:
        aggregated.panes | "PublishSurges" >> PublishSurges(
            bootstrap_servers=bootstrap_servers, topic=settings.surges_topic,
            producer_config=security)
    written = aggregated.panes | "WriteAggregates" >> WriteWindowPanes(
        output_dir=settings.output_dir)
    if not workers_in_process:  # the workers' counts reach /metrics as Beam metrics
        (written, late) | "AllWritten" >> beam.Flatten() | "ReportMetrics" >> (
            metrics.ReportMetricsToBeam())
    return written


def resolve_bootstrap(settings: Settings) -> str:
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    from deploy import broker
    return broker.bootstrap_servers()


def external_workers(beam_args) -> bool:
    """Whether Beam's flags put the SDK workers outside this process."""
    options = PipelineOptions(list(beam_args)).get_all_options()
    return (options.get("environment_type") or "LOOPBACK").upper() not in ("LOOPBACK",)


def _runner_and_options(settings: Settings, beam_args):
    options = PipelineOptions(beam_args)
    if settings.runner == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return FnApiRunner(), options
    from apache_beam.runners.portability.prism_runner import PrismRunner
    from deploy.prism import ensure_prism
    quiet = [] if any(a.startswith("--prism_log_level") for a in beam_args) else [
        "--prism_log_level=error"]  # unless asked for, e.g. --prism_log_level=debug
    loopback = [] if external_workers(beam_args) else ["--environment_type=LOOPBACK"]
    options = PipelineOptions(beam_args + [f"--prism_location={ensure_prism()}"] + loopback
                              + quiet)
    options.view_as(StandardOptions).streaming = not settings.bounded
    return PrismRunner(), options


def start(settings: Settings, beam_args=()):
    """Start the pipeline; return its ``PipelineResult`` (Prism: not blocking).

    Raises ``KafkaPreflightError`` within seconds, before anything is built, when the
    brokers cannot be reached or reject the credentials (``connectors/kafka_security.py``).
    """
    quiet_logs.install()
    bootstrap = resolve_bootstrap(settings)
    check_connection(bootstrap, settings.kafka_security)
    # The dead-letter (and surges) topics exist from the start: operators can
    # subscribe to them, and the first message is not held up by auto-creation.
    for topic in filter(None, (settings.dlq_topic, settings.surges_topic)):
        ensure_topic(bootstrap, topic, client_config=settings.kafka_security.client_config())
    runner, options = _runner_and_options(settings, list(beam_args))
    metrics.set_identity(**metrics.identity(settings.runner, settings.spacy_model))
    p = beam.Pipeline(runner=runner, options=options)
    build(p, settings, bootstrap, workers_in_process=not external_workers(beam_args))
    _LOG.info("running on %s: topic %s at %s -> %s", settings.runner, settings.topic,
              bootstrap, settings.output_dir)
    result = p.run()
    # The graph holds the aggregation's StateStore, whose in-process copy must
    # outlive DoFns the SDK tears down when idle (docs/runner-notes.md SDK-2).
    result.entitystream_pipeline = p
    quiet_logs.stop_on_sigint()
    return result


def cancel(result):
    """Cancel a running pipeline quietly.

    With LOOPBACK workers in this process, cancelling makes the SDK worker log
    tracebacks for the bundles it was running; they are expected, not errors.
    """
    quiet_logs.stopping()
    for name in ("apache_beam.runners.worker", "PrismRunner",
                 "apache_beam.utils.subprocess_server",
                 "apache_beam.runners.portability"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)  # children too
        logging.getLogger(name).disabled = True
    from apache_beam.runners.runner import PipelineState
    # The worker also prints those tracebacks straight to stderr: hold stderr
    # until the job has stopped.
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            result.cancel()
            deadline = time.monotonic() + 10
            while not PipelineState.is_terminal(result.state) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
        except Exception:  # already finished or the job service is gone
            _LOG.debug("cancel failed", exc_info=True)


def wait(result, stop_event=None, poll_s=0.5):
    """Wait for ``result`` to finish, or cancel it when ``stop_event`` is set.

    Ctrl-C reaches the Prism job server too (same process group), which may
    then be gone before the cancel: a stop requested by the user is a clean
    stop either way.
    """
    from apache_beam.runners.runner import PipelineState
    while True:
        if stop_event is not None and stop_event.is_set():
            cancel(result)
            return PipelineState.CANCELLED
        try:
            state = result.state
        except Exception:  # the job service went away (e.g. killed by Ctrl-C)
            if stop_event is not None and stop_event.wait(2):
                return PipelineState.CANCELLED
            raise
        if PipelineState.is_terminal(state):
            return state
        time.sleep(poll_s)


def run(argv=None):
    """``entitystream run``: parse flags, run until done (bounded) or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="entitystream run",
                                     description="Run the entity-tracking pipeline.")
    add_arguments(parser)
    parser.add_argument("--status-interval-seconds", type=float, default=10.0,
                        help="print a status line (articles/s, lag, watermark) this often; "
                             "0 for none (default %(default)s)")
    args, beam_args = parser.parse_known_args(argv)
    settings = from_args(args)
    job_metrics = metrics.BeamJobMetrics() if external_workers(beam_args) else None
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host, registry=(
            metrics.REGISTRY if job_metrics is None else metrics.job_registry(job_metrics)))
        print(f"metrics: http://{settings.metrics_host}:{settings.metrics_port}/metrics", flush=True)
    stop = threading.Event()
    # Ctrl-C reaches Prism too: its workers' lost streams are then expected.
    previous = signal.signal(signal.SIGINT, lambda *_: (quiet_logs.stopping(), stop.set()))
    signal.signal(signal.SIGTERM, lambda *_: (quiet_logs.stopping(), stop.set()))
    reporter = None
    try:
        if args.status_interval_seconds > 0:  # before start(): the direct runner blocks in it
            reporter = status.StatusReporter(args.status_interval_seconds).start()
        result = start(settings, beam_args)
        if job_metrics is not None:
            job_metrics.attach(result)
        state = wait(result, stop) if settings.runner == "prism" else result.wait_until_finish()
    finally:
        signal.signal(signal.SIGINT, previous)
        if reporter is not None:
            reporter.stop()
    print(f"pipeline {state}; aggregates in {settings.output_dir}", flush=True)
    return 0 if str(state).rsplit(".", 1)[-1] in ("DONE", "CANCELLED") else 1
