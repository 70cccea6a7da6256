"""Read the Avro aggregates back: JSON lines, or a table of top entities per window."""
import datetime as dt
import json

from connectors.avro_files import read_records

__all__ = ["load", "latest_panes", "to_json_lines", "table"]


def _iso(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def load(root, kind=None):
    """Every record under ``root`` as a dict with ``kind`` and ISO times."""
    rows = []
    for file_kind, record in read_records(root, kind):
        rows.append(dict({k: _iso(v) for k, v in record.items()}, kind=file_kind))
    rows.sort(key=lambda r: (r["kind"], r["window_start"], r["pane_index"], -r["mentions"],
                             r["entity_id"]))
    return rows


def latest_panes(rows):
    """Only the records of each window's latest pane."""
    latest = {}
    for r in rows:
        key = (r["kind"], r["window_start"], r["window_end"])
        latest[key] = max(latest.get(key, -1), r["pane_index"])
    return [r for r in rows
            if r["pane_index"] == latest[(r["kind"], r["window_start"], r["window_end"])]]


def to_json_lines(rows):
    return "\n".join(json.dumps(r, sort_keys=True) for r in rows)


def table(rows, top=5):
    """Top ``top`` entities of each window's latest pane, as text."""
    out = []
    by_window = {}
    for r in latest_panes(rows):
        by_window.setdefault((r["kind"], r["window_start"], r["window_end"]), []).append(r)
    for (kind, start, end), records in sorted(by_window.items()):
        first = records[0]
        final = "final" if first["is_final"] else "not final"
        out.append(f"{kind}  {start} .. {end}  pane {first['pane_index']} "
                   f"{first['pane_timing']} ({final})")
        out.append(f"  {'entity':<34} {'label':<8} {'mentions':>8} {'articles':>8}")
        for r in sorted(records, key=lambda r: (-r["mentions"], r["entity_id"]))[:top]:
            out.append(f"  {r['entity_text'][:34]:<34} {r['entity_label']:<8} "
                       f"{r['mentions']:>8} {r['articles']:>8}")
    return "\n".join(out)
