"""The shipped Grafana dashboard and alert rules, checked structurally.

Grafana is not available here: the dashboard JSON is checked for what
Grafana needs (the provisioned datasource uid, targets with PromQL, a valid
grid) and every metric a dashboard or alert query names must be one the
pipeline exports (``pipeline.metrics.EXPORTED_METRICS``). The queries are
run against a real Prometheus in tests/integration/test_prometheus.py.
"""
import collections

import pytest
import yaml

from pipeline.metrics import series_names
from tests.promql import (ROOT, alert_rules, dashboard, dashboard_queries, metric_names, panels,
                          rule_queries)

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
# Prometheus's own series, the only names allowed besides the pipeline's.
PROMETHEUS_SERIES = {"up"}


def _datasource():
    spec = yaml.safe_load((PROVISIONING / "datasources" / "entitystream.yml").read_text())
    (source,) = spec["datasources"]
    return source


def test_every_panel_and_target_uses_the_provisioned_prometheus_datasource():
    source = _datasource()
    assert source["type"] == "prometheus"
    want = {"type": "prometheus", "uid": source["uid"]}
    for panel in panels():
        assert panel["datasource"] == want, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == want, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panels_have_unique_ids_titles_and_ref_ids_and_fit_the_grid():
    dash = dashboard()
    assert dash["uid"] == "entitystream" and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels()]
    assert len(titles) == len(set(titles)), collections.Counter(titles).most_common(2)
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0 and grid["y"] >= 0, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("source,name,expr",
                         [("dashboard", f"{t} {r}", e) for t, r, e in dashboard_queries()]
                         + [("alert", n, e) for n, e in rule_queries()])
def test_every_query_names_only_exported_metrics(source, name, expr):
    names = metric_names(expr)
    assert names, f"{source} {name}: no metric found in {expr!r}"
    unknown = names - series_names() - PROMETHEUS_SERIES
    assert not unknown, f"{source} {name} names metrics the pipeline does not export: {unknown}"


def test_the_operators_questions_have_panels():
    titles = {p["title"] for p in panels()}
    for wanted in ("Throughput", "Consumer lag (seconds) per partition", "Watermark lag",
                   "NER batch latency p50 / p95", "Dead-letter and late rates",
                   "Top entities by mentions", "Russia x North Korea x Bridge: articles",
                   "Russia x North Korea x Bridge: articles, stories, outlets",
                   "Russia x North Korea x Bridge: surge score"):
        assert wanted in titles
    by_title = {p["title"]: p for p in panels()}
    latency = [t["expr"] for t in by_title["NER batch latency p50 / p95"]["targets"]]
    assert [e.split(",")[0] for e in latency] == ["histogram_quantile(0.5",
                                                  "histogram_quantile(0.95"]


def test_the_alerts_the_issue_asks_for_exist_with_severity_and_summary():
    rules = {r["alert"]: r for r in alert_rules()}
    assert {"EntitystreamDown", "EntitystreamNoInput", "EntitystreamConsumerLagGrowing",
            "EntitystreamDeadLetterRateHigh", "EntitystreamLateArticleRateHigh",
            "EntitystreamFeedStale"} <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert 'job="entitystream"' in rules["EntitystreamDown"]["expr"]


def test_prometheus_configs_scrape_the_job_the_rules_and_dashboard_name():
    for name in ("prometheus.yml", "prometheus-compose.yml"):
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / name).read_text())
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        job = jobs["entitystream"]
        assert job["static_configs"][0]["targets"][0].endswith(":9477"), name
        if "entitystream-feeds" in jobs:  # `entitystream feeds`, where it runs beside
            assert jobs["entitystream-feeds"]["static_configs"][0]["targets"][0].endswith(
                ":9478"), name
        for rule_file in config["rule_files"]:
            assert (ROOT / "deploy" / "prometheus" / rule_file).is_file(), rule_file
    exprs = [e for _, _, e in dashboard_queries()] + [e for _, e in rule_queries()]
    assert all('job="entitystream"' in e for e in exprs if "up" in metric_names(e))


def test_dashboard_provider_points_at_the_dashboards_directory():
    spec = yaml.safe_load((PROVISIONING / "dashboards" / "entitystream.yml").read_text())
    (provider,) = spec["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"])
    host_dir = ROOT / mounts[provider["options"]["path"]]
    assert (host_dir / "entitystream.json").is_file()


def test_readme_monitoring_section_names_every_panel_and_alert():
    readme = (ROOT / "README.md").read_text()
    assert "## Monitoring" in readme
    section = readme.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    tracked = False  # the rows of each tracked subject: named once, by what follows "NAME: "
    for panel in dashboard()["panels"]:
        title = panel["title"]
        if panel["type"] == "row":
            tracked = title.startswith(("Tracked entity: ", "Tracked tuple: "))
            title = title.split(": ", 1)[0] if tracked else title
        elif tracked:
            title = title.split(": ", 1)[1]
        assert title in section, f"README Monitoring does not name panel {title!r}"
    for rule in alert_rules():
        assert rule["alert"] in section, f"README Monitoring does not name alert {rule['alert']}"


def test_metric_names_parser_on_known_expressions():
    expr = ('histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{kind="x", le!="+Inf"}'
            '[$__rate_interval]))) / on() group_left b_total offset 5m > 1e-9 and c')
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
