"""How the aggregation orders its input and times its window-closing timer
(pipeline/aggregate.py ``_ordered`` and ``_EmitPanesFn._tick_at``): a replay
must not cost one timer bundle per window boundary, and no window may close
before the watermark passes its end. Expected values are worked out by hand."""
from apache_beam.utils.timestamp import Timestamp

from pipeline.aggregate import _EmitPanesFn, _OpenWindows, _ordered
from pipeline.ledger import SourcePosition
from pipeline.windows import WindowSpec

HOUR = 3_600_000
T0 = 1_000 * HOUR  # a whole hour, in ms since the epoch


def fn(*specs):
    return _EmitPanesFn(specs, None, 0, 10)


def windows_with_newest(newest_ms):
    windows = _OpenWindows()
    windows.newest_ms = newest_ms
    return windows


def test_live_feed_keeps_its_timer_at_the_end_of_the_current_window():
    # Newest article 30 min into the hour; the open window ends at T0 + 1 h.
    f = fn(WindowSpec.tumbling(3600))
    assert f._tick_at(windows_with_newest(T0 + HOUR // 2), T0 + HOUR) == T0 + HOUR


def test_live_feed_just_past_a_boundary_closes_that_window_at_its_end():
    # The first article of the new hour arrived before the watermark passed
    # T0 + 1 h: the timer stays at T0 + 1 h (the floor of the newest), not later.
    f = fn(WindowSpec.tumbling(3600))
    assert f._tick_at(windows_with_newest(T0 + HOUR + 500), T0 + HOUR) == T0 + HOUR


def test_replay_closes_every_passed_boundary_with_one_timer():
    # Articles counted up to 5 h 20 min past the earliest open window's end:
    # one timer at the last boundary before the newest article (T0 + 6 h).
    f = fn(WindowSpec.tumbling(3600), WindowSpec.sliding(86400, 3600), WindowSpec.running())
    newest = T0 + 6 * HOUR + 20 * 60_000
    assert f._tick_at(windows_with_newest(newest), T0 + HOUR) == T0 + 6 * HOUR


def test_boundaries_follow_the_finest_period_of_the_windows():
    # 30-min tumbling windows and hourly sliding ones: boundaries every 30 min.
    f = fn(WindowSpec.tumbling(1800), WindowSpec.sliding(7200, 3600))
    newest = T0 + 2 * HOUR + 45 * 60_000
    assert f._tick_at(windows_with_newest(newest), T0) == T0 + 2 * HOUR + 30 * 60_000


def test_never_earlier_than_the_earliest_target():
    # A window with allowed lateness: its target (end + 10 min) is past the
    # newest article's boundary, so the timer stays at the target.
    f = fn(WindowSpec.tumbling(3600))
    target = T0 + HOUR + 10 * 60_000
    assert f._tick_at(windows_with_newest(T0 + HOUR + 5 * 60_000), target) == target
    assert f._tick_at(windows_with_newest(None), target) == target


def test_running_total_only_has_no_boundaries_to_batch():
    f = fn(WindowSpec.running())
    assert f._tick_at(windows_with_newest(T0 + 5 * HOUR), T0) == T0


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
