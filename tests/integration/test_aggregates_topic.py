"""--aggregates-topic: every record written to the Avro files is also on the
topic as schemaless Avro, with the schema's fingerprint in a header."""
import pathlib

import pytest
from kafka import KafkaConsumer

from connectors.aggregates_topic import decode_message, schema_fingerprint
from connectors.replay import publish, read_articles
from pipeline import inspect_output
from pipeline.run import start
from pipeline.settings import Settings
from schemas import parsed_schema

pytestmark = [pytest.mark.broker, pytest.mark.spacy]
SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"


def _key(r):
    what = r.get("entity_id") or (r["scope"], tuple(r["entities"]), r["tracked"])
    return (r["kind"], str(r["window_start"]), r["pane_index"], what)


def test_aggregates_topic_carries_the_same_records(bootstrap, topic, tmp_path):
    publish(list(read_articles([SEEDS])), bootstrap_servers=bootstrap, topic=topic)
    out_topic = f"{topic}.aggregates"
    settings = Settings(topic=topic, output_dir=str(tmp_path), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        sliding_window_seconds=0, aggregates_topic=out_topic)
    start(settings).wait_until_finish()
    files = [r for r in inspect_output.load(tmp_path) if "pane_index" in r]

    consumer = KafkaConsumer(out_topic, bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    messages = list(consumer)
    consumer.close()
    assert len(messages) == len(files) > 0
    fingerprints = {schema_fingerprint(parsed_schema(n)) for n in ("entity_count", "cooccurrence")}
    decoded = []
    for m in messages:
        headers = dict(m.headers)
        assert headers["avro.schema.fingerprint"].decode() in fingerprints
        record = decode_message(m.value, m.headers)
        assert headers["entitystream.kind"].decode() == record["kind"]
        decoded.append(dict(record, window_start=inspect_output._iso(record["window_start"])))
    assert sorted(map(_key, decoded)) == sorted(map(_key, files))
    by_key = {_key(r): r for r in files}
    for r in decoded:
        counts = ("mentions", "articles") if "entity_id" in r else ("count", "articles")
        assert tuple(r[c] for c in counts) == tuple(by_key[_key(r)][c] for c in counts)
