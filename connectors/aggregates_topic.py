"""PublishAggregates: the aggregates as Avro binary messages on a Kafka topic.

For consumers that read Kafka rather than files. Each record of each pane is
one message:

- value: the record in Avro binary encoding without a container (schemaless),
  written with the kind's schema from ``schemas/``;
- key: ``<kind>/<window start ms>/<entity id or scope:entities>`` (a surge:
  ``surges/<window start ms>/<entities joined by +>``), so a compacted topic
  keeps the latest pane of every row;
- headers: ``entitystream.kind``, ``avro.schema.name`` and
  ``avro.schema.fingerprint`` (the schema's CRC-64-AVRO fingerprint of its
  parsing canonical form, hex, as Avro's single-object encoding uses), so a
  reader picks the schema without a registry.

``decode_message(value, headers)`` reads one back.

``PublishSurges`` puts only the ``surges`` records on a topic of their own
(``--surges-topic``), encoded the same way, with the window's end as the
message's Kafka timestamp. A surge record is emitted once per subject and
window, so each is published once in a run; after a restart, the surges
emitted since the checkpoint before the last one are published again,
with the same key and the same fields but, at most, ``emitted_at``
(at-least-once: a consumer keeps the latest message per key;
docs/stories.md "Surges on a Kafka topic").
"""
import io

import apache_beam as beam
import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from connectors.avro_files import KIND_SCHEMAS, pane_records, schema_of
from connectors.kafka_write import WriteToKafka
from pipeline.surges import SURGES
from schemas import parsed_schema

__all__ = ["PublishAggregates", "PublishSurges", "decode_message", "schema_fingerprint",
           "message_key"]


def schema_fingerprint(schema) -> str:
    return fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")


def message_key(record) -> bytes:
    """``<kind>/<window start ms>/<what>``: an entity id, ``scope:entities`` of
    a co-occurrence, or a surge's ``entities`` joined by ``+``."""
    if record["kind"] == SURGES:
        what = "+".join(record["entities"])
    else:
        what = record.get("entity_id") or f"{record['scope']}:{'+'.join(record['entities'])}"
    return f"{record['kind']}/{record['window_start']}/{what}".encode("utf-8")


def _value(record) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema_of(record["kind"]), record)
    return out.getvalue()


def _headers(record):
    schema = schema_of(record["kind"])
    return [("entitystream.kind", record["kind"].encode()),
            ("avro.schema.name", schema["name"].encode()),
            ("avro.schema.fingerprint", schema_fingerprint(schema).encode())]


def decode_message(value: bytes, headers) -> dict:
    """Decode one message, picking the schema by its fingerprint header."""
    wanted = dict(headers)["avro.schema.fingerprint"].decode()
    for name in set(KIND_SCHEMAS.values()):
        schema = parsed_schema(name)
        if schema_fingerprint(schema) == wanted:
            return fastavro.schemaless_reader(io.BytesIO(value), schema)
    raise ValueError(f"no schema in schemas/ has fingerprint {wanted}")


class PublishAggregates(beam.PTransform):
    """``WindowPane`` -> one Avro-binary message per record on ``topic``.

    ``producer_config``: extra ``KafkaProducer`` settings, e.g. security options
    (``KafkaSecurity.client_config()``; default none)."""

    def __init__(self, *, bootstrap_servers, topic, producer_config=None):
        super().__init__()
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._producer_config = producer_config

    def expand(self, panes):
        return (panes
                | "PaneRecords" >> beam.FlatMap(pane_records)
                | "Produce" >> WriteToKafka(bootstrap_servers=self._bootstrap, topic=self._topic,
                                            key_fn=message_key, value_fn=_value, headers_fn=_headers,
                                            producer_config=self._producer_config))


def _window_end(record) -> int:
    return record["window_end"]


class PublishSurges(beam.PTransform):
    """``WindowPane`` -> each ``surges`` record as one Avro-binary message on
    ``topic`` (the panes of other kinds are left out).

    Key ``surges/<window start ms>/<entities joined by +>``, value and headers
    as ``PublishAggregates``, Kafka timestamp the window's end (epoch ms).
    ``producer_config``: extra ``KafkaProducer`` settings (default none).

    Example::

        agg.panes | 'PublishSurges' >> PublishSurges(
            bootstrap_servers=servers, topic='articles.surges')
    """

    def __init__(self, *, bootstrap_servers, topic, producer_config=None):
        super().__init__()
        if not topic:
            raise ValueError("PublishSurges needs a topic name (--surges-topic)")
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._producer_config = producer_config

    def expand(self, panes):
        return (panes
                | "SurgePanes" >> beam.Filter(lambda pane: pane.kind == SURGES)
                | "PaneRecords" >> beam.FlatMap(pane_records)
                | "Produce" >> WriteToKafka(bootstrap_servers=self._bootstrap, topic=self._topic,
                                            key_fn=message_key, value_fn=_value,
                                            headers_fn=_headers, timestamp_fn=_window_end,
                                            producer_config=self._producer_config))
