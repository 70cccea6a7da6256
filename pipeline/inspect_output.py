"""Read the Avro aggregates back: JSON lines, or a table per window."""
import datetime as dt
import json

from connectors.avro_files import read_records

__all__ = ["load", "latest_panes", "to_json_lines", "table"]


def _iso(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _order(r):
    label = r.get("entity_id") or "+".join(r.get("entities", ())) or r.get("article_id", "")
    weight = r.get("mentions", r.get("count", 0))
    return (r["kind"], r.get("window_start", ""), r.get("pane_index", 0),
            not r.get("tracked", False), r.get("scope", ""), -weight, label)


def load(root, kind=None):
    """Every record under ``root`` as a dict with ``kind`` and ISO times."""
    rows = [dict({k: _iso(v) for k, v in record.items()}, kind=file_kind)
            for file_kind, record in read_records(root, kind)]
    rows.sort(key=_order)
    return rows


def _window(r):
    return (r["kind"], r["window_start"], r["window_end"])


def latest_panes(rows):
    """Only the records of each window's latest pane (late articles: all)."""
    latest = {}
    for r in rows:
        if "pane_index" in r:
            latest[_window(r)] = max(latest.get(_window(r), -1), r["pane_index"])
    return [r for r in rows if "pane_index" not in r or r["pane_index"] == latest[_window(r)]]


def to_json_lines(rows):
    return "\n".join(json.dumps(r, sort_keys=True) for r in rows)


def _n(value):
    return "-" if value is None else value   # null: a file from before the field


def _line(r):
    tail = f"{_n(r.get('stories')):>8} {_n(r.get('outlets')):>8}"
    if "entity_id" in r:
        return (f"  {r['entity_text'][:34]:<34} {r['entity_label']:<8} "
                f"{r['mentions']:>8} {r['articles']:>8} {tail}")
    if r["kind"] == "source_counts":
        what = f"{r['source']}: " + " x ".join(r["entities"])
        return f"  {what[:43]:<43} {r['subject']:<8} {r['count']:>8} {r['articles']:>8}"
    if r["kind"] == "surges":
        what = " x ".join(r["entities"])
        return (f"  {what[:43]:<43} surge    {r['articles']:>8} of {r['total_articles']}, "
                f"share {r['share']:.3f} (baseline {r['baseline']:.3f}), score {r['score']:.1f}")
    what = " x ".join(r["entities"]) + (" (tracked)" if r["tracked"] else "")
    return f"  {what[:43]:<43} {r['scope']:<8} {r['count']:>8} {r['articles']:>8} {tail}"


def table(rows, top=5, kinds=None):
    """Top ``top`` rows of each window's latest pane, as text."""
    out = []
    by_window = {}
    late = [r for r in rows if r["kind"] == "late_articles"]
    for r in latest_panes(rows):
        if "pane_index" in r and (kinds is None or r["kind"] in kinds):
            by_window.setdefault(_window(r), []).append(r)
    for (kind, start, end), records in sorted(by_window.items()):
        first = records[0]
        final = "final" if first["is_final"] else "not final"
        span = "since the start" if kind.startswith("running") else f"{start} .. {end}"
        out.append(f"{kind}  {span}  pane {first['pane_index']} {first['pane_timing']} ({final})")
        if "entity_id" in first:
            out.append(f"  {'entity':<34} {'label':<8} {'mentions':>8} {'articles':>8} "
                       f"{'stories':>8} {'outlets':>8}")
        elif kind in ("cooccurrence", "running_cooccurrence"):
            out.append(f"  {'entities':<43} {'scope':<8} {'count':>8} {'articles':>8} "
                       f"{'stories':>8} {'outlets':>8}")
        tracked = [r for r in records if r.get("tracked")]
        others = [r for r in records if not r.get("tracked")]
        out.extend(_line(r) for r in tracked + others[:top])
    if late:
        out.append(f"late_articles  {len(late)} article(s) arrived after a window expired: "
                   + ", ".join(r["article_id"] for r in late[:10]))
    return "\n".join(out)
