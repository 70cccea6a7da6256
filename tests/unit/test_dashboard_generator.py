"""The dashboard generator (pipeline/dashboard.py) and ``entitystream dashboard``.

The shipped JSON must be the generator's output for the shipped tracked
entities (so nobody edits it by hand and it cannot drift). For another
tracked-entities file, the expected rows and PromQL are written out by hand
below from the label values the pipeline gives: ``entity`` = the tracked id
(pipeline/entities.py), ``tuple`` = the sorted ids joined by ``x``
(pipeline/aggregate.py), ``subject`` = the sorted ids joined by `` x ``
(pipeline/surges.py); tests/integration/test_prometheus.py checks the same
queries against a real run.
"""
import json

import pytest

from pipeline import cli
from pipeline.dashboard import SHIPPED_DASHBOARD, _any_of, build_dashboard, dashboard_json
from pipeline.gazetteer import load_tracked_entities
from pipeline.settings import Settings
from tests.promql import dashboard_queries, panels

UKRAINE_FILE = {"version": 1, "entities": [
    {"id": "UKRAINE", "name": "Ukraine", "type": "GPE", "aliases": ["Ukraine"]},
    {"id": "GRAIN", "name": "Grain", "type": "PRODUCT", "aliases": ["grain", "wheat"]},
    {"id": "PORT", "name": "Port", "type": "FAC", "aliases": ["port", "seaport"]}]}


@pytest.fixture
def ukraine_dashboard(tmp_path):
    """The dashboard ``entitystream dashboard`` writes for Ukraine x grain x port."""
    tracked = tmp_path / "ukraine.json"
    tracked.write_text(json.dumps(UKRAINE_FILE))
    out = tmp_path / "dashboard.json"
    assert cli.main(["dashboard", "--tracked-entities", str(tracked),
                     "--tracked-tuple", "UKRAINE,GRAIN,PORT", "--output", str(out)]) == 0
    return json.loads(out.read_text())


def _rows(dash):
    """``{row title: [(panel title, [expr, ...]), ...]}`` in order."""
    rows, current = {}, None
    for panel in dash["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], [])
        else:
            current.append((panel["title"], [t["expr"] for t in panel["targets"]]))
    return rows


def test_the_shipped_dashboard_is_the_generators_output_for_the_shipped_tracked_entities():
    generated = dashboard_json(build_dashboard(load_tracked_entities(None),
                                               Settings.tracked_tuples))
    assert SHIPPED_DASHBOARD.read_text() == generated, (
        "deploy/grafana/dashboards/entitystream.json is not what the generator makes: "
        "run `entitystream dashboard --output deploy/grafana/dashboards/entitystream.json`")


def test_a_ukraine_grain_port_file_gets_one_row_per_entity_and_tuple(ukraine_dashboard):
    rows = _rows(ukraine_dashboard)
    tracked = [t for t in rows if t.startswith("Tracked ")]
    assert tracked == ["Tracked entities and tuples", "Tracked entity: Ukraine",
                       "Tracked entity: Grain", "Tracked entity: Port",
                       "Tracked tuple: Ukraine x Grain x Port"]
    assert rows["Tracked entity: Grain"] == [
        ("Grain: mentions", ['sum(entitystream_tracked_mentions_total{entity="GRAIN"})']),
        ("Grain: articles, stories, outlets",
         ['max(entitystream_tracked_window_articles{subject="GRAIN"})',
          'max(entitystream_tracked_window_stories{subject="GRAIN"})',
          'max(entitystream_tracked_window_outlets{subject="GRAIN"})']),
        ("Grain: surge score",
         ['max(entitystream_surge_score{subject="GRAIN"})',
          'sum(increase(entitystream_surges_total{subject="GRAIN"}[1h]))'])]
    assert rows["Tracked tuple: Ukraine x Grain x Port"] == [
        ("Ukraine x Grain x Port: articles",
         ['sum(entitystream_tracked_tuple_articles_total{tuple="GRAINxPORTxUKRAINE"})',
          'sum by (entity) (entitystream_tracked_mentions_total{entity=~"GRAIN|PORT|UKRAINE"})']),
        ("Ukraine x Grain x Port: articles, stories, outlets",
         ['max(entitystream_tracked_window_articles{subject="GRAIN x PORT x UKRAINE"})',
          'max(entitystream_tracked_window_stories{subject="GRAIN x PORT x UKRAINE"})',
          'max(entitystream_tracked_window_outlets{subject="GRAIN x PORT x UKRAINE"})']),
        ("Ukraine x Grain x Port: surge score",
         ['max(entitystream_surge_score{subject="GRAIN x PORT x UKRAINE"})',
          'sum(increase(entitystream_surges_total{subject="GRAIN x PORT x UKRAINE"}[1h]))'])]
    # Nothing of the shipped tracked entities is left.
    text = json.dumps(ukraine_dashboard)
    assert "RUSSIA" not in text and "Russia" not in text and "NORTH_KOREA" not in text


def test_the_surge_annotation_selects_the_tracked_subjects(ukraine_dashboard):
    (annotation,) = ukraine_dashboard["annotations"]["list"]
    assert annotation["expr"] == (
        'sum by (subject) (increase(entitystream_surges_total'
        '{subject=~"UKRAINE|GRAIN|PORT|GRAIN x PORT x UKRAINE"}[2m])) > 0')
    assert annotation["datasource"] == {"type": "prometheus", "uid": "entitystream-prometheus"}
    assert annotation["enable"] and annotation["tagKeys"] == "subject"
    assert annotation["titleFormat"] == "Surge: {{subject}}"
    assert ("Surges", "annotation", annotation["expr"]) in dashboard_queries(ukraine_dashboard)


def test_the_general_panels_do_not_depend_on_the_tracked_file(ukraine_dashboard):
    shipped = json.loads(SHIPPED_DASHBOARD.read_text())

    def general(dash):
        rows = _rows(dash)
        return {t: p for t, p in rows.items() if not t.startswith("Tracked ")}
    assert general(ukraine_dashboard) == general(shipped)
    assert list(general(shipped)) == ["Overview", "Keeping up", "Work", "Data lost or late",
                                      "Output", "Feeds"]
    ids = [p["id"] for p in ukraine_dashboard["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    assert len({p["title"] for p in panels(ukraine_dashboard)}) == len(panels(ukraine_dashboard))


def test_label_values_are_escaped_for_promql_regexes():
    # By hand: RE2's specials get a backslash, written doubled inside a PromQL string.
    assert _any_of(["COUNTRY:USA", "LABEL:U.S. (Army)", "A x B"]) == \
        r'"COUNTRY:USA|LABEL:U\\.S\\. \\(Army\\)|A x B"'


def test_a_bad_tracked_entities_file_is_an_error_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "entities": [{"id": "lower"}]}')
    assert cli.main(["dashboard", "--tracked-entities", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "entitystream dashboard: error: tracked entities" in err and str(bad) in err


def test_subjects_sharing_a_display_name_get_their_ids_and_a_tuple_comes_once(tmp_path):
    from pipeline.dashboard import tracked_subjects
    tracked = tmp_path / "ports.json"
    tracked.write_text(json.dumps({"version": 1, "entities": [
        {"id": "PORT", "name": "Port", "type": "FAC", "aliases": ["port"]},
        {"id": "SEAPORT", "name": "Port", "type": "FAC", "aliases": ["seaport"]}]}))
    subjects = tracked_subjects(load_tracked_entities(tracked),
                                [("SEAPORT", "PORT"), ("PORT", "SEAPORT")])
    assert [(s.kind, s.ids, s.name) for s in subjects] == [
        ("entity", ("PORT",), "Port (PORT)"), ("entity", ("SEAPORT",), "Port (SEAPORT)"),
        ("tuple", ("PORT", "SEAPORT"), "Port x Port")]
