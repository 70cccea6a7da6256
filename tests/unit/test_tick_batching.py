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


class Cell:
    """A state cell, as the DoFn sees it within one process."""

    def __init__(self, value=None):
        self.value = value

    def read(self):
        return self.value

    def write(self, value):
        self.value = value


class Timer:
    def __init__(self):
        self.sets = []

    def set(self, ts):
        self.sets.append(ts)


def streaming_fn_with_window(newest_ms, early_firing_seconds=1.0):
    """A streaming pane DoFn (bounded: ``early_firing_seconds=None``) holding
    one open hourly window [T0, T0 + 1 h) with one article counted, and the
    newest counted article at ``newest_ms``."""
    from pipeline.aggregate import _LIVE, _STARTED
    f = _EmitPanesFn([WindowSpec.tumbling(3600)], early_firing_seconds, 0, 10,
                     state_in_process=True)
    windows = _OpenWindows()
    windows[("tumbling", T0, T0 + HOUR)] = [
        f._mentions.add_input(f._mentions.create_accumulator(),
                              {"GPE:russia": (1, "GPE", {"Russia": 1})}),
        f._cooc.create(), True, False, 0, {"a1"}]
    windows.newest_ms = newest_ms
    windows.ledger, windows.pending = None, {}
    _LIVE[f._step_token] = (1, windows)
    _STARTED.add(f._step_token)
    return f, windows


def fire_tick(f, at_ms, timers):
    return list(f.on_tick(Timestamp(micros=(at_ms - 1) * 1000), Cell(), Cell(1),
                          timers["tick"], timers["save"], timers["close"]))


def test_a_boundary_no_counted_article_has_passed_closes_after_the_grace():
    # The watermark passed T0 + 1 h, but the newest article counted is older:
    # articles read before the boundary may still be on their way.
    f, windows = streaming_fn_with_window(newest_ms=T0 + HOUR - 60_000)
    timers = {"tick": Timer(), "save": Timer(), "close": Timer()}
    assert fire_tick(f, T0 + HOUR, timers) == []
    assert windows.closed_through == 0 and len(timers["close"].sets) == 1
    # A late-looking article arrives in the meantime: still counted in its window.
    assert ("tumbling", T0, T0 + HOUR) in windows
    panes = list(f.on_close(Cell(), Cell(2), timers["tick"], timers["save"], timers["close"]))
    on_time = [p for p in panes if p.pane_timing == "ON_TIME"]
    assert [(p.kind, p.window_start_ms, p.is_final) for p in on_time] == [
        ("entity_counts", T0, True), ("cooccurrence", T0, True)]
    assert windows.closed_through == T0 + HOUR and not windows


def test_a_boundary_a_counted_article_has_passed_closes_at_once():
    f, windows = streaming_fn_with_window(newest_ms=T0 + HOUR + 5_000)
    timers = {"tick": Timer(), "save": Timer(), "close": Timer()}
    panes = fire_tick(f, T0 + HOUR, timers)
    assert {(p.kind, p.pane_timing) for p in panes} == {
        ("entity_counts", "ON_TIME"), ("cooccurrence", "ON_TIME")}
    assert timers["close"].sets == [] and windows.closed_through == T0 + HOUR


def test_bounded_run_fires_the_tick_again_before_closing_an_unseen_boundary():
    # No processing-time timers in a bounded run: the tick is set again at the
    # same time, CLOSE_RETRIES (3) times, then the window closes (the end of
    # the input passes every boundary and no article follows).
    from pipeline.aggregate import CLOSE_RETRIES
    f, windows = streaming_fn_with_window(newest_ms=T0 + HOUR - 60_000,
                                          early_firing_seconds=None)
    timers = {"tick": Timer(), "save": Timer(), "close": Timer()}
    fired = Timestamp(micros=(T0 + HOUR - 1) * 1000)
    for _ in range(3):
        assert fire_tick(f, T0 + HOUR, timers) == []
    assert timers["tick"].sets == [fired] * 3 and CLOSE_RETRIES == 3
    panes = fire_tick(f, T0 + HOUR, timers)
    assert {(p.kind, p.pane_timing) for p in panes} == {
        ("entity_counts", "ON_TIME"), ("cooccurrence", "ON_TIME")}
    assert timers["close"].sets == [] and windows.closed_through == T0 + HOUR


def test_bounded_run_keeps_a_close_waiting_while_the_ledger_has_a_gap():
    from pipeline.ledger import SourceLedger
    f, windows = streaming_fn_with_window(newest_ms=T0 + HOUR + 5_000,
                                          early_firing_seconds=None)
    windows.ledger = SourceLedger()
    windows.ledger.settle(SourcePosition("articles", 0, 0, -1, True))
    windows.ledger.settle(SourcePosition("articles", 0, 2, 1))  # offset 1 on its way
    timers = {"tick": Timer(), "save": Timer(), "close": Timer()}
    for _ in range(10):  # beyond CLOSE_RETRIES: the gap keeps it open
        assert fire_tick(f, T0 + HOUR, timers) == []
    assert ("tumbling", T0, T0 + HOUR) in windows and windows.closed_through == 0
    windows.ledger.settle(SourcePosition("articles", 0, 1, 0))
    assert len(fire_tick(f, T0 + HOUR, timers)) == 2 and not windows


def test_streaming_close_timer_waits_again_while_the_ledger_has_a_gap():
    from pipeline.ledger import SourceLedger
    f, windows = streaming_fn_with_window(newest_ms=T0 + HOUR + 5_000)
    windows.ledger = SourceLedger()
    windows.ledger.settle(SourcePosition("articles", 0, 2, 1))  # 0 and 1 on their way
    timers = {"tick": Timer(), "save": Timer(), "close": Timer()}
    assert fire_tick(f, T0 + HOUR, timers) == [] and len(timers["close"].sets) == 1
    close = list(f.on_close(Cell(), Cell(2), timers["tick"], timers["save"], timers["close"]))
    assert close == [] and len(timers["close"].sets) == 2       # armed again
    windows.ledger.settle(SourcePosition("articles", 0, 0, -1, True))
    windows.ledger.settle(SourcePosition("articles", 0, 1, 0))
    close = list(f.on_close(Cell(), Cell(3), timers["tick"], timers["save"], timers["close"]))
    assert len(close) == 2 and windows.closed_through == T0 + HOUR
