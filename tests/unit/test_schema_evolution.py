"""Schema evolution: every earlier version of a schema (schemas/history/) must
stay readable with the current one, and an incompatible change must fail."""
import copy
import io

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from schemas import SCHEMA_DIR, load_schema

HISTORY = sorted((SCHEMA_DIR / "history").glob("*.avsc"))


def _roundtrip(writer_schema, reader_schema, record):
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(writer_schema), [record])
    buf.seek(0)
    return list(fastavro.reader(buf, reader_schema=fastavro.parse_schema(reader_schema)))


V1_ENTITY_COUNT = {"window_start": 0, "window_end": 3_600_000, "entity_id": "GPE:russia",
                   "entity_text": "Russia", "entity_label": "GPE", "mentions": 3,
                   "articles": 2, "pane_timing": "ON_TIME", "pane_index": 0,
                   "is_final": True, "emitted_at": 5}


def test_there_is_history_to_check():
    assert [p.name for p in HISTORY] == ["entity_count.v1.avsc"]


@pytest.mark.parametrize("old", HISTORY, ids=lambda p: p.name)
def test_old_files_read_with_current_schema(old):
    import json
    name = old.name.split(".")[0]
    (row,) = _roundtrip(json.loads(old.read_text()), load_schema(name), V1_ENTITY_COUNT)
    assert row["entity_id"] == "GPE:russia" and row["mentions"] == 3
    assert row["kind"] == "entity_counts"    # added in v2 with this default


def test_incompatible_change_fails():
    current = load_schema("entity_count")
    broken = copy.deepcopy(current)
    for field in broken["fields"]:
        if field["name"] == "mentions":
            field["type"] = "string"          # long -> string cannot be resolved
    with pytest.raises(SchemaResolutionError):
        _roundtrip(current, broken, dict(V1_ENTITY_COUNT, kind="entity_counts"))


def test_new_field_without_default_fails():
    current = load_schema("entity_count")
    broken = copy.deepcopy(current)
    broken["fields"].append({"name": "score", "type": "double"})
    with pytest.raises(SchemaResolutionError):
        _roundtrip(current, broken, dict(V1_ENTITY_COUNT, kind="entity_counts"))


# The dead letter before value_size and value_truncated (schemas/dead_letter.avsc
# at commit aafe6f2), as it was.
V1_DEAD_LETTER_SCHEMA = {
    "type": "record", "name": "DeadLetter", "namespace": "entitystream",
    "fields": [
        {"name": "reason", "type": "string"},
        {"name": "detail", "type": "string"},
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "key", "type": ["null", "bytes"], "default": None},
        {"name": "value", "type": ["null", "bytes"], "default": None},
        {"name": "timestamp_ms", "type": "long"},
    ]}
V1_DEAD_LETTER = {"reason": "invalid_json", "detail": "message is not JSON", "topic": "t",
                  "partition": 0, "offset": 5, "key": None, "value": b"{not json",
                  "timestamp_ms": 7}


def test_old_dead_letters_read_with_current_schema():
    (row,) = _roundtrip(V1_DEAD_LETTER_SCHEMA, load_schema("dead_letter"), V1_DEAD_LETTER)
    assert row["value"] == b"{not json" and row["offset"] == 5
    # Added with these defaults: the size of an old record is not known, and
    # nothing was cut before there was a limit.
    assert row["value_size"] is None and row["value_truncated"] is False


def test_new_dead_letters_read_with_the_old_schema():
    new = dict(V1_DEAD_LETTER, value=b"{not", value_size=9, value_truncated=True)
    (row,) = _roundtrip(load_schema("dead_letter"), V1_DEAD_LETTER_SCHEMA, new)
    assert row == dict(V1_DEAD_LETTER, value=b"{not")
