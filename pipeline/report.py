"""``entitystream report DIR``: a PNG chart of the tracked case over time.

For people who would rather look than read, from the Avro aggregates under
``DIR`` (no Grafana needed). Two panels sharing the time axis:

- **Tracked entities**: mentions of each tracked entity per tumbling window
  (``entity_counts``), from each window's latest pane. The tracked entities
  are those of ``pipeline/tracked_entities.json`` (``--entity ID`` picks
  others). An id also matches the statistical model's id for the same name
  (``RUSSIA`` matches ``GPE:russia``), so output written without the
  tracked-entity rules still plots.
- **Tracked tuple**: articles (and sentences) holding every member of each
  tracked tuple per window (``cooccurrence`` records with ``tracked``).
- **Articles, stories and outlets**: per window, the articles holding every
  member of each tracked tuple, the distinct stories among them and the
  outlets that carried them; the windows in which the tuple surged
  (``surges``) are shaded red.

A window with aggregates but no mention of an entity plots as 0.

Example::

    entitystream report out/demo            # writes out/demo/report.png
"""
import collections
import datetime as dt
import json
import pathlib

from connectors.avro_files import read_records

__all__ = ["render", "load_latest", "entity_series", "tuple_series", "tuple_story_series",
           "surge_windows", "tracked_entities", "TRACKED_ENTITIES"]

TRACKED_ENTITIES = pathlib.Path(__file__).with_name("tracked_entities.json")
ENTITY_KIND, TUPLE_KIND = "entity_counts", "cooccurrence"


def tracked_entities(path=TRACKED_ENTITIES):
    """``{id: display name}`` of the tracked entities in ``path``."""
    spec = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    return {e["id"]: e.get("name", e["id"]) for e in spec["entities"]}


def load_latest(root, kind):
    """``{window_start: [records]}`` of the latest pane of every ``kind`` window."""
    panes = collections.defaultdict(dict)  # window -> {pane_index: [records]}
    for _, record in read_records(root, kind):
        window = (record["window_start"], record["window_end"])
        panes[window].setdefault(record["pane_index"], []).append(record)
    return {start: by_index[max(by_index)] for (start, _), by_index in sorted(panes.items())}


def _matches(tracked_id, entity_id):
    if entity_id == tracked_id:
        return True
    _, _, text = entity_id.partition(":")
    return text == tracked_id.lower().replace("_", " ")


def entity_series(windows, entity_ids):
    """``{id: [(window_start, mentions)]}`` over every window in ``windows``."""
    series = {}
    for tracked_id in entity_ids:
        series[tracked_id] = [
            (start, sum(r["mentions"] for r in records if _matches(tracked_id, r["entity_id"])))
            for start, records in windows.items()]
    return series


def tuple_series(windows, starts=None):
    """``{(members, scope): [(window_start, count)]}`` of the tracked tuples, over
    ``starts`` (default: the windows in ``windows``; a window without the tuple is 0)."""
    keys = sorted({(tuple(r["entities"]), r["scope"]) for records in windows.values()
                   for r in records if r.get("tracked")})
    series = {}
    for members, scope in keys:
        series[(members, scope)] = [
            (start, sum(r["count"] for r in windows.get(start, ()) if r.get("tracked")
                        and tuple(r["entities"]) == members and r["scope"] == scope))
            for start in (starts if starts is not None else windows)]
    return series


def tuple_story_series(windows, starts):
    """``{(members, field): [(window_start, value)]}`` for field ``articles``,
    ``stories`` and ``outlets`` of each tracked tuple (article scope) over
    ``starts`` (a window without the tuple is 0; a file from before stories
    and outlets were counted gives 0 for them)."""
    keys = sorted({tuple(r["entities"]) for records in windows.values() for r in records
                   if r.get("tracked") and r["scope"] == "article"})
    series = {}
    for members in keys:
        for field in ("articles", "stories", "outlets"):
            series[(members, field)] = [
                (start, sum(r.get(field) or 0 for r in windows.get(start, ())
                            if r.get("tracked") and r["scope"] == "article"
                            and tuple(r["entities"]) == members))
                for start in starts]
    return series


def surge_windows(root):
    """``{members: [(window_start, window_end)]}`` of the tuples' and entities' surges."""
    out = collections.defaultdict(list)
    for _, record in read_records(root, "surges"):
        out[tuple(record["entities"])].append((record["window_start"], record["window_end"]))
    return dict(out)


def _plot(ax, series, labels, empty_text):
    from matplotlib.ticker import MaxNLocator
    if not series or not any(start for points in series.values() for start, _ in points):
        ax.text(0.5, 0.5, empty_text, ha="center", va="center", transform=ax.transAxes,
                color="grey")
        return
    for key, points in series.items():
        xs = [start for start, _ in points]
        ys = [value for _, value in points]
        # Windows may be far apart: the dotted line only guides the eye.
        ax.plot(xs, ys, marker="o", linestyle=":", linewidth=1, markersize=6, label=labels[key])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    ax.grid(True, alpha=0.3)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)


def render(root, output=None, entities=None, tracked_path=TRACKED_ENTITIES):
    """Write the chart of the aggregates under ``root``; return the PNG's path.

    ``output``: PNG path (default ``root/report.png``); ``entities``: entity
    ids to plot (default: the tracked entities of ``tracked_path``).
    """
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on servers
    from matplotlib import dates as mdates, pyplot as plt

    root = pathlib.Path(root)
    entity_windows = load_latest(root, ENTITY_KIND)
    tuple_windows = load_latest(root, TUPLE_KIND)
    if not entity_windows and not tuple_windows:
        msg = f"no {ENTITY_KIND} or {TUPLE_KIND} aggregates under {root}; run the pipeline first"
        raise ValueError(msg)
    names = tracked_entities(tracked_path)
    ids = list(entities or names)
    by_entity = entity_series(entity_windows, ids)
    # Windows with articles but no tracked tuple count as 0 for the tuple.
    by_tuple = tuple_series(tuple_windows, sorted(set(entity_windows) | set(tuple_windows)))

    starts = sorted(set(entity_windows) | set(tuple_windows))
    by_story = tuple_story_series(tuple_windows, starts)
    surges = surge_windows(root) if (root / "surges").is_dir() else {}
    fig, (top, bottom, third) = plt.subplots(3, 1, figsize=(12, 10), sharex=True,
                                             constrained_layout=True)
    _plot(top, by_entity, {i: f"{names.get(i, i)} ({i})" for i in ids},
          f"no {ENTITY_KIND} aggregates")
    top.set_title("Tracked entities: mentions per window")
    top.set_ylabel("mentions")
    _plot(bottom, by_tuple,
          {k: f"{' x '.join(names.get(m, m) for m in k[0])}: {k[1]}s" for k in by_tuple},
          f"no tracked-tuple {TUPLE_KIND} aggregates")
    bottom.set_title("Tracked tuple: articles and sentences holding every member, per window")
    bottom.set_ylabel("count")
    _plot(third, by_story,
          {k: f"{' x '.join(names.get(m, m) for m in k[0])}: {k[1]}" for k in by_story},
          f"no tracked-tuple {TUPLE_KIND} aggregates")
    members = {k[0] for k in by_story}
    for start, end in sorted(w for m in members for w in surges.get(m, ())):
        third.axvspan(start, end, color="red", alpha=0.2, linewidth=0)
    marked = sum(len(surges.get(m, ())) for m in members)
    third.set_title("Tracked tuple: articles, distinct stories and outlets per window"
                    + (f"; {marked} surge window(s) shaded red" if marked else "; no surge"))
    third.set_ylabel("count")
    third.set_xlabel("window start (UTC)")
    third.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d\n%H:%M", tz=dt.timezone.utc))
    fig.suptitle(f"entitystream report: {root}", fontsize=11)
    path = pathlib.Path(output) if output else root / "report.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
