"""ExtractEntities alone, with Create on the in-process FnApiRunner: the seeds'
tracked mentions (hand-checked fixture), timestamps kept, and its metrics."""
import collections
import json
import pathlib

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from prometheus_client import REGISTRY

from connectors.replay import read_articles
from pipeline.entities import ExtractEntities
from pipeline.normalise import NormaliseText
from pipeline.records import Article

pytestmark = pytest.mark.spacy

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "seed_tracked_counts.json").read_text())
TRACKED = ("RUSSIA", "NORTH_KOREA", "BRIDGE")


def seed_records():
    return [Article(a["id"], a["source"], None, a["title"], a["body"], a["published_at"], "en",
                    "seeds", 0, i) for i, a in enumerate(read_articles([ROOT / "seeds"]))]


def sample(name, labels=None):
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def tracked_summary(found):
    counts = collections.Counter(m.entity_id for m in found.mentions if m.entity_id in TRACKED)
    return found.article_id, found.published_at_ms, tuple(sorted(counts.items()))


@pytest.mark.parametrize("rules_only", [False, True])
def test_seeds_give_the_hand_checked_tracked_counts_and_metrics(rules_only):
    articles = seed_records()
    want = [(a.id, a.published_at_ms, tuple(sorted(FIXTURE["counts"][a.id].items())))
            for a in articles]
    before = {e: sample("entitystream_tracked_mentions_total", {"entity": e}) for e in TRACKED}
    batches_before = sample("entitystream_ner_batch_size_count")
    with beam.Pipeline(runner=FnApiRunner()) as p:
        found = (p | beam.Create(articles)
                 | "Normalise" >> NormaliseText()
                 | "Extract" >> ExtractEntities(batch_size=2, rules_only=rules_only)).found
        assert_that(found | beam.Map(tracked_summary), equal_to(want))
    for e in TRACKED:
        total = sum(c[e] for c in FIXTURE["counts"].values())
        assert sample("entitystream_tracked_mentions_total", {"entity": e}) - before[e] == total
    # Five articles in batches of at most 2: at least 3 nlp.pipe calls.
    assert sample("entitystream_ner_batch_size_count") - batches_before >= 3


def test_a_bad_tracked_entities_file_fails_when_the_pipeline_is_built(tmp_path):
    bad = tmp_path / "tracked.json"
    bad.write_text('{"entities": [{"id": "RUSSIA"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="entities\\[0\\]: needs keys"):
        ExtractEntities(tracked_entities=str(bad))


def test_an_article_spacy_fails_on_is_a_dead_letter_and_its_batch_goes_on():
    seeds = seed_records()[:2]
    # Longer than spaCy's nlp.max_length (1,000,000 characters): nlp.pipe raises E088.
    huge = Article("huge", "test", None, "Huge", "Russia. " * 130_000, seeds[0].published_at_ms,
                   "en", "seeds", 0, 99, prev_offset=98)
    want = [(a.id, a.published_at_ms, tuple(sorted(FIXTURE["counts"][a.id].items())))
            for a in seeds]
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = (p | beam.Create([seeds[0], huge, seeds[1]])
               | "Extract" >> ExtractEntities(batch_size=3, rules_only=True))
        assert_that(out.found | beam.Map(tracked_summary), equal_to(want), label="Found")
        assert_that(out.dead_letters | beam.Map(lambda d: (
            d["reason"], d["topic"], d["partition"], d["offset"], d["_position"].prev_offset,
            d["value_truncated"], "E088" in d["detail"])),
            equal_to([("extraction_failed", "seeds", 0, 99, 98, True, True)]), label="Dead")


def test_an_article_in_another_language_is_kept_without_entities():
    seed = seed_records()[0]
    german = seed._replace(id="de", language="de")  # English text, but labelled German
    with beam.Pipeline(runner=FnApiRunner()) as p:
        found = (p | beam.Create([german]) | ExtractEntities(rules_only=True)).found
        assert_that(found | beam.Map(lambda f: (f.article_id, f.mentions, f.language)),
                    equal_to([("de", (), "de")]))
