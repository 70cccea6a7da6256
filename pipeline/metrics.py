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

With SDK workers in processes of their own (``--environment_type=EXTERNAL``,
a worker pool; Flink's shape), the counts are made in the workers. There
``ReportMetricsToBeam`` (applied after the sinks) reports what the worker's
registry counted since its last report as Beam metrics (counters by delta,
gauges by value, floats as integer thousandths, labels in the metric name);
the runner sums them over workers and steps, and in the launcher
``BeamJobMetrics``, a prometheus-client collector, asks the job service for
them at each scrape and serves them under the same names and labels, so the
shipped dashboard and alert rules read them unchanged.
"""
import importlib.metadata
import json
import logging
import time
from typing import NamedTuple, Tuple

import apache_beam as beam
from prometheus_client import CollectorRegistry, Info, REGISTRY, start_http_server
from prometheus_client.core import Metric

__all__ = ["serve", "set_identity", "identity", "sample_value", "EXPORTED_METRICS",
           "ExportedMetric", "series_names", "OWNER_MODULES", "ReportMetricsToBeam",
           "BeamJobMetrics", "job_registry"]

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
    # Surges (pipeline/surges.py); subject: a tracked entity id or "A x B x C"
    "entitystream_surge_score": ExportedMetric(
        "gauge", ("subject",), "pipeline.surges",
        "Surge score of the latest closed tumbling window, per tracked entity and tuple."),
    "entitystream_surges_total": ExportedMetric(
        "counter", ("subject",), "pipeline.surges",
        "Closed tumbling windows in which a tracked entity or tuple surged."),
    # The latest closed tumbling window of each tracked subject (the dashboard's tracked rows)
    "entitystream_tracked_window_articles": ExportedMetric(
        "gauge", ("subject",), "pipeline.surges", "Articles holding the tracked subject."),
    "entitystream_tracked_window_stories": ExportedMetric(
        "gauge", ("subject",), "pipeline.surges", "Distinct stories among those articles."),
    "entitystream_tracked_window_outlets": ExportedMetric(
        "gauge", ("subject",), "pipeline.surges", "Distinct outlets among those articles."),
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


def serve(port: int, host: str = "127.0.0.1", registry=REGISTRY):
    """Start the /metrics endpoint; return the (server, thread) pair."""
    try:
        return start_http_server(port, addr=host, registry=registry)
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


# --- SDK workers outside the launcher: registry -> Beam metrics -> /metrics ---

_NAMESPACE = "entitystream"
_MILLI = 1000  # floats travel as integer thousandths


def _key(sample_name, labels):
    return f"{sample_name}|{json.dumps(sorted(labels.items()))}"


def _unkey(key):
    name, _, labels = key.partition("|")
    return name, tuple(tuple(kv) for kv in json.loads(labels or "[]"))


class _RegistryReporter:
    """What this process's registry counted since the last report, as Beam metrics."""

    def __init__(self):
        self._sent = {}  # key -> thousandths already reported (counters)
        self._exported = series_names()

    def report(self):
        from apache_beam.metrics import Metrics
        for family in REGISTRY.collect():
            for sample in family.samples:
                if sample.name not in self._exported or family.type == "info":
                    continue
                key, value = _key(sample.name, sample.labels), int(round(sample.value * _MILLI))
                if family.type == "gauge":
                    Metrics.gauge(_NAMESPACE, key).set(value)
                elif value != self._sent.get(key, 0):
                    Metrics.counter(_NAMESPACE, key).inc(value - self._sent.get(key, 0))
                    self._sent[key] = value


class _ReportMetricsFn(beam.DoFn):
    def __init__(self, interval_s):
        self._interval_s = interval_s

    def setup(self):
        self._reporter, self._last = _RegistryReporter(), 0.0

    def process(self, _):
        if time.monotonic() - self._last >= self._interval_s:
            self._last = time.monotonic()
            self._reporter.report()

    def finish_bundle(self):
        self._reporter.report()


class ReportMetricsToBeam(beam.PTransform):
    """Anything -> nothing: after each bundle (and at most every
    ``interval_seconds`` within one) report this worker's prometheus-client
    counts as Beam metrics. Apply it after the sinks, in a pipeline whose SDK
    workers do not run in the launcher."""

    def __init__(self, *, interval_seconds=1.0):
        super().__init__()
        self._interval = interval_seconds

    def expand(self, pcoll):
        return pcoll | "Report" >> beam.ParDo(_ReportMetricsFn(self._interval))


class BeamJobMetrics:
    """A prometheus-client collector serving a running job's Beam metrics
    (reported by ``ReportMetricsToBeam``) under the pipeline's own names.

    ``attach(result)`` once the job runs; each scrape asks the job service
    again (a ``PipelineResult.metrics()`` keeps its first answer) and keeps
    the last answer for when the service is gone."""

    def __init__(self):
        self._result, self._last = None, []

    def attach(self, result):
        self._result = result

    def _query(self):
        from apache_beam.portability.api import beam_job_api_pb2
        from apache_beam.runners.portability.portable_runner import PortableMetrics
        result = self._result
        try:
            response = result._job_service.GetJobMetrics(  # noqa: SLF001 - see docstring
                beam_job_api_pb2.GetJobMetricsRequest(job_id=result._job_id))
            self._last = PortableMetrics(response).query()
        except Exception:  # noqa: BLE001 - the job service went away: the last answer
            _LOG.debug("job metrics not available", exc_info=True)
        return self._last

    def values(self):
        """``{(sample name, labels): value}``, summed over steps (gauges: the latest)."""
        if self._result is None:
            return {}
        query, out, stamps = self._query(), {}, {}
        for r in (query or {}).get("counters", []):
            if r.key.metric.namespace == _NAMESPACE:
                k = _unkey(r.key.metric.name)
                out[k] = out.get(k, 0) + (r.committed or r.attempted or 0) / _MILLI
        for r in (query or {}).get("gauges", []):
            g = r.committed or r.attempted
            if r.key.metric.namespace == _NAMESPACE and g is not None:
                k = _unkey(r.key.metric.name)
                if k not in stamps or g.timestamp > stamps[k]:
                    out[k], stamps[k] = g.value / _MILLI, g.timestamp
        return out

    def collect(self):
        families = {}
        for (sample, labels), value in sorted(self.values().items()):
            name, typ = _family_of(sample)
            if name not in families:
                families[name] = Metric(name, EXPORTED_METRICS[_exported_name(name, typ)].help,
                                        typ)
            families[name].add_sample(sample, dict(labels), value)
        return list(families.values())


def _family_of(sample):
    """(family name, type) of an exported sample name."""
    for suffix in ("_bucket", "_count", "_sum"):
        base = sample[:-len(suffix)]
        if sample.endswith(suffix) and EXPORTED_METRICS.get(base, _NONE).type == "histogram":
            return base, "histogram"
    if sample.endswith("_total") and sample in EXPORTED_METRICS:
        return sample[:-len("_total")], "counter"
    return sample, EXPORTED_METRICS[sample].type


def _exported_name(family, typ):
    return family + "_total" if typ == "counter" else family


_NONE = ExportedMetric("", (), "", "")


def job_registry(collector: BeamJobMetrics):
    """A registry for ``serve``: the job's metrics and this pipeline's identity."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    registry.register(IDENTITY)
    return registry
