"""The Grafana dashboard as code, and ``entitystream dashboard``.

    entitystream dashboard [--tracked-entities FILE] [--tracked-tuple ID,ID,...]...
                           [--surge-threshold X] [--output FILE]

``build_dashboard(gazetteer, tuples)`` builds the whole dashboard with
Grafana's ``grafana-foundation-sdk`` (the builders Grafana generates from its
own schema) and returns it as a JSON-ready dict:

- the general panels (``GENERAL_ROWS``: is the pipeline up, keeping up, what
  is lost or late, what it wrote, the feeds), the same for every user;
- one row per tracked entity of the tracked-entities file and per tracked
  tuple (``tracked_subjects``), with PromQL that selects that subject's label
  values: its mentions (or the tuple's articles), its articles, stories and
  outlets in the latest closed tumbling window, and its surge score;
- an annotation on every time-series panel from the surge counter: one mark
  where a tracked entity or tuple surged.

The label values are the pipeline's: ``entity="UKRAINE"`` in
``entitystream_tracked_mentions_total`` (pipeline/entities.py),
``tuple="GRAINxPORTxUKRAINE"`` (sorted ids joined by ``x``, pipeline/aggregate.py)
and ``subject="GRAIN x PORT x UKRAINE"`` in the surge and window gauges
(pipeline/surges.py).

The shipped ``deploy/grafana/dashboards/entitystream.json`` is this module's
output for the shipped tracked-entities file and default tuple (a unit test
keeps them equal): regenerate it with ``entitystream dashboard --output
deploy/grafana/dashboards/entitystream.json``, never edit it by hand. Example::

    entitystream dashboard --tracked-entities my_entities.json \\
        --tracked-tuple UKRAINE,GRAIN,PORT --output my_dashboard.json
"""
import argparse
import json
import os
import pathlib
import re
import sys
from collections import Counter
from typing import NamedTuple, Optional, Tuple

from pipeline.surges import DEFAULT_THRESHOLD, subject_label

try:
    from grafana_foundation_sdk.builders import bargauge, common as common_builders
    from grafana_foundation_sdk.builders import dashboard as dashboard_builders
    from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common, dashboard as models
except ImportError as exc:  # not installed on Python 3.10: the SDK needs 3.11 (setup.py)
    _msg = (f"the dashboard generator needs grafana-foundation-sdk ({exc}), which needs "
            f"Python 3.11 or newer; run ./dev setup with Python 3.11+")
    raise RuntimeError(_msg) from exc

__all__ = ["build_dashboard", "dashboard_json", "tracked_subjects", "Subject", "Panel",
           "GENERAL_ROWS", "DATASOURCE_UID", "SHIPPED_DASHBOARD", "main"]

DATASOURCE_UID = "entitystream-prometheus"  # deploy/grafana/provisioning/datasources
SHIPPED_DASHBOARD = (pathlib.Path(__file__).resolve().parents[1] / "deploy" / "grafana"
                     / "dashboards" / "entitystream.json")
_DATASOURCE = models.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


class Panel(NamedTuple):
    """One panel as data: ``kind`` is timeseries, stat, table or bargauge;
    ``targets`` are ``(PromQL, legend)`` pairs (refIds A, B, ... in order)."""
    kind: str
    title: str
    description: str
    targets: Tuple[Tuple[str, str], ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    threshold: Optional[float] = None  # a red line (and colour) from this value up


def _series(title, description, *targets, unit="short", width=8):
    return Panel("timeseries", title, description, targets, unit, width)


def _stat(title, description, expr, legend, unit):
    return Panel("stat", title, description, ((expr, legend),), unit, 4, 4)


_RATE = "[$__rate_interval]"

#: The general rows, in order: ``(row title, panels)``. Equal in meaning to the
#: hand-edited JSON they replace; the tracked-subject rows follow them.
GENERAL_ROWS = (
    ("Overview", (
        _stat("Pipeline up", "1 when Prometheus can scrape the pipeline's /metrics (alert: "
              "EntitystreamDown).", 'up{job="entitystream"}', "{{instance}}", ""),
        _stat("Articles consumed", "Messages read from Kafka since the pipeline started.",
              "sum(entitystream_articles_consumed_total)", "articles", "short"),
        _stat("Time since last article", "Wall-clock time since the source last read a message "
              "(alert: EntitystreamNoInput above 10 min).",
              "max(entitystream_time_since_last_article_seconds)", "", "s"),
        _stat("Watermark lag now", "Wall clock minus the pipeline's input watermark (the "
              "slowest partition's).", "max(entitystream_watermark_lag_seconds)", "", "s"),
        Panel("table", "Build", "Package, runner, Beam, spaCy and spaCy model versions "
              "(entitystream_build_info).", (("entitystream_build_info", ""),), "", 8, 4),
    )),
    ("Keeping up", (
        _series("Throughput", "Articles read per second, by topic.",
                (f"sum by (topic) (rate(entitystream_articles_consumed_total{_RATE}))",
                 "{{topic}}")),
        _series("Input bytes", "Bytes of message values read per second, by topic.",
                (f"sum by (topic) (rate(entitystream_consumed_bytes_total{_RATE}))",
                 "{{topic}}"), unit="Bps"),
        _series("Consumer lag (records) per partition", "Records in the partition not read yet.",
                ("max by (topic, partition) (entitystream_consumer_lag_records)",
                 "{{topic}}/{{partition}}")),
        _series("Consumer lag (seconds) per partition", "Newest record's timestamp minus the "
                "last read record's: how much of the feed's time is unread (alert: "
                "EntitystreamConsumerLagGrowing).",
                ("max by (topic, partition) (entitystream_consumer_lag_seconds)",
                 "{{topic}}/{{partition}}"), unit="s", width=12),
        _series("Watermark lag", "Wall clock minus the event-time watermark: the pipeline's "
                "(slowest partition) and each partition's. Windows close when the watermark "
                "passes their end.",
                ("max(entitystream_watermark_lag_seconds)", "pipeline"),
                ("max by (topic, partition) (entitystream_watermark_lag_seconds)",
                 "{{topic}}/{{partition}}"), unit="s", width=12),
    )),
    ("Work", (
        _series("NER batch latency p50 / p95", "Time spent in spaCy's nlp.pipe per batch.",
                *[(f"histogram_quantile({q}, sum by (le) (rate("
                   f"entitystream_ner_batch_duration_seconds_bucket{_RATE})))", f"p{p}")
                  for q, p in (("0.5", "50"), ("0.95", "95"))], unit="s"),
        _series("NER batch size", "Mean articles per nlp.pipe batch.",
                (f"sum(rate(entitystream_ner_batch_size_sum{_RATE})) / "
                 f"sum(rate(entitystream_ner_batch_size_count{_RATE}))", "mean")),
        _series("Entities extracted by label", "Entity mentions extracted per second, by "
                "spaCy label.",
                (f"sum by (label) (rate(entitystream_entities_extracted_total{_RATE}))",
                 "{{label}}")),
    )),
    ("Data lost or late", (
        _series("Dead-letter and late rates", "Share of the messages read that were "
                "dead-lettered, or too late to count (alerts above 5% and 1%).",
                *[(f"sum(rate({name}{_RATE})) / "
                   f"sum(rate(entitystream_articles_consumed_total{_RATE}))", legend)
                  for name, legend in (("entitystream_dead_letters_total", "dead-lettered"),
                                       ("entitystream_late_articles_total", "late"))],
                unit="percentunit"),
        _series("Dead letters by reason", "Messages sent to the dead-letter topic per second, "
                "by reason.",
                (f"sum by (reason) (rate(entitystream_dead_letters_total{_RATE}))", "{{reason}}")),
        _series("Late articles, duplicates, decode fallbacks", "Per second: articles beyond the "
                "allowed lateness (not counted), duplicate articles suppressed, messages decoded "
                "with a fallback encoding.",
                (f"sum(rate(entitystream_late_articles_total{_RATE}))", "late"),
                (f"sum(rate(entitystream_duplicates_suppressed_total{_RATE}))", "duplicates"),
                (f"sum by (encoding) (rate(entitystream_decode_fallbacks_total{_RATE}))",
                 "fallback {{encoding}}")),
    )),
    ("Output", (
        _series("Panes emitted", "Window panes emitted per second, by aggregate kind and "
                "timing (EARLY, ON_TIME, LATE).",
                (f"sum by (kind, timing) (rate(entitystream_panes_emitted_total{_RATE}))",
                 "{{kind}} {{timing}}")),
        _series("Sink write latency p95", "Time to write and publish one pane file, by kind.",
                ("histogram_quantile(0.95, sum by (le, kind) (rate("
                 f"entitystream_sink_write_duration_seconds_bucket{_RATE})))", "{{kind}}"),
                unit="s"),
        _series("Avro bytes written and sink failures", "Bytes of Avro files written per "
                "second, and pane files that failed (alert: EntitystreamSinkWriteFailures).",
                (f"sum by (kind) (rate(entitystream_avro_written_bytes_total{_RATE}))",
                 "{{kind}} bytes/s"),
                (f"sum by (kind) (increase(entitystream_sink_write_failures_total{_RATE}))",
                 "{{kind}} failures")),
    )),
    ("Feeds", (
        _series("Feed fetches by outcome", "Fetches per second of the feeds `entitystream "
                "feeds` follows, by outcome (ok, not_modified, and why the others failed); per "
                "feed in entitystream_feed_fetches_total{feed}.",
                (f"sum by (outcome) (rate(entitystream_feed_fetches_total{_RATE}))",
                 "{{outcome}}")),
        _series("Feed entries published", "New feed entries published to Kafka as articles, "
                "per second and feed.",
                (f"sum by (feed) (rate(entitystream_feed_entries_published_total{_RATE}))",
                 "{{feed}}")),
        _series("Time since a feed's last successful fetch", "Seconds since each feed was last "
                "fetched successfully (ok or 304); the start time until it is (alert: "
                "EntitystreamFeedStale, 30 minutes).",
                ("time() - max by (feed) (entitystream_feed_last_success_timestamp_seconds)",
                 "{{feed}}"), unit="s"),
    )),
)


class Subject(NamedTuple):
    """A tracked entity or tuple, with the label values the pipeline gives it."""
    kind: str                  # "entity" or "tuple"
    ids: Tuple[str, ...]       # the entity id, or the tuple's ids sorted
    name: str                  # "Russia", or "Russia x North Korea x Bridge"

    @property
    def subject(self) -> str:
        """``subject`` of the surge and window gauges (pipeline/surges.py)."""
        return subject_label(self.ids)

    @property
    def tuple_label(self) -> str:
        """``tuple`` of ``entitystream_tracked_tuple_articles_total`` (pipeline/aggregate.py)."""
        return "x".join(self.ids)


def tracked_subjects(gazetteer, tuples):
    """The ``Subject`` of each tracked entity of ``gazetteer`` (in file order), then of
    each tuple of ``tuples`` (ids in any order, each tuple once; named in the file's
    order). A display name two subjects share gets the subject's ids after it."""
    names = gazetteer.names
    order = {entity_id: i for i, entity_id in enumerate(names)}
    subjects = [Subject("entity", (e.id,), e.name) for e in gazetteer.entities]
    for ids in dict.fromkeys(tuple(sorted(t)) for t in tuples):
        shown = sorted(ids, key=lambda i: (order.get(i, len(order)), i))
        subjects.append(Subject("tuple", ids, " x ".join(names.get(i, i) for i in shown)))
    shared = Counter(s.name for s in subjects)
    return [s._replace(name=f"{s.name} ({s.subject})") if shared[s.name] > 1 else s
            for s in subjects]


def _quoted(value):
    """``value`` as a PromQL double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _any_of(values):
    """A PromQL regex matcher's string matching exactly one of ``values`` (RE2's
    special characters escaped; Prometheus anchors the regex at both ends)."""
    return _quoted("|".join(_REGEX_SPECIAL.sub(r"\\\1", v) for v in values))


def _subject_panels(subject, threshold):
    """The three panels of one tracked subject's row."""
    name, sel = subject.name, f"subject={_quoted(subject.subject)}"
    if subject.kind == "entity":
        counted = _series(f"{name}: mentions", f"Mentions of {name} ({subject.ids[0]}) counted "
                          "since the pipeline started.",
                          (f"sum(entitystream_tracked_mentions_total"
                           f"{{entity={_quoted(subject.ids[0])}}})", "mentions"))
    else:
        counted = _series(f"{name}: articles", f"Articles holding every member of the tracked "
                          f"tuple {subject.subject} (cumulative), and mentions of each member.",
                          (f"sum(entitystream_tracked_tuple_articles_total"
                           f"{{tuple={_quoted(subject.tuple_label)}}})", "articles with all"),
                          (f"sum by (entity) (entitystream_tracked_mentions_total"
                           f"{{entity=~{_any_of(subject.ids)}}})", "{{entity}} mentions"))
    window = _series(f"{name}: articles, stories, outlets", f"In the latest closed tumbling "
                     f"window: articles holding {name}, the distinct stories among them "
                     "(near-duplicate copies counted once) and the distinct outlets that "
                     "carried them.",
                     *[(f"max(entitystream_tracked_window_{what}{{{sel}}})", what)
                       for what in ("articles", "stories", "outlets")])
    surge = _series(f"{name}: surge score", f"Surge score of {name} in the latest closed "
                    "window (modified z-score of its share of the window's articles against "
                    f"the previous windows; {threshold:g} or more is a surge), and the surges "
                    "counted in the last hour (alert: EntitystreamTrackedSurge).",
                    (f"max(entitystream_surge_score{{{sel}}})", "score"),
                    (f"sum(increase(entitystream_surges_total{{{sel}}}[1h]))",
                     "surges in the last hour"))
    return counted, window, surge._replace(threshold=threshold)


def _tracked_rows(subjects, threshold):
    overview = (
        Panel("bargauge", "Top entities by mentions", "Mentions of the tracked entities over "
              "the dashboard's time range.",
              (("topk(10, sum by (entity) (increase(entitystream_tracked_mentions_total"
                "[$__range])))", "{{entity}}"),)),
        _series("Surges of the tracked entities and tuple", "Surge score of each tracked entity "
                "and tuple in the latest closed hourly window (modified z-score of its share "
                "of the window's articles against the previous 24 windows; "
                f"{threshold:g} or more is a surge, pipeline/surges.py), and the surges counted "
                "in the last hour (alert: EntitystreamTrackedSurge).",
                ("max by (subject) (entitystream_surge_score)", "score {{subject}}"),
                ("sum by (subject) (increase(entitystream_surges_total[1h]))",
                 "surges {{subject}}"), width=16)._replace(threshold=threshold),
    )
    rows = [("Tracked entities and tuples", overview)]
    for s in subjects:
        rows.append((f"Tracked {s.kind}: {s.name}", _subject_panels(s, threshold)))
    return rows


def _query(ref, expr, legend, instant):
    query = (prometheus.Dataquery().ref_id(ref).datasource(_DATASOURCE).expr(expr)
             .legend_format(legend))
    return query.instant() if instant else query


def _built(spec, panel_id):
    """The SDK builder of ``spec``."""
    instant = spec.kind in ("table", "bargauge")
    builder = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel,
               "bargauge": bargauge.Panel}[spec.kind]()
    builder.id(panel_id).title(spec.title).description(spec.description)
    builder.datasource(_DATASOURCE).height(spec.height).span(spec.width)
    for ref, (expr, legend) in zip("ABCDEFGH", spec.targets):
        builder.with_target(_query(ref, expr, legend, instant))
    if spec.unit:
        builder.unit(spec.unit)
    reduce = common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)
    if spec.kind == "timeseries":
        (builder.draw_style(common.GraphDrawStyle.LINE).line_width(1).fill_opacity(10)
         .show_points(common.VisibilityMode.NEVER)
         .legend(common_builders.VizLegendOptions().show_legend(True)
                 .display_mode(common.LegendDisplayMode.LIST)
                 .placement(common.LegendPlacement.BOTTOM))
         .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                  .sort(common.SortOrder.NONE)))
    elif spec.kind == "stat":
        (builder.reduce_options(reduce).color_mode(common.BigValueColorMode.VALUE)
         .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.AUTO))
        if spec.title == "Pipeline up":
            builder.mappings([models.ValueMap(options={
                "0": models.ValueMappingResult(text="DOWN", color="red"),
                "1": models.ValueMappingResult(text="UP", color="green")})])
    elif spec.kind == "bargauge":
        (builder.reduce_options(reduce).orientation(common.VizOrientation.HORIZONTAL)
         .display_mode(common.BarGaugeDisplayMode.GRADIENT))
    else:  # the build table: one column per label of entitystream_build_info
        builder.show_header(True)
        builder.with_transformation(models.DataTransformerConfig(
            id_val="labelsToFields", options={"mode": "columns"}))
        builder.with_transformation(models.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {
                "Time": True, "Value": True, "__name__": True, "job": True}}))
    if spec.threshold is not None:
        builder.thresholds(dashboard_builders.ThresholdsConfig()
                           .mode(models.ThresholdsMode.ABSOLUTE)
                           .steps([models.Threshold(value=None, color="green"),
                                   models.Threshold(value=spec.threshold, color="red")]))
        builder.thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                 .mode(common.GraphTresholdsStyleMode.DASHED))
    return builder


def _surge_annotation(subjects):
    """A Prometheus-query annotation: a mark where a tracked subject surged."""
    matcher = _any_of([s.subject for s in subjects])
    return (dashboard_builders.AnnotationQuery().name("Surges").datasource(_DATASOURCE)
            .enable(True).icon_color("red")
            .expr(f"sum by (subject) (increase(entitystream_surges_total"
                  f"{{subject=~{matcher}}}[2m])) > 0"))


# Prometheus annotation fields Grafana reads that the SDK's AnnotationQuery has no
# setter for (it models only name, datasource, enable, hide, iconColor, expr).
_ANNOTATION_EXTRAS = {"step": "1m", "titleFormat": "Surge: {{subject}}",
                      "textFormat": "{{subject}} surged in a window that closed here: see "
                                    "OUTPUT/surges/ for its share, baseline and score",
                      "tagKeys": "subject", "useValueForTime": False}


def build_dashboard(gazetteer, tuples, *, surge_threshold=None):
    """The dashboard (a JSON-ready dict) for the tracked entities of ``gazetteer``
    (``pipeline.gazetteer.load_tracked_entities``) and the tracked ``tuples``
    (tuples of ids). ``surge_threshold``: the line on the surge panels (default
    the pipeline's, ``pipeline.surges.DEFAULT_THRESHOLD``)."""
    threshold = DEFAULT_THRESHOLD if surge_threshold is None else surge_threshold
    subjects = tracked_subjects(gazetteer, tuples)
    builder = (dashboard_builders.Dashboard("entitystream").uid("entitystream")
               .description("Is the pipeline keeping up, is data lost or late, and what are "
                            "the entities doing.")
               .tags(["entitystream", "beam", "kafka"]).editable()
               .tooltip(models.DashboardCursorSync.CROSSHAIR).time("now-30m", "now")
               .refresh("10s").timezone("utc").version(1)
               .annotation(_surge_annotation(subjects)))
    panel_id = 0
    for title, specs in list(GENERAL_ROWS) + _tracked_rows(subjects, threshold):
        panel_id += 1
        builder.with_row(dashboard_builders.Row(title).id(panel_id))
        for spec in specs:
            panel_id += 1
            builder.with_panel(_built(spec, panel_id))
    dash = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for annotation in dash["annotations"]["list"]:
        annotation.update(_ANNOTATION_EXTRAS)
    return dash


def dashboard_json(dash) -> str:
    """The text written to a dashboard file (stable: same input, same bytes)."""
    return json.dumps(dash, indent=2, ensure_ascii=False) + "\n"


def main(argv=None):
    from pipeline.gazetteer import load_tracked_entities
    from pipeline.settings import Settings, _tuples
    parser = argparse.ArgumentParser(
        prog="entitystream dashboard",
        description="Write the Grafana dashboard for your tracked entities and tuples: the "
                    "general panels, and one row per tracked entity and tuple.")
    parser.add_argument("--tracked-entities", metavar="PATH",
                        default=os.environ.get("ENTITYSTREAM_TRACKED_ENTITIES"),
                        help="tracked-entities JSON file, as for `run` (default "
                             "$ENTITYSTREAM_TRACKED_ENTITIES, else pipeline/tracked_entities.json)")
    parser.add_argument("--tracked-tuple", action="append", metavar="ID,ID,...",
                        help="a tracked tuple, as for `run` (repeatable; default "
                             f"{','.join(Settings.tracked_tuples[0])})")
    parser.add_argument("--surge-threshold", type=float, default=None, metavar="X",
                        help="the surge line on the score panels, as for `run` (default 3.5)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="dashboard JSON to write (default stdout); the shipped one is "
                             "deploy/grafana/dashboards/entitystream.json")
    args = parser.parse_args(argv)
    gazetteer = load_tracked_entities(args.tracked_entities)
    tuples = _tuples(args.tracked_tuple) if args.tracked_tuple else Settings.tracked_tuples
    untracked = sorted({i for t in tuples for i in t} - set(gazetteer.names))
    if untracked:
        print(f"warning: tracked tuple ids {untracked} are not entities of "
              f"{gazetteer.source}: their mention panels stay empty unless the pipeline "
              "counts them under these ids (add them to the file, or pass --tracked-tuple)",
              file=sys.stderr)
    dash = build_dashboard(gazetteer, tuples, surge_threshold=args.surge_threshold)
    text = dashboard_json(dash)
    if args.output is None:
        sys.stdout.write(text)
    else:
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
        rows = [r["title"] for r in dash["panels"] if r["title"].startswith("Tracked ")]
        print(f"wrote {args.output}: the general panels and {len(rows) - 1} tracked rows "
              f"({', '.join(r.split(': ', 1)[1] for r in rows[1:])})", file=sys.stderr)
    return 0
