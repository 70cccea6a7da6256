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
