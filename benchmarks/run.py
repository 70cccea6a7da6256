"""The performance issue's benchmarks (P1-P4): one entry point, one table.

    ./dev bench --suite all [--articles 5000] [--p4-articles 100000] [--rate 50] [--seconds 20]
                [--write-docs] [--json PATH]
    ./dev bench --suite smoke        # a few hundred articles through every suite (CI, ~3 min)

(``./dev bench ARGS`` is ``.venv/bin/python benchmarks/run.py ARGS``.)

Suites (``--suite``, repeatable; ``all`` is p1, p1b, p2, p3 and p4):

- ``p1``: full NER, one process: bare ``nlp.pipe``, then ``entitystream run --bounded``
  on Prism over the same ``--articles`` Reuters-21578 articles, already on a topic;
- ``p1b``: the same pipeline with ``--ner-processes 2``, against the one-process bare row;
- ``p2``: rules-only with the phrase-only tracked entities
  (``tests/fixtures/reuters_tracked_entities.json``), one and two NER processes,
  and rules-only with the shipped tracked entities (BRIDGE by word forms), each
  against its own bare row;
- ``p3``: produce -> first pane latency at ``--rate`` for ``--seconds``
  (``benchmarks/latency.py``): full NER with two NER processes, and rules-only;
- ``p4``: RSS of every pipeline process through a ``--p4-articles`` replay
  (``benchmarks/memory.py``), rules-only with phrases, continuous, two NER processes;
- ``smoke``: all of them on a few hundred articles (P4 on a few thousand).

Every side runs in a process of its own, one after the other (2 shared cores:
only ratios measured in one invocation mean something). Bare rows time
``nlp.pipe`` of the pipeline's own model (``load_model``: the same components
and ruler) over the same texts, without the model load; each is measured
again after the last row compared with it and counts as the mean of both
(``--no-bracket``: once), so that a change in the machine's load shows.
Pipeline rows give articles/s two ways: from the first article read to the
last Avro pane written (steady state, the figure the targets are read on),
and from the process start (interpreter, Prism, model load) to the last pane.
CPU seconds per 1,000 articles (user + system, every process of the tree, over
the same span) are the figure least disturbed by other jobs on the cores.
Peak RSS is the process tree's (pipeline + NER worker processes + Prism),
sampled from /proc every 0.5 s. ``--write-docs`` appends the table, the
targets and the machine, versions and command to docs/benchmarks.md.
"""
import argparse
import datetime as dt
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from typing import NamedTuple, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if __name__ == "__main__" and "--snapshot" in sys.argv[1:]:
    # Before anything of the pipeline is imported (see benchmarks/snapshot.py).
    from benchmarks.snapshot import rerun_from_snapshot
    sys.exit(rerun_from_snapshot([a for a in sys.argv[1:] if a != "--snapshot"]))

from benchmarks import bare, latency, memory  # noqa: E402
from benchmarks.snapshot import DOCS_ENV, source  # noqa: E402
from benchmarks.endtoend import run_pipeline, tree_summary  # noqa: E402
from benchmarks.workloads import (PHRASE_TRACKED, articles, corpus_name, delete_topics,  # noqa: E402
                                  kafka, publish_topic, texts, words)

DOCS = pathlib.Path(os.environ.get(DOCS_ENV) or ROOT / "docs" / "benchmarks.md")


class Row(NamedTuple):
    label: str
    kind: str                   # bare | e2e | latency | memory
    rules_only: bool = False
    tracked: Optional[str] = None   # tracked-entities file (None: the shipped one)
    processes: int = 1
    bare: Optional[str] = None  # the bare row this row is a ratio to


_PHRASE = str(PHRASE_TRACKED)
ROWS = {
    "bare-full": Row("bare `nlp.pipe`, full NER, 1 process", "bare"),
    "p1": Row("P1 end-to-end, full NER, 1 process", "e2e", bare="bare-full"),
    "p1b": Row("P1b end-to-end, full NER, `--ner-processes 2`", "e2e", processes=2,
               bare="bare-full"),
    "bare-rules": Row("bare `nlp.pipe`, rules-only, phrase tracked file, 1 process", "bare",
                      True, _PHRASE),
    "p2-1": Row("P2 end-to-end, rules-only, phrase tracked file, 1 process", "e2e", True,
                _PHRASE, 1, "bare-rules"),
    "p2-2": Row("P2 end-to-end, rules-only, phrase tracked file, `--ner-processes 2`", "e2e",
                True, _PHRASE, 2, "bare-rules"),
    "bare-shipped": Row("bare `nlp.pipe`, rules-only, shipped tracked file (word forms), "
                        "1 process", "bare", True),
    "p2-shipped": Row("P2 end-to-end, rules-only, shipped tracked file (word forms), "
                      "`--ner-processes 2`", "e2e", True, None, 2, "bare-shipped"),
    "p3": Row("P3 latency, full NER, `--ner-processes 2`", "latency", processes=2),
    "p3-rules": Row("P3 latency, rules-only, phrase tracked file (+RUSSIA), 1 process",
                    "latency", True, _PHRASE, 1),
    "p4": Row("P4 memory, continuous, rules-only, phrase tracked file, `--ner-processes 2`",
              "memory", True, _PHRASE, 2, "bare-rules"),
}
SUITES = {
    "p1": ("bare-full", "p1"),
    "p1b": ("bare-full", "p1b"),
    "p2": ("bare-rules", "p2-1", "p2-2", "bare-shipped", "p2-shipped"),
    "p3": ("p3", "p3-rules"),
    "p4": ("p4",),
}
SUITES["all"] = tuple(dict.fromkeys(k for s in ("p1", "p1b", "p2", "p3", "p4") for k in SUITES[s]))
SUITES["smoke"] = SUITES["all"]
SMOKE = {"articles": 200, "p4_articles": 2000, "seconds": 4.0}


def _flags(row, batch_size):
    flags = ["--ner-processes", str(row.processes), "--batch-size", str(batch_size)]
    if row.rules_only:
        flags.append("--rules-only")
    if row.tracked:
        flags += ["--tracked-entities", row.tracked]
    return flags


def _bare_row(key, row, args, ctx):
    r = bare.measure(args.articles, args.batch_size, row.rules_only, row.tracked)
    return {"articles": r["articles"], "words": r["words"], "steady_s": r["seconds"],
            "wall_s": r["seconds"] + r["load_seconds"], "cpu_s": r["cpu_seconds"],
            "rss": tree_summary(r["sampler"]), "peak_mb": r["sampler"].peak_mb(),
            "notes": [f"components {', '.join(r['components'])}; "
                      f"model load {r['load_seconds']:.1f} s; {r['entities']:,} doc.ents"]}


def _run_notes(run):
    mid = run.rate_between()
    outcomes = ", ".join(f"{n:,.0f} {o}" for o, n in sorted(run.outcomes.items()) if n)
    cpu = ", ".join(f"{role} {seconds:,.1f}" for role, seconds
                    in sorted(run.cpu_by_role.items(), key=lambda kv: -kv[1]) if seconds >= 0.05)
    span = run.finished - (run.first_article or run.started)
    return [f"CPU s from the first article to the end ({span:,.1f} s): {cpu}; "
            f"{run.panes:,} Avro pane files; {run.late_articles:,} late-article files; "
            f"messages settled: {outcomes or '?'}; first article read "
            f"{(run.first_article or run.started) - run.started:.1f} s after the process start"
            + (f"; {mid:,.1f} articles/s between 10 % and 90 % settled" if mid else "")]


def _e2e_row(key, row, args, ctx):
    if "topic" not in ctx:  # one topic for every bounded row, published once (not timed)
        arts = articles(args.articles)
        ctx["words"] = words(texts(arts))
        ctx["topic"] = publish_topic(arts, ctx["bootstrap"])
        ctx["topics"].append(ctx["topic"])
    out = pathlib.Path(ctx["work"]) / f"{key}-out"
    run = run_pipeline(ctx["topic"], ctx["bootstrap"], str(out), out.with_suffix(".log"),
                       args.articles, _flags(row, args.batch_size), bounded=True)
    return {"articles": args.articles, "words": ctx["words"], "steady_s": run.steady_s,
            "wall_s": run.wall_s, "cpu_s": run.cpu_s, "late": run.late_articles,
            "rss": tree_summary(run.sampler),
            "peak_mb": run.sampler.peak_mb(),
            "notes": _run_notes(run) + [f"process exit {run.exited - run.finished:.1f} s "
                                        f"after the last pane"]}


def _latency_row(key, row, args, ctx):
    r = latency.measure(args.rate, args.seconds, row.processes, row.rules_only,
                        tracked_entities=row.tracked, bootstrap=ctx["bootstrap"],
                        work_dir=ctx["work"])
    tenth = max(1, len(r["latencies"]) // 10)
    trend = [statistics.median(r["latencies"][i:i + tenth])
             for i in range(0, len(r["latencies"]) - tenth + 1, tenth)][:10]
    return {"articles": r["count"], "p50": r["p50"], "p95": r["p95"], "p99": r["p99"],
            "rss": tree_summary(r["sampler"]), "peak_mb": r["sampler"].peak_mb(),
            "notes": [f"{len(r['latencies'])}/{r['count']} articles seen in a pane, produced "
                      f"at {args.rate:g}/s for {args.seconds:g} s; all out "
                      f"{r['all_out_s']:.1f} s after the first was produced; median latency "
                      f"of each tenth of the articles, in the order produced: "
                      f"{', '.join(f'{m:.1f}' for m in trend)} s (rising: the pipeline falls "
                      f"behind the rate)"]}


def _memory_row(key, row, args, ctx):
    r = memory.measure(args.p4_articles, ctx["bootstrap"], ctx["work"],
                       _flags(row, args.batch_size))
    run, growth = r["run"], r["growth"]
    notes = [f"published in {r['publish_s']:.0f} s (not timed)"] + _run_notes(run)
    notes += [f"{what}: {start:,.1f} MB at 10 % -> max {peak:,.1f} MB in the last 20 % "
              f"({g:+.1%})" for what, (start, peak, g) in growth.items()]
    if r["checkpoint"]:
        notes.append("checkpoint at the end: " + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
            for k, v in r["checkpoint"].items()))
    worst = max((g for what, (_, _, g) in growth.items()
                 if what not in ("total", "checkpoint file")), default=None)
    return {"articles": args.p4_articles, "words": r["words"], "steady_s": run.steady_s,
            "wall_s": run.wall_s, "cpu_s": run.cpu_s, "late": run.late_articles,
            "rss": tree_summary(run.sampler), "peak_mb": run.sampler.peak_mb(), "growth": worst,
            "growth_total": growth.get("total", (0, 0, None))[2], "notes": notes,
            "series": _series(run)}


def _series(run, every_s=5.0):
    """[(seconds since start, {role: MB}, {probe values})] every ``every_s`` (for --json)."""
    out, next_t = [], run.started
    for s in run.sampler.samples:
        if s.t >= next_t:
            roles = {}
            for pid, kb in s.rss_kb.items():
                roles[s.roles[pid]] = round(roles.get(s.roles[pid], 0) + kb / 1024, 1)
            probe = {k: v for k, v in (s.extra or {}).items() if k != "outcomes"}
            out.append((round(s.t - run.started, 1), roles, probe))
            next_t = s.t + every_s
    return out


#: One function per kind of row: (key, row, args, ctx) -> the row's figures (a dict).
MEASURE = {"bare": _bare_row, "e2e": _e2e_row, "latency": _latency_row, "memory": _memory_row}


def _fmt(value, spec, unit=""):
    return "—" if value is None else f"{value:{spec}}{unit}"


def figures(results):
    """Add each row's rates, CPU per article and ratios to its bare row to ``results``.

    A bare row measured twice (before and after the rows compared with it, so
    that a change in the machine's load shows) counts as the mean of both."""
    for key, res in results.items():
        if "error" in res:
            continue
        for name, seconds in (("rate", "steady_s"), ("rate_wall", "wall_s")):
            res[name] = res["articles"] / res[seconds] if res.get(seconds) else None
        res["words_s"] = res["words"] / res["steady_s"] if res.get("steady_s") else None
        res["cpu_per_k"] = 1000 * res["cpu_s"] / res["articles"] if res.get("cpu_s") else None
        again = res.get("again")
        if again and "error" not in again:
            res["rate_again"] = again["articles"] / again["steady_s"]
            res["rate"] = (res["rate"] + res["rate_again"]) / 2
            res["cpu_per_k"] = 500 * (res["cpu_s"] + again["cpu_s"]) / res["articles"]
    for key, res in results.items():
        base = results.get(ROWS[key].bare) or {}
        if "error" in res or "error" in base or not res.get("rate") or not base.get("rate"):
            continue
        res["ratio"], res["ratio_wall"] = res["rate"] / base["rate"], res["rate_wall"] / base["rate"]
        if res.get("cpu_per_k") and base.get("cpu_per_k"):
            res["cpu_ratio"] = res["cpu_per_k"] / base["cpu_per_k"]


def table(results):
    lines = ["| workload | articles | articles/s, first article -> last pane | articles/s incl. "
             "start-up | words/s (first -> last) | ratio to bare (first -> last; incl. "
             "start-up) | CPU s per 1,000 articles (x bare) | p50 | p95 | p99 | peak RSS, MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, res in results.items():
        row = ROWS[key]
        if "error" in res:
            lines.append(f"| {row.label} | failed: {res['error']} | | | | | | | | | |")
            continue
        ratio, cpu = "—", _fmt(res.get("cpu_per_k"), ",.1f")
        if row.kind == "bare":
            ratio = "1.00x"
            if res.get("rate_again"):
                ratio += (f" (mean of {res['articles'] / res['steady_s']:,.1f} before and "
                          f"{res['rate_again']:,.1f} after)")
        elif res.get("ratio") is not None:
            ratio = f"**{res['ratio']:.2f}x**; {res['ratio_wall']:.2f}x"
        if res.get("cpu_ratio"):
            cpu += f" ({res['cpu_ratio']:.2f}x)"
        lines.append(f"| {row.label} | {res['articles']:,} | {_fmt(res.get('rate'), ',.1f')} | "
                     f"{_fmt(res.get('rate_wall'), ',.1f')} | {_fmt(res.get('words_s'), ',.0f')} | "
                     f"{ratio} | {cpu} | {_fmt(res.get('p50'), '.2f', ' s')} | "
                     f"{_fmt(res.get('p95'), '.2f', ' s')} | {_fmt(res.get('p99'), '.2f', ' s')} | "
                     f"{res['peak_mb']:,.0f} |")
    return "\n".join(lines)


def targets(results, args):
    """[(target, measured, verdict)] for the targets the results cover."""
    out = []

    def ok(key):
        return key in results and "error" not in results[key]

    enough = args.articles >= 5000
    for key, name, goal in (("p1", "P1: full NER, 1 process >= 0.95x bare", 0.95),
                            ("p1b", "P1b: `--ner-processes 2` >= 1.5x one-process bare", 1.5)):
        if ok(key) and results[key].get("ratio") is not None:
            r = results[key]["ratio"]
            verdict = ("met" if r >= goal else "not met") + ("" if enough else
                                                            " (fewer than 5,000 articles)")
            out.append((name, f"{r:.2f}x", verdict))
    rates = {k: results[k]["rate"] for k in ("p2-1", "p2-2") if ok(k)}
    if rates:
        best = max(rates, key=rates.get)
        out.append(("P2: rules-only (phrases) >= 1,100 articles/s on 2 cores",
                    f"{rates[best]:,.0f} articles/s ({ROWS[best].label.split(', ')[-1]})",
                    "met" if rates[best] >= 1100 else "not met"))
    if ok("p3"):
        p = results["p3"]
        out.append((f"P3: p95 <= 5 s at {args.rate:g} articles/s (full NER)",
                    f"p50 {p['p50']:.2f} s, p95 {p['p95']:.2f} s, p99 {p['p99']:.2f} s",
                    "met" if p["p95"] <= 5 else "not met"))
    if ok("p4") and results["p4"].get("growth") is not None:
        g = results["p4"]["growth"]
        out.append((f"P4: RSS growth after warm-up <= 10 % ({args.p4_articles:,} articles)",
                    f"worst process {g:+.1%} (tree total {results['p4']['growth_total']:+.1%})",
                    ("met" if g <= 0.10 else "not met")
                    + ("" if args.p4_articles >= 100_000 else " (fewer than 100,000 articles)")))
    return out


def _machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo")
                  if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores ({model}), {mem_kb / 2**20:.0f} GB RAM, {platform.machine()}"


def _versions():
    from deploy.broker import KAFKA_VERSION
    from pipeline.entities import DEFAULT_MODEL
    v = importlib.metadata.version
    return (f"Python {platform.python_version()}, apache-beam {v('apache-beam')} (Prism), "
            f"spaCy {v('spacy')}, {DEFAULT_MODEL} {v(DEFAULT_MODEL)}, Kafka {KAFKA_VERSION}")


def _load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def report(results, args, argv, context):
    command = "./dev bench " + shlex.join(argv)
    kinds = {ROWS[key].kind for key in results}
    sizes = ([f"{args.articles:,} articles for the bare and bounded rows"]
             if kinds & {"bare", "e2e"} else [])
    sizes += [f"P3 at {args.rate:g} articles/s for {args.seconds:g} s"] if "latency" in kinds else []
    sizes += [f"P4 over {args.p4_articles:,} articles"] if "memory" in kinds else []
    lines = [f"{context['date']} — {corpus_name()}; suites {', '.join(args.suite)}; "
             f"{'; '.join(sizes)}; batch {args.batch_size}",
             "",
             f"- Machine: {_machine()}; load average {context['load_start']} at the start, "
             f"{context['load_end']} at the end (2 cores shared with other work: only the "
             f"ratios within this run compare); took {context['minutes']:.0f} min.",
             f"- Versions: {_versions()}; source: {source()}.",
             f"- Command: `{command}`",
             "", table(results), ""]
    found = targets(results, args)
    if found:
        lines += ["| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in found]
        lines.append("")
    lines.append("Per row:")
    lines.append("")
    for key, res in results.items():
        detail = res.get("error_detail") or "; ".join([f"peak RSS {res.get('rss', '—')}"]
                                                        + res.get("notes", []))
        if res.get("again"):
            detail += f"; measured again after the rows compared with it: " + (
                res["again"].get("error_detail") or f"peak RSS {res['again'].get('rss')}")
        lines.append(f"- {ROWS[key].label}: {detail}")
    return "\n".join(lines) + "\n"


def _attempt(key, args, ctx, started):
    print(f"[{time.monotonic() - started:6.0f} s] {ROWS[key].label} ...", flush=True)
    try:
        result = MEASURE[ROWS[key].kind](key, ROWS[key], args, ctx)
    except Exception as exc:  # noqa: BLE001 - report it in the table, go on
        traceback.print_exc()
        return {"error": type(exc).__name__, "error_detail": f"failed: {exc}"[:1500]}
    # Each row as soon as it is measured: a run cut short still shows what it got.
    print(f"         {json.dumps({k: v for k, v in result.items() if k != 'series'}, default=str)}",
          flush=True)
    return result


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="what to measure (repeatable; default all)")
    parser.add_argument("--articles", type=int, default=None,
                        help="articles for P1, P1b, P2 and the bare rows (default 5000)")
    parser.add_argument("--p4-articles", type=int, default=None,
                        help="articles replayed for P4 (default 100000)")
    parser.add_argument("--rate", type=float, default=50.0, help="P3: articles produced per second")
    parser.add_argument("--seconds", type=float, default=None,
                        help="P3: how long to produce (default 20)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka (default $KAFKA_BOOTSTRAP_SERVERS, else the local broker)")
    parser.add_argument("--own-broker", action="store_true",
                        help="start a broker of this run's own (free ports, state in a "
                             "temporary directory) and stop it at the end: a shared broker "
                             "restarted by someone else mid-run loses a long run")
    parser.add_argument("--write-docs", action="store_true",
                        help="append the results to docs/benchmarks.md")
    parser.add_argument("--json", type=pathlib.Path, default=None,
                        help="also write the figures as JSON to this file")
    parser.add_argument("--no-bracket", dest="bracket", action="store_false", default=None,
                        help="measure each bare row once (default: again after the rows "
                             "compared with it, and use the mean; once for smoke)")
    parser.add_argument("--snapshot", action="store_true",
                        help="run from a copy of the working tree, safe from edits made "
                             "meanwhile (benchmarks/snapshot.py)")
    args = parser.parse_args(argv)
    args.suite = args.suite or ["all"]
    smoke = "smoke" in args.suite
    for name, full in (("articles", 5000), ("p4_articles", 100_000), ("seconds", 20.0)):
        if getattr(args, name) is None:
            setattr(args, name, SMOKE[name] if smoke else full)
    if args.bracket is None:
        args.bracket = not smoke
    keys = list(dict.fromkeys(k for s in args.suite for k in SUITES[s]))
    context = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_start": _load()}
    started = time.monotonic()
    results = {}
    with tempfile.TemporaryDirectory(prefix="entitystream-bench-") as work, \
            kafka(args.bootstrap_servers, work if args.own_broker else None) as bootstrap:
        ctx = {"bootstrap": bootstrap, "work": work, "topics": []}
        try:
            # A bare row is measured again after the last row compared with it.
            last_use = {ROWS[k].bare: k for k in keys if ROWS[k].bare in keys}
            for key in keys:
                results[key] = _attempt(key, args, ctx, started)
                bare_key = ROWS[key].bare
                if args.bracket and last_use.get(bare_key) == key:
                    results[bare_key]["again"] = _attempt(bare_key, args, ctx, started)
        finally:
            if ctx["topics"]:
                delete_topics(ctx["bootstrap"], ctx["topics"])
    context.update(load_end=_load(), minutes=(time.monotonic() - started) / 60)
    figures(results)
    text = report(results, args, argv, context)
    print("\n" + text)
    if args.write_docs:
        with DOCS.open("a", encoding="utf-8") as f:
            f.write(f"\n#### Run of {text}")
    if args.json:
        args.json.write_text(json.dumps(
            {"rows": {k: dict(r, label=ROWS[k].label) for k, r in results.items()},
             "targets": targets(results, args), "argv": argv}, indent=2, default=str))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
