"""BRIDGE means a bridge: tests/fixtures/bridge_sentences.json holds every sentence of the
Reuters-21578 and BBC corpora with 'bridge'/'bridges', each labelled by hand (its comments say
how). Full and rules-only extraction with the shipped tracked-entities file must count >= 90 %
of the real bridges and no financial, figurative, name or card-game use."""
import json
import pathlib

import pytest

from pipeline.entities import DEFAULT_MODEL, RULER, extract_spans, load_model

pytestmark = pytest.mark.spacy

FIXTURE = json.loads((pathlib.Path(__file__).resolve().parents[1] / "fixtures"
                      / "bridge_sentences.json").read_text(encoding="utf-8"))["sentences"]


def test_fixture_is_large_enough_and_from_both_corpora():
    assert len(FIXTURE) >= 40
    assert {r["source"].split("-")[0].split("/")[0] for r in FIXTURE} == {"reuters", "bbc"}
    assert sum(r["real_bridges"] for r in FIXTURE) == 16


@pytest.mark.parametrize("rules_only", [False, True])
def test_real_bridges_counted_and_no_other_use(rules_only):
    nlp = load_model(DEFAULT_MODEL, rules_only=rules_only)
    types = nlp.get_pipe(RULER).gazetteer.types
    found = real = 0
    wrong = []
    for row, doc in zip(FIXTURE, nlp.pipe([r["text"] for r in FIXTURE])):
        n = sum(eid == "BRIDGE" for _, eid, _ in extract_spans(doc, tracked_types=types))
        real += row["real_bridges"]
        found += min(n, row["real_bridges"])
        if row["kind"] != "real+word" and n > row["real_bridges"]:
            wrong.append((row["kind"], row["text"][:80]))
    assert found / real >= 0.9
    assert wrong == []
