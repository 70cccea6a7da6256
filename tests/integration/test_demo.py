"""The README's first command, past its set-up: `entitystream demo` on the
seeds, on Prism, through the real broker. Its running totals must equal the
hand-checked seed fixture (tests/fixtures/seed_tracked_counts.json)."""
import json
import logging
import pathlib

import pytest

from pipeline.demo import run_demo
from pipeline import inspect_output
from tests.scrape import free_port

pytestmark = [pytest.mark.broker, pytest.mark.prism, pytest.mark.spacy]
FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "seed_tracked_counts.json"


def test_demo_prints_every_window_and_complete_running_totals(bootstrap, prism_bin, tmp_path,
                                                              monkeypatch, capsys, caplog):
    monkeypatch.setenv("ENTITYSTREAM_PRISM_BIN", prism_bin)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    caplog.set_level(logging.WARNING)
    assert run_demo(output_dir=str(tmp_path / "demo"), metrics_port=free_port(),
                    timeout_s=240) == 0
    captured = capsys.readouterr()
    out = captured.out
    # A quiet first run: nothing normal (Prism's "Bundle Failed (pipeline canceled)" at
    # the cancel, the workers' lost streams) reads like a failure.
    errors = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
              if r.levelno >= logging.ERROR]
    assert errors == [] and "Traceback" not in captured.err, (errors, captured.err[-2000:])
    assert "all 5 seed windows and the running totals emitted" in out
    assert out.count("entity_counts  20") == 5          # one table per seed hour
    counts = json.loads(FIXTURE.read_text())["counts"]
    rows = inspect_output.latest_panes(inspect_output.load(tmp_path / "demo",
                                                           "running_entity_counts"))
    running = {r["entity_id"]: (r["mentions"], r["articles"]) for r in rows}
    for entity in ("RUSSIA", "NORTH_KOREA", "BRIDGE"):
        # Every seed mentions all three (fixture), so 5 articles each.
        assert running[entity] == (sum(c[entity] for c in counts.values()), 5), entity
    # The tracked tuple's line shows articles, stories and outlets: five
    # different stories from three sources (seeds/manifest.json).
    line = next(l for l in out.splitlines()
                if l.strip().startswith("BRIDGE x NORTH_KOREA x RUSSIA (tracked)")
                and " article " in l)
    assert line.split()[-4:] == ["5", "5", "5", "3"], line


def test_demo_speed_publishes_while_running_and_shows_panes_arriving(bootstrap, prism_bin,
                                                                      tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("ENTITYSTREAM_PRISM_BIN", prism_bin)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    # The seeds span 163 days (2024-12-16 to 2025-05-28): at 5,000,000 s per s, 2.8 s.
    assert run_demo(output_dir=str(tmp_path / "demo"), metrics_port=0, timeout_s=240,
                    speed=5_000_000) == 0
    out = capsys.readouterr().out
    pane_lines = [line.split() for line in out.splitlines() if line.startswith("  pane ")]
    windows = {w for *_, w in pane_lines}
    assert len(windows) == 5                        # one hour window per seed
    final = {w for _, _, timing, _, w in pane_lines if timing == "ON_TIME"}
    assert final == windows
    # Paced, no seed came after the watermark had passed its hour.
    assert not (tmp_path / "demo" / "late_articles").exists()
