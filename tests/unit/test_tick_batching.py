"""How the aggregation orders its input and when a tick closes windows
(pipeline/aggregate.py ``_ordered``, pipeline/aggregation_state.py
``close_action``; docs/runner-notes.md PRISM-6 and PRISM-7). Batching the
tick itself is tested on the book (tests/unit/test_window_book.py).
Expected values are worked out by hand."""
from typing import NamedTuple

from apache_beam.utils.timestamp import Timestamp

from pipeline.aggregate import _ordered
from pipeline.aggregation_state import (AggregationState, CLOSE_RETRIES, GAP_RETRIES,
                                        close_action)
from pipeline.ledger import SourcePosition
from pipeline.records import ArticleEntities, Mention
from pipeline.tallies import tally_article
from pipeline.window_book import WindowBook
from pipeline.windows import WindowSpec

HOUR = 3_600_000
T0 = 1_000 * HOUR  # a whole hour, in ms since the epoch


def position(watermark_ms):
    return SourcePosition("articles", 0, 7, 6, False, watermark_ms)


def test_input_is_stamped_with_the_reader_watermark_when_that_is_earlier():
    keyed = ("all", "x")
    out = _ordered(keyed, position(T0), Timestamp(micros=(T0 + 90_000) * 1000))
    assert out.value == keyed and out.timestamp == Timestamp(micros=T0 * 1000)


def test_input_is_never_stamped_later_than_its_own_time():
    keyed = ("all", "x")
    # A late article (published before the reader's watermark) keeps its time.
    assert _ordered(keyed, position(T0), Timestamp(micros=(T0 - 1) * 1000)) is keyed
    # No watermark yet (the reader's first call), or not read from Kafka.
    assert _ordered(keyed, position(None), Timestamp(micros=T0 * 1000)) is keyed
    assert _ordered(keyed, None, Timestamp(micros=T0 * 1000)) is keyed


class Art(NamedTuple):
    article_id: str
    published_ms: int
    tally: dict
    cooc: object


def state_with_newest(newest_ms):
    """One hourly window [T0, T0 + 1 h) open, the newest article counted at ``newest_ms``."""
    from pipeline.cooccurrence import article_cooccurrence
    book = WindowBook(specs=[WindowSpec.tumbling(3600)], allowed_lateness_ms=0,
                      early_firing_ms=None, top_k_pairs=10)
    mentions = (Mention("GPE:russia", "Russia", "GPE", 0),)
    book.add(Art("a1", T0 + 1, tally_article(ArticleEntities("a1", T0 + 1, mentions)),
                 article_cooccurrence(mentions)), newest_ms)
    book.add(Art("a2", newest_ms, {}, article_cooccurrence(())), newest_ms)
    return AggregationState(book)


def test_a_boundary_no_counted_article_has_passed_waits_in_a_stream():
    # The watermark passed T0 + 1 h, but the newest article counted is older:
    # articles read before the boundary may still be on their way.
    state = state_with_newest(T0 + HOUR - 60_000)
    assert close_action(state, T0 + HOUR, streaming=True) == "defer"


def test_a_boundary_a_counted_article_has_passed_closes_at_once():
    state = state_with_newest(T0 + HOUR + 5_000)
    assert close_action(state, T0 + HOUR, streaming=True) == "close"
    assert close_action(state, T0 + HOUR, streaming=False) == "close"


def test_bounded_run_fires_the_tick_again_then_closes_an_unseen_boundary():
    # No processing-time timers in a bounded run: the tick fires again,
    # CLOSE_RETRIES (3) times, then the window closes (the end of the input
    # passes every boundary and no article follows).
    state = state_with_newest(T0 + HOUR - 60_000)
    actions = []
    for _ in range(4):
        actions.append(close_action(state, T0 + HOUR, streaming=False))
        state.timers.close_retries += actions[-1] == "retry"
    assert actions == ["retry", "retry", "retry", "close"] and CLOSE_RETRIES == 3


def test_a_gap_in_the_ledger_keeps_a_close_waiting_beyond_the_close_retries():
    state = state_with_newest(T0 + HOUR + 5_000)
    state.ledger.settle(SourcePosition("articles", 0, 0, -1, True))
    state.ledger.settle(SourcePosition("articles", 0, 2, 1))   # offset 1 on its way
    state.timers.close_retries = CLOSE_RETRIES + 5
    assert close_action(state, T0 + HOUR, streaming=False) == "retry"
    assert close_action(state, T0 + HOUR, streaming=True) == "defer"
    state.timers.close_retries = GAP_RETRIES                   # bounded: not forever
    assert close_action(state, T0 + HOUR, streaming=False) == "close"
    state.ledger.settle(SourcePosition("articles", 0, 1, 0))   # the gap fills
    state.timers.close_retries = 0
    assert close_action(state, T0 + HOUR, streaming=True) == "close"
