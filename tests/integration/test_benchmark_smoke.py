"""The benchmarks keep working: ``benchmarks/run.py --suite smoke`` end to end.

A few hundred Reuters articles through every suite (P1, P1b, P2, P3, P4) on
the real broker and Prism. Only that every row is there with positive
figures is checked: speed targets are measured by hand on a quiet machine
(docs/benchmarks.md), never asserted in a test on shared CI cores.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The rows the smoke suite must print: a bare nlp.pipe row per extraction
# set-up, then the pipeline rows measured against them.
RATE_ROWS = ("bare-full", "p1", "p1b", "bare-rules", "p2-1", "p2-2", "bare-shipped",
             "p2-shipped", "p4")
LATENCY_ROWS = ("p3", "p3-rules")
RATIO_ROWS = ("p1", "p1b", "p2-1", "p2-2", "p2-shipped", "p4")


@pytest.mark.broker
@pytest.mark.prism
@pytest.mark.slow
def test_smoke_suite_prints_every_row_with_positive_figures(bootstrap, prism_bin, tmp_path):
    figures = tmp_path / "smoke.json"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, ENTITYSTREAM_PRISM_BIN=prism_bin)
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--suite", "smoke",
                           "--json", str(figures)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]

    rows = json.loads(figures.read_text())["rows"]
    assert set(rows) == set(RATE_ROWS + LATENCY_ROWS)
    for key in RATE_ROWS:
        row = rows[key]
        assert row["articles"] > 0 and row["peak_mb"] > 0, (key, row)
        assert row["rate"] > 0 and row["rate_wall"] > 0 and row["words_s"] > 0, (key, row)
    for key in RATIO_ROWS:
        assert rows[key]["ratio"] > 0 and rows[key]["ratio_wall"] > 0, (key, rows[key])
    for key in LATENCY_ROWS:
        row = rows[key]
        assert 0 < row["p50"] <= row["p95"] <= row["p99"], (key, row)
        assert row["peak_mb"] > 0, (key, row)
    assert rows["p4"]["growth"] is not None, rows["p4"]

    table = done.stdout
    assert "| workload | articles | articles/s, first article -> last pane |" in table
    for key in RATE_ROWS + LATENCY_ROWS:
        assert f"| {rows[key]['label']} |" in table, key
