"""NER in worker processes gives exactly what NER in this process gives."""
import pathlib

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from connectors.replay import read_articles
from pipeline.entities import RULER, ExtractEntities, article_text, entities_of, load_model
from pipeline.normalise import normalise_text
from pipeline.records import Article, ArticleEntities

pytestmark = [pytest.mark.spacy]
SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"


def _articles():
    return [Article(a["id"], a["source"], None, a["title"], a["body"], a["published_at"],
                    "en", "t", 0, i) for i, a in enumerate(read_articles([SEEDS]))]


def test_two_processes_match_in_process_extraction():
    nlp = load_model()
    types = nlp.get_pipe(RULER).gazetteer.types
    clean = [a._replace(title=normalise_text(a.title), body=normalise_text(a.body))
             for a in _articles()]
    # Tracked mentions carry the display name from pipeline/tracked_entities.json.
    names = {"RUSSIA": "Russia", "NORTH_KOREA": "North Korea", "BRIDGE": "Bridge"}
    expected = [ArticleEntities(a.id, a.published_at_ms, tuple(
        m._replace(text=names.get(m.entity_id, m.text))
        for m in entities_of(doc, tracked_types=types)), a.language, a.position, a.source)
        for a, doc in zip(clean, nlp.pipe(article_text(a) for a in clean))]
    assert sum(len(e.mentions) for e in expected) > 100
    with beam.Pipeline(runner=FnApiRunner()) as p:
        found = (p | beam.Create(clean) | ExtractEntities(batch_size=5, processes=2)).found
        assert_that(found, equal_to(expected))
