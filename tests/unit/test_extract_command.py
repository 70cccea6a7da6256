"""``entitystream extract`` (pipeline/extract.py): one JSON line per article, offsets into the
analysed text, and the counts the hand-checked seed fixture gives."""
import collections
import json
import pathlib

import pytest

from pipeline.extract import main

pytestmark = pytest.mark.spacy

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "seed_tracked_counts.json").read_text())


def run(tmp_path, *args):
    out = tmp_path / "out.jsonl"
    assert main([*map(str, args), "--output", str(out)]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("rules_only", [False, True])
def test_seeds_lines_offsets_and_tracked_counts(tmp_path, rules_only):
    lines = run(tmp_path, ROOT / "seeds", *(["--rules-only"] if rules_only else []))
    assert [line["id"] for line in lines] == [f"seed-00{i}" for i in range(5)]
    for line in lines:
        assert set(line) == {"id", "published_at", "text", "mentions"}
        for m in line["mentions"]:
            assert line["text"][m["start"]:m["end"]] == m["text"]
            assert set(m) == {"start", "end", "text", "label", "entity_id", "entity_name"}
    counts = {line["id"]: dict(collections.Counter(
        m["entity_id"] for m in line["mentions"]
        if m["entity_id"] in ("RUSSIA", "NORTH_KOREA", "BRIDGE"))) for line in lines}
    assert counts == FIXTURE["counts"]
    names = {m["entity_id"]: m["entity_name"] for line in lines for m in line["mentions"]}
    assert names["NORTH_KOREA"] == "North Korea" and names["BRIDGE"] == "Bridge"
    # seed-000 manifest: published 2025-05-28T12:00:00Z
    assert lines[0]["published_at"] == 1748433600000


def test_bad_and_foreign_articles_do_not_stop_the_run(tmp_path, capsys):
    articles = tmp_path / "a.jsonl"
    articles.write_text("\n".join(json.dumps(a) for a in [
        {"id": "ok", "title": "", "body": "Ryanair flies to Dublin.", "published_at": 0},
        {"id": "empty", "title": "t", "body": " ", "published_at": 0},
        {"id": "de", "title": "", "body": "Russland baut eine Brücke.", "published_at": 0,
         "language": "de"}]) + "\n", encoding="utf-8")
    lines = run(tmp_path, articles)
    assert [line["id"] for line in lines] == ["ok", "de"]
    assert lines[1]["mentions"] == []          # another language: counted, no entities
    assert "article 1 (id 'empty') not extracted: empty_body" in capsys.readouterr().err


def test_an_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="don't know how to replay"):
        main([str(tmp_path / "x.txt"), "--output", str(tmp_path / "o")])
