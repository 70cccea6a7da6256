"""CountMentions under TestStream: windows, watermark, panes, lateness.

Each test runs on Prism, the project's streaming runner. (Beam's Python
BundleBasedDirectRunner is not used: at the end of a TestStream it does not
fire an event-time timer set from inside another timer's callback, so the
last window's pane never comes.) Expected panes are written out by hand from
the input of each test.
"""
import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream as Stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.runners.portability.prism_runner import PrismRunner

from pipeline.aggregate import AggregateEntities
from pipeline.records import ArticleEntities, Mention

RUNNERS = [pytest.param("prism", marks=pytest.mark.prism)]

HOUR = 3600


def article(article_id, at_s, *entities):
    mentions = tuple(Mention(f"GPE:{e.lower()}", e, "GPE", 0) for e in entities)
    return ArticleEntities(article_id, at_s * 1000, mentions)


def pane_summary(pane):
    """Everything but the processing time, with counts as (id, mentions, articles)."""
    return (pane.window_start_ms // 1000, pane.pane_timing, pane.pane_index, pane.is_final,
            tuple((r["entity_id"], r["mentions"], r["articles"]) for r in pane.records))


def run_stream(runner, request, stream, **count_args):
    if runner == "prism":
        prism_bin = request.getfixturevalue("prism_bin")
        options = PipelineOptions([f"--prism_location={prism_bin}", "--streaming",
                                   "--environment_type=LOOPBACK", "--prism_log_level=error"])
        p = beam.Pipeline(runner=PrismRunner(), options=options)
    else:
        raise ValueError(f"no TestStream runner {runner!r}")
    panes = (p | stream
             | beam.Map(lambda a: beam.window.TimestampedValue(a, a.published_at_ms / 1000))
             | AggregateEntities(window_seconds=HOUR, early_firing_seconds=None,
                                 **dict(dict(sliding_window_seconds=0), **count_args)))
    tumbling = (panes.panes | "OnlyTumbling" >> beam.Filter(lambda p: p.kind == "entity_counts")
                | "Summarise" >> beam.Map(pane_summary))
    return p, tumbling, panes.late_articles


def run_stream_panes(runner, request, stream, **count_args):
    p, panes, _ = run_stream(runner, request, stream, **count_args)
    return p, panes


@pytest.mark.parametrize("runner", RUNNERS)
def test_on_time_pane_per_window_when_watermark_passes(runner, request):
    stream = (Stream()
              .add_elements([article("a1", 10, "Russia", "Russia", "Korea"),
                             article("a2", 20, "Russia")])
              .add_elements([article("b1", HOUR + 5, "Korea")])
              .advance_watermark_to(HOUR)          # closes [0, 1h)
              .add_elements([article("b2", HOUR + 50, "Korea")])
              .advance_watermark_to_infinity())
    p, panes = run_stream_panes(runner, request, stream)
    assert_that(panes, equal_to([
        (0, "ON_TIME", 0, True, (("GPE:russia", 3, 2), ("GPE:korea", 1, 1))),
        (HOUR, "ON_TIME", 0, True, (("GPE:korea", 2, 2),)),
    ]))
    p.run().wait_until_finish()


@pytest.mark.parametrize("runner", RUNNERS)
def test_late_article_within_lateness_gives_final_late_pane(runner, request):
    stream = (Stream()
              .add_elements([article("a1", 10, "Russia")])
              .advance_watermark_to(HOUR + 60)     # past the end: ON_TIME fires
              .add_elements([article("late", 30, "Russia")])  # late, within 2h lateness
              .advance_watermark_to_infinity())
    p, panes = run_stream_panes(runner, request, stream, allowed_lateness_seconds=2 * HOUR)
    assert_that(panes, equal_to([
        (0, "ON_TIME", 0, False, (("GPE:russia", 1, 1),)),
        (0, "LATE", 1, True, (("GPE:russia", 2, 2),)),
    ]))
    p.run().wait_until_finish()


@pytest.mark.parametrize("runner", RUNNERS)
def test_article_later_than_lateness_is_not_counted(runner, request):
    stream = (Stream()
              .add_elements([article("a1", 10, "Russia")])
              .advance_watermark_to(3 * HOUR)      # window [0,1h) closed and expired
              .add_elements([article("too-late", 20, "Russia")])
              .advance_watermark_to_infinity())
    p, panes, too_late = run_stream(runner, request, stream)
    assert_that(panes, equal_to([(0, "ON_TIME", 0, True, (("GPE:russia", 1, 1),))]))
    # The window [0, 1h) closed when its boundary timer fired: the article is
    # routed out (one expired window; still counted in the running window).
    assert_that(too_late | beam.Map(lambda d: (d["article_id"], d["published_at"],
                                               d["expired_windows"], d["counted_windows"],
                                               d["late_by_at_least_ms"] >= 0)),
                equal_to([("too-late", 20_000, 1, 1, True)]), label="TooLate")
    p.run().wait_until_finish()
