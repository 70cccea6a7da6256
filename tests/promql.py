"""The shipped dashboard's and alert rules' PromQL, for the tests.

``dashboard_queries()`` and ``rule_queries()`` read ``deploy/``;
``metric_names(expr)`` lists the metrics an expression selects;
``grafana_to_promql(expr)`` replaces Grafana's interval variables the way
Grafana would for a short dashboard range.
"""
import json
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "entitystream.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# PromQL words that are not metric names (functions and aggregations are
# recognised by the "(" that follows them).
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan", "atan2"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dash=None):
    """Every panel but rows (also those nested in collapsed rows)."""
    out = []
    for p in (dash or dashboard())["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def dashboard_queries(dash=None):
    """``[(panel title, refId, expr)]`` of every dashboard target, then
    ``(annotation name, "annotation", expr)`` of every Prometheus annotation."""
    dash = dash or dashboard()
    return ([(p["title"], t["refId"], t["expr"]) for p in panels(dash) for t in p["targets"]]
            + [(a["name"], "annotation", a["expr"]) for a in dash["annotations"]["list"]
               if a.get("expr")])


def alert_rules():
    spec = yaml.safe_load(ALERTS.read_text())
    return [r for group in spec["groups"] for r in group["rules"]]


def rule_queries():
    """``[(alert name, expr)]`` of every rule in alerts.yml."""
    return [(r.get("alert") or r.get("record"), r["expr"]) for r in alert_rules()]


def metric_names(expr):
    """The metric names ``expr`` selects."""
    s = _STRING.sub('""', expr)
    s = _MATCHERS.sub("", s)
    s = _RANGES.sub("", s)
    s = _GROUPING.sub("", s)
    names = set()
    for m in _IDENT.finditer(s):
        if s[m.end():].lstrip().startswith("(") or m.group(0) in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def grafana_to_promql(expr, rate_interval="20s", range_="10m", interval="5s"):
    """Grafana's variables replaced: ``$__rate_interval``, ``$__range``, ``$__interval``."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
            .replace("$__interval", interval))
