"""The Prometheus endpoint and the pipeline's identity metric.

Each stage defines its own metrics at module level (prometheus-client), in
base units with ``_total``/``_seconds``/``_bytes`` names and few labels:

- ``entitystream_articles_consumed_total{topic,partition}``,
  ``entitystream_consumed_bytes_total{topic,partition}``,
  ``entitystream_dead_letters_total{reason}`` (pipeline/decode.py)
- ``entitystream_entities_extracted_total{label}``,
  ``entitystream_ner_batch_duration_seconds`` (pipeline/entities.py)
- ``entitystream_panes_emitted_total{kind,timing}`` (pipeline/aggregate.py)
- ``entitystream_sink_write_duration_seconds{kind}``,
  ``entitystream_sink_write_failures_total{kind}``,
  ``entitystream_avro_written_bytes_total{kind}`` (connectors/avro_files.py)

They count in the process that runs the DoFns. Prism and the DirectRunner run
them in the launching process (Prism's LOOPBACK environment), where
``serve`` starts the HTTP endpoint, so ``/metrics`` shows the job's counts.
"""
import logging

from prometheus_client import Info, REGISTRY, start_http_server

__all__ = ["serve", "set_identity", "sample_value"]

_LOG = logging.getLogger(__name__)
IDENTITY = Info("entitystream_build", "Package, runner and model of this pipeline.")


def serve(port: int, host: str = "127.0.0.1"):
    """Start the /metrics endpoint; return the (server, thread) pair."""
    try:
        return start_http_server(port, addr=host)
    except OSError as exc:
        msg = (f"cannot serve metrics on {host}:{port}: {exc}; choose another "
               f"--metrics-port or 0 to disable")
        raise RuntimeError(msg) from exc


def set_identity(**labels):
    IDENTITY.info({k: str(v) for k, v in labels.items()})


def sample_value(name: str, labels=None) -> float:
    """Current value of one sample in this process's registry (0 if absent)."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0
