"""AggregateEntities under TestStream on Prism: sliding windows, running
totals, co-occurrence and tracked tuples, duplicates. Expected values are
worked out by hand from each test's input (comments show the arithmetic)."""
import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.prism_runner import PrismRunner
from apache_beam.testing.test_stream import TestStream as Stream
from apache_beam.testing.util import assert_that, equal_to

from pipeline.aggregate import AggregateEntities
from pipeline.records import ArticleEntities, Mention

pytestmark = [pytest.mark.prism]
HOUR = 3600


def article(article_id, at_s, *sentences):
    """Mentions from sentences given as lists of entity ids."""
    mentions = tuple(Mention(e, e.title(), "GPE", i) for i, ids in enumerate(sentences) for e in ids)
    return ArticleEntities(article_id, at_s * 1000, mentions)


def pipeline(prism_bin):
    options = PipelineOptions([f"--prism_location={prism_bin}", "--streaming",
                               "--environment_type=LOOPBACK", "--prism_log_level=error"])
    return beam.Pipeline(runner=PrismRunner(), options=options)


def aggregate(p, stream, **args):
    return (p | stream
            | beam.Map(lambda a: beam.window.TimestampedValue(a, a.published_at_ms / 1000))
            | AggregateEntities(early_firing_seconds=None, **args))


def finals(panes, kind, summarise):
    return (panes | f"Final{kind}" >> beam.Filter(lambda p: p.kind == kind and p.is_final)
            | f"Summarise{kind}" >> beam.Map(summarise))


def test_sliding_window_membership_and_running_totals(prism_bin):
    # 2-hour windows every hour: an article at 1h30 is in [0h,2h) and [1h,3h);
    # one at 0h10 in [-1h,1h) and [0h,2h).
    stream = (Stream()
              .add_elements([article("a", 10 * 60, ["RUSSIA"]),
                             article("b", 90 * 60, ["RUSSIA"], ["KOREA"])])
              .advance_watermark_to_infinity())
    p = pipeline(prism_bin)
    panes = aggregate(p, stream, window_seconds=HOUR, sliding_window_seconds=2 * HOUR,
                      sliding_period_seconds=HOUR).panes
    counts = lambda pane: (pane.window_start_ms // 1000 // 60,
                           tuple((r["entity_id"], r["mentions"]) for r in pane.records))
    assert_that(finals(panes, "sliding_entity_counts", counts), equal_to([
        (-60, (("RUSSIA", 1),)),                   # a
        (0, (("RUSSIA", 2), ("KOREA", 1))),        # a, b
        (60, (("KOREA", 1), ("RUSSIA", 1))),       # b (ties by id)
    ]), label="Sliding")
    assert_that(finals(panes, "running_entity_counts", counts), equal_to([
        (0, (("RUSSIA", 2), ("KOREA", 1))),
    ]), label="Running")
    p.run().wait_until_finish()


def test_cooccurrence_pairs_and_tracked_tuple_per_window(prism_bin):
    t = ("BRIDGE", "NORTH_KOREA", "RUSSIA")
    stream = (Stream()
              .add_elements([
                  # All three in sentence 0; RUSSIA+BRIDGE again in sentence 1.
                  article("a", 100, ["RUSSIA", "NORTH_KOREA", "BRIDGE"], ["RUSSIA", "BRIDGE"]),
                  # All three in the article, never in one sentence.
                  article("b", 200, ["RUSSIA", "NORTH_KOREA"], ["BRIDGE"]),
                  # Not all three.
                  article("c", 300, ["RUSSIA", "CHINA"])])
              .advance_watermark_to_infinity())
    p = pipeline(prism_bin)
    panes = aggregate(p, stream, window_seconds=HOUR, sliding_window_seconds=0,
                      tracked_tuples=[t]).panes
    rows = (panes | beam.Filter(lambda p: p.kind == "cooccurrence" and p.is_final)
            | beam.FlatMap(lambda p: [(r["scope"], tuple(r["entities"]), r["tracked"],
                                       r["count"], r["articles"]) for r in p.records]))
    assert_that(rows, equal_to([
        # Tracked tuple: sentences holding all three = 1 (a/s0); articles = a, b.
        ("sentence", t, True, 1, 1),
        ("article", t, True, 2, 2),
        # Sentence pairs: a/s0 gives B-N, B-R, N-R; a/s1 gives B-R; b/s0 N-R; c/s0 C-R.
        ("sentence", ("BRIDGE", "RUSSIA"), False, 2, 1),
        ("sentence", ("NORTH_KOREA", "RUSSIA"), False, 2, 2),
        ("sentence", ("BRIDGE", "NORTH_KOREA"), False, 1, 1),
        ("sentence", ("CHINA", "RUSSIA"), False, 1, 1),
        # Article pairs: a and b each hold B-N, B-R, N-R; c holds C-R.
        ("article", ("BRIDGE", "NORTH_KOREA"), False, 2, 2),
        ("article", ("BRIDGE", "RUSSIA"), False, 2, 2),
        ("article", ("NORTH_KOREA", "RUSSIA"), False, 2, 2),
        ("article", ("CHINA", "RUSSIA"), False, 1, 1),
    ]))
    p.run().wait_until_finish()


def test_duplicate_article_counted_once(prism_bin):
    stream = (Stream()
              .add_elements([article("a", 100, ["RUSSIA"]), article("a", 100, ["RUSSIA"]),
                             article("b", 200, ["RUSSIA"])])
              .advance_watermark_to_infinity())
    p = pipeline(prism_bin)
    panes = aggregate(p, stream, window_seconds=HOUR, sliding_window_seconds=0).panes
    assert_that(finals(panes, "entity_counts",
                       lambda pane: tuple((r["entity_id"], r["mentions"], r["articles"])
                                          for r in pane.records)),
                equal_to([(("RUSSIA", 2, 2),)]))   # a once, b once
    p.run().wait_until_finish()
