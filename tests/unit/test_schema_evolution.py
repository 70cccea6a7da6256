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


V1_COOCCURRENCE = {"kind": "cooccurrence", "window_start": 0, "window_end": 3_600_000,
                   "scope": "sentence", "entities": ["GPE:japan", "GPE:u.s."], "tracked": False,
                   "count": 7, "articles": 5, "pane_timing": "ON_TIME", "pane_index": 0,
                   "is_final": True, "emitted_at": 5}
# A pair of the current version: its estimate 7 with the summary's bounds.
V2_COOCCURRENCE = dict(V1_COOCCURRENCE, count_lower=7, count_upper=9, articles_lower=5,
                       articles_upper=7)


def test_there_is_history_to_check():
    assert [p.name for p in HISTORY] == ["cooccurrence.v1.avsc", "cooccurrence.v2.avsc",
                                         "entity_count.v1.avsc", "entity_count.v2.avsc",
                                         "surge.v1.avsc"]


# A surge of the tracked tuple as v1 wrote it (hand-made: 5 of 25 articles,
# 0.6745 * 0.2 / 0.005 = 26.98).
V1_SURGE = {"kind": "surges", "window_start": 0, "window_end": 3_600_000, "subject": "tuple",
            "entities": ["BRIDGE", "NORTH_KOREA", "RUSSIA"], "articles": 5,
            "total_articles": 25, "share": 0.2, "baseline": 0.0, "spread": 0.005,
            "baseline_windows": 6, "score": 26.98, "threshold": 3.5, "pane_timing": "ON_TIME",
            "pane_index": 0, "is_final": True, "emitted_at": 5}


def test_v1_surges_read_with_the_current_schema_are_tracked():
    (row,) = _roundtrip(_history("surge.v1.avsc"), load_schema("surge"), V1_SURGE)
    assert row["tracked"] is True and row["articles"] == 5   # v1 had only tracked subjects


def test_a_top_pair_surge_read_by_a_v1_reader_is_a_two_entity_tuple():
    pair = dict(V1_SURGE, entities=["GPE:japan", "GPE:us"], tracked=False)
    (row,) = _roundtrip(load_schema("surge"), _history("surge.v1.avsc"), pair)
    assert "tracked" not in row and (row["subject"], row["entities"]) == (
        "tuple", ["GPE:japan", "GPE:us"])


def _history(name):
    import json
    return json.loads((SCHEMA_DIR / "history" / name).read_text())


@pytest.mark.parametrize("old, record", [
    ("entity_count.v2.avsc", dict(V1_ENTITY_COUNT, kind="entity_counts")),
    ("cooccurrence.v2.avsc", V2_COOCCURRENCE)])
def test_v2_records_read_with_current_schema_have_no_stories_or_outlets(old, record):
    (row,) = _roundtrip(_history(old), load_schema(old.split(".")[0]), record)
    assert row["articles"] == record["articles"]
    # Added with null defaults: v2 did not count them (null is "not counted", not 0).
    assert (row["stories"], row["outlets"]) == (None, None)


@pytest.mark.parametrize("old, record", [
    ("entity_count.v1.avsc", V1_ENTITY_COUNT),
    ("entity_count.v2.avsc", dict(V1_ENTITY_COUNT, kind="entity_counts")),
    ("cooccurrence.v1.avsc", V1_COOCCURRENCE),
    ("cooccurrence.v2.avsc", V2_COOCCURRENCE)])
def test_current_records_read_by_old_readers(old, record):
    current = dict(record, stories=1, outlets=2)
    if old.startswith("entity_count"):
        current.setdefault("kind", "entity_counts")
    (row,) = _roundtrip(load_schema(old.split(".")[0]), _history(old), current)
    times = ("window_start", "window_end", "emitted_at")   # read back as datetimes
    assert set(row) == set(record)                        # stories, outlets not seen
    assert {k: v for k, v in row.items() if k not in times} == {
        k: v for k, v in record.items() if k not in times}


def test_old_entity_counts_read_with_current_schema():
    import json
    old = SCHEMA_DIR / "history" / "entity_count.v1.avsc"
    (row,) = _roundtrip(json.loads(old.read_text()), load_schema("entity_count"), V1_ENTITY_COUNT)
    assert row["entity_id"] == "GPE:russia" and row["mentions"] == 3
    assert row["kind"] == "entity_counts"    # added in v2 with this default


def test_old_cooccurrence_read_with_current_schema_has_no_stated_bounds():
    import json
    old = json.loads((SCHEMA_DIR / "history" / "cooccurrence.v1.avsc").read_text())
    (row,) = _roundtrip(old, load_schema("cooccurrence"), V1_COOCCURRENCE)
    assert row["count"] == 7 and row["articles"] == 5
    # Added with null defaults: v1 pruned its pair table without a bound.
    assert (row["count_lower"], row["count_upper"], row["articles_lower"],
            row["articles_upper"]) == (None, None, None, None)


def test_current_cooccurrence_read_by_an_old_reader():
    import json
    old = json.loads((SCHEMA_DIR / "history" / "cooccurrence.v1.avsc").read_text())
    (row,) = _roundtrip(load_schema("cooccurrence"), old, V2_COOCCURRENCE)
    times = ("window_start", "window_end", "emitted_at")   # read back as datetimes
    assert set(row) == set(V1_COOCCURRENCE)               # the bounds are simply not seen
    assert {k: v for k, v in row.items() if k not in times} == {
        k: v for k, v in V1_COOCCURRENCE.items() if k not in times}


def test_every_cooccurrence_record_the_pipeline_makes_fits_the_schema():
    from pipeline.cooccurrence import ArticleCooccurrence
    from pipeline.tallies import CooccurrenceTally
    tally = CooccurrenceTally.empty(top_k=1)
    tally.add(ArticleCooccurrence({("sentence", ("A", "B")): 2, ("article", ("A", "B")): 1},
                                  {("article", ("A", "B", "C")): 1}))
    base = {k: V1_COOCCURRENCE[k] for k in ("kind", "window_start", "window_end",
                                            "pane_timing", "pane_index", "is_final",
                                            "emitted_at")}
    for record in tally.rows():
        (row,) = _roundtrip(load_schema("cooccurrence"), load_schema("cooccurrence"),
                            dict(record, **base))
        assert set(record) <= set(row) and row["count_lower"] <= row["count_upper"]
        assert row["stories"] == 0 and row["outlets"] == 0   # added without story or outlet


def test_every_entity_count_record_the_pipeline_makes_fits_the_schema():
    from pipeline.tallies import MentionTally
    tally = MentionTally()
    tally.add({"GPE:x": (2, "GPE", {"X": 2})}, "s1", "Reuters")
    tally.add({"GPE:x": (1, "GPE", {"X": 1})}, "s1", "BBC")   # a copy of s1 elsewhere
    base = dict({k: V1_ENTITY_COUNT[k] for k in ("window_start", "window_end", "pane_timing",
                                                "pane_index", "is_final", "emitted_at")},
                kind="entity_counts")
    (record,) = tally.rows()
    (row,) = _roundtrip(load_schema("entity_count"), load_schema("entity_count"),
                        dict(record, **base))
    # Counted by hand: 2 articles, one story, two outlets.
    assert (row["articles"], row["stories"], row["outlets"]) == (2, 1, 2)


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
