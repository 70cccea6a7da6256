"""The Prometheus endpoint, the pipeline's identity metric, and the list of
every metric the pipeline exports.

Each stage defines its own metrics at module level (prometheus-client), in
base units with ``_total``/``_seconds``/``_bytes`` names and few labels.
``EXPORTED_METRICS`` below lists them all, with their type, labels and the
module that owns them: the shipped dashboard and alert rules
(``deploy/grafana``, ``deploy/prometheus``) may name only these, and a unit
test checks the list against what the modules register. A new metric is
added to its module *and* to this list.

They count in the process that runs the DoFns. Prism and the DirectRunner run
them in the launching process (Prism's LOOPBACK environment), where
``serve`` starts the HTTP endpoint, so ``/metrics`` shows the job's counts.
"""
import importlib.metadata
import logging
from typing import NamedTuple, Tuple

from prometheus_client import Info, REGISTRY, start_http_server

__all__ = ["serve", "set_identity", "identity", "sample_value", "EXPORTED_METRICS",
           "ExportedMetric", "series_names", "OWNER_MODULES"]

_LOG = logging.getLogger(__name__)
IDENTITY = Info("entitystream_build",
                "Package, runner, Beam, spaCy and spaCy model versions of this pipeline.")


class ExportedMetric(NamedTuple):
    type: str  # counter | gauge | histogram | info
    labels: Tuple[str, ...]
    module: str  # the module that defines it
    help: str


_TP = ("topic", "partition")

#: Every metric the pipeline exports, by the name PromQL uses (counters with
#: ``_total``; histograms by their base name, queried as ``_bucket``/``_sum``/
#: ``_count``; the info metric as ``entitystream_build_info``).
EXPORTED_METRICS = {
    # Input
    "entitystream_articles_consumed_total": ExportedMetric(
        "counter", _TP, "pipeline.decode", "Messages read from Kafka."),
    "entitystream_consumed_bytes_total": ExportedMetric(
        "counter", _TP, "pipeline.decode", "Bytes of message values read."),
    "entitystream_dead_letters_total": ExportedMetric(
        "counter", ("reason",), "pipeline.decode", "Messages sent to the dead-letter topic."),
    "entitystream_decode_fallbacks_total": ExportedMetric(
        "counter", ("encoding",), "pipeline.decode", "Messages decoded with a fallback encoding."),
    "entitystream_duplicates_suppressed_total": ExportedMetric(
        "counter", (), "pipeline.aggregate", "Duplicate articles not counted again."),
    # The books: every message read ends in exactly one outcome.
    "entitystream_messages_settled_total": ExportedMetric(
        "counter", ("outcome",), "pipeline.aggregate",
        "Messages read, by outcome: aggregated, late, duplicate, dead_letter, replayed."),
    "entitystream_articles_aggregated_total": ExportedMetric(
        "counter", ("language",), "pipeline.aggregate",
        "Articles counted in their windows, by language."),
    # Progress
    "entitystream_consumer_lag_records": ExportedMetric(
        "gauge", _TP, "connectors.kafka_progress", "High watermark minus next offset."),
    "entitystream_consumer_lag_seconds": ExportedMetric(
        "gauge", _TP, "connectors.kafka_progress",
        "Newest record's timestamp minus the last read record's."),
    "entitystream_watermark_lag_seconds": ExportedMetric(
        "gauge", _TP, "connectors.kafka_progress", "Wall clock minus the partition watermark."),
    "entitystream_time_since_last_article_seconds": ExportedMetric(
        "gauge", (), "connectors.kafka_progress", "Seconds since a message was last read."),
    # Work
    "entitystream_ner_batch_duration_seconds": ExportedMetric(
        "histogram", (), "pipeline.entities", "Time in nlp.pipe per batch."),
    "entitystream_ner_batch_size": ExportedMetric(
        "histogram", (), "pipeline.entities", "Articles per nlp.pipe batch."),
    "entitystream_entities_extracted_total": ExportedMetric(
        "counter", ("label",), "pipeline.entities", "Entity mentions extracted, by label."),
    "entitystream_tracked_mentions_total": ExportedMetric(
        "counter", ("entity",), "pipeline.entities", "Mentions of tracked entities, by id."),
    "entitystream_tracked_tuple_articles_total": ExportedMetric(
        "counter", ("tuple",), "pipeline.aggregate", "Articles holding a whole tracked tuple."),
    # Output
    "entitystream_panes_emitted_total": ExportedMetric(
        "counter", ("kind", "timing"), "pipeline.aggregate", "Window panes emitted."),
    "entitystream_late_articles_total": ExportedMetric(
        "counter", (), "pipeline.aggregate", "Articles later than the allowed lateness."),
    "entitystream_sink_write_duration_seconds": ExportedMetric(
        "histogram", ("kind",), "connectors.avro_files", "Time to write one pane file."),
    "entitystream_sink_write_failures_total": ExportedMetric(
        "counter", ("kind",), "connectors.avro_files", "Pane files that could not be written."),
    "entitystream_avro_written_bytes_total": ExportedMetric(
        "counter", ("kind",), "connectors.avro_files", "Bytes of Avro files written."),
    # Checkpoints and offsets (docs/reliability.md)
    "entitystream_checkpoint_duration_seconds": ExportedMetric(
        "histogram", (), "connectors.checkpoint_files", "Time to write one checkpoint."),
    "entitystream_checkpoint_written_bytes_total": ExportedMetric(
        "counter", (), "connectors.checkpoint_files", "Bytes of checkpoints written."),
    "entitystream_checkpoint_failures_total": ExportedMetric(
        "counter", (), "pipeline.aggregate", "Checkpoints that could not be written."),
    "entitystream_offset_commit_failures_total": ExportedMetric(
        "counter", (), "connectors.kafka_offsets", "Offset commits that failed (retried)."),
    # Broker outages (docs/reliability.md, R3); client: reader, writer, committer
    "entitystream_kafka_connected": ExportedMetric(
        "gauge", ("client",), "connectors.kafka_health",
        "1 while the clients of this kind reach Kafka, 0 while one cannot (retrying)."),
    "entitystream_kafka_disconnects_total": ExportedMetric(
        "counter", ("client",), "connectors.kafka_health",
        "Times the clients of this kind lost the Kafka brokers."),
    "entitystream_kafka_unreachable_seconds_total": ExportedMetric(
        "counter", ("client",), "connectors.kafka_health",
        "Seconds the clients of this kind could not reach Kafka (added when back)."),
    # `entitystream feeds` (its own process, --metrics-port 9478; connectors/feeds.py)
    "entitystream_feed_fetches_total": ExportedMetric(
        "counter", ("feed", "outcome"), "connectors.feeds",
        "Feed fetches, by feed URL and outcome (connectors.feed_fetch.OUTCOMES)."),
    "entitystream_feed_entries_published_total": ExportedMetric(
        "counter", ("feed",), "connectors.feeds", "Feed entries published as articles."),
    "entitystream_feed_last_success_timestamp_seconds": ExportedMetric(
        "gauge", ("feed",), "connectors.feeds",
        "When a fetch of the feed last succeeded; the start time until one does."),
    # Identity
    "entitystream_build_info": ExportedMetric(
        "info", ("version", "runner", "beam", "spacy", "spacy_model", "spacy_model_version"),
        "pipeline.metrics", "Versions of this pipeline."),
}

#: The modules that define the metrics above: importing them registers them all.
OWNER_MODULES = tuple(sorted({m.module for m in EXPORTED_METRICS.values()}))


def series_names():
    """Every sample name PromQL can select from ``EXPORTED_METRICS``."""
    names = set()
    for name, metric in EXPORTED_METRICS.items():
        if metric.type == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(name)
    return names


def serve(port: int, host: str = "127.0.0.1"):
    """Start the /metrics endpoint; return the (server, thread) pair."""
    try:
        return start_http_server(port, addr=host)
    except OSError as exc:
        msg = (f"cannot serve metrics on {host}:{port}: {exc}; choose another "
               f"--metrics-port or 0 to disable")
        raise RuntimeError(msg) from exc


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return "unknown"  # e.g. a model loaded from a directory


def identity(runner: str, spacy_model: str) -> dict:
    """The labels of ``entitystream_build_info`` for this process."""
    from apache_beam.version import __version__ as beam_version
    from pipeline import __version__
    return {"version": __version__, "runner": runner, "beam": beam_version,
            "spacy": _package_version("spacy"), "spacy_model": spacy_model,
            "spacy_model_version": _package_version(spacy_model)}


def set_identity(**labels):
    IDENTITY.info({k: str(v) for k, v in labels.items()})


def sample_value(name: str, labels=None) -> float:
    """Current value of one sample in this process's registry (0 if absent)."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0
