"""``entitystream report``: series from hand-made Avro panes, and the PNG."""
import datetime as dt

import pytest
from PIL import Image

from connectors.avro_files import write_pane
from pipeline import report
from pipeline.cli import main
from pipeline.records import WindowPane

HOUR = 3600 * 1000
A, B = 1_746_273_600_000, 1_746_273_600_000 + 5 * HOUR  # 2025-05-03T12:00Z and 17:00Z
TUPLE = ("BRIDGE", "NORTH_KOREA", "RUSSIA")


def _entity(entity_id, mentions, label="GPE"):
    return {"entity_id": entity_id, "entity_text": entity_id.split(":")[-1],
            "entity_label": label, "mentions": mentions, "articles": 1}


def _pair(entities, scope, count, tracked):
    return {"scope": scope, "entities": list(entities), "tracked": tracked, "count": count,
            "articles": 1}


def _pane(kind, start, index, timing, records, final=False):
    return WindowPane(kind, start, start + HOUR, timing, index, final, start + HOUR,
                      tuple(records))


@pytest.fixture
def output(tmp_path):
    panes = [
        # Window A: an EARLY pane superseded by the ON_TIME one.
        _pane("entity_counts", A, 0, "EARLY", [_entity("RUSSIA", 1)]),
        _pane("entity_counts", A, 1, "ON_TIME",
              [_entity("RUSSIA", 3), _entity("GPE:north korea", 2), _entity("GPE:seoul", 9)], True),
        _pane("entity_counts", B, 0, "ON_TIME",
              [_entity("BRIDGE", 4, "FAC"), _entity("RUSSIA", 1)], True),
        _pane("cooccurrence", A, 0, "ON_TIME",
              [dict(_pair(TUPLE, "article", 3, True), articles=3, stories=2, outlets=2),
               _pair(TUPLE, "sentence", 2, True),
               _pair(("GPE:seoul", "RUSSIA"), "article", 1, False)], True),
        _pane("cooccurrence", B, 0, "ON_TIME", [_pair(("BRIDGE", "RUSSIA"), "article", 1, False)],
              True),
        _pane("surges", A, 0, "ON_TIME", [{
            "subject": "tuple", "entities": list(TUPLE), "articles": 3, "total_articles": 10,
            "share": 0.3, "baseline": 0.0, "spread": 0.005, "baseline_windows": 6,
            "score": 40.47, "threshold": 3.5}], True),
    ]
    for pane in panes:
        write_pane(tmp_path, pane)
    return tmp_path


def _t(ms):
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def test_entity_series_take_each_windows_latest_pane_and_match_model_ids(output):
    windows = report.load_latest(output, "entity_counts")
    series = report.entity_series(windows, ["RUSSIA", "NORTH_KOREA", "BRIDGE"])
    assert series == {"RUSSIA": [(_t(A), 3), (_t(B), 1)],
                      "NORTH_KOREA": [(_t(A), 2), (_t(B), 0)],
                      "BRIDGE": [(_t(A), 0), (_t(B), 4)]}


def test_tuple_series_count_only_tracked_tuples_and_zero_fill_windows(output):
    series = report.tuple_series(report.load_latest(output, "cooccurrence"))
    assert series == {(TUPLE, "article"): [(_t(A), 3), (_t(B), 0)],
                      (TUPLE, "sentence"): [(_t(A), 2), (_t(B), 0)]}
    later = _t(B + HOUR)  # a window with entities but no co-occurrence file
    series = report.tuple_series(report.load_latest(output, "cooccurrence"), [_t(A), later])
    assert series[(TUPLE, "article")] == [(_t(A), 3), (later, 0)]


def test_story_series_and_surge_windows_of_the_tracked_tuple(output):
    windows = report.load_latest(output, "cooccurrence")
    series = report.tuple_story_series(windows, [_t(A), _t(B)])
    # Window A: 3 articles, 2 stories, 2 outlets (the fixture); B has no tuple.
    assert series == {(TUPLE, "articles"): [(_t(A), 3), (_t(B), 0)],
                      (TUPLE, "stories"): [(_t(A), 2), (_t(B), 0)],
                      (TUPLE, "outlets"): [(_t(A), 2), (_t(B), 0)]}
    assert report.surge_windows(output) == {TUPLE: [(_t(A), _t(A + HOUR))]}


def test_tracked_entities_come_from_the_shipped_rules_file():
    assert list(report.tracked_entities()) == ["RUSSIA", "NORTH_KOREA", "BRIDGE"]


def test_report_command_writes_a_png(output, capsys):
    assert main(["report", str(output)]) == 0
    path = output / "report.png"
    assert f"wrote {path}" in capsys.readouterr().out
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1320, 1100)  # 12 x 10 inches at 110 dpi
        assert len(image.getcolors(maxcolors=100_000) or []) > 10  # not a blank canvas


def test_report_of_an_empty_directory_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no entity_counts or cooccurrence aggregates" in capsys.readouterr().err
