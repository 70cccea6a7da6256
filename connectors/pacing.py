"""When to send each article of a paced replay: the schedule, as a pure function.

``schedule(articles, ...)`` yields ``Send(at_s, article)``: ``at_s`` is the send time
in seconds after the replay starts, ``article`` the message to send (its
``published_at`` moved when looping or rebasing). Nothing here reads a clock or
sleeps: ``connectors.replay.publish_paced`` does, thinly, so the rules are tested
with hand-computed times (``tests/unit/test_pacing.py``).

- ``speed=X``: X seconds of publication time per second of wall clock (3600: an
  hour of the feed each second). Article i goes at ``(published_i - published_0) / X``.
- ``rate=N``: N articles per second, evenly: article i goes at ``i / N``.
- neither: every article at 0 (as fast as the producer goes).
- ``loop=True``: the articles again and again, without end; cycle k's publication
  times are moved forward by k spans (the span: first to last publication time,
  plus the mean gap between articles, so cycles follow each other like the
  articles within one) and its ids get ``~c<k>`` (``reuters-12~c2``), so the
  pipeline does not drop them as duplicates. Send times go on across cycles.
- ``rebase_to_ms=T``: publication times shifted so that the first article's is T
  (the wall clock at start, for live-like runs); the gaps between them are kept.

The input order is kept (``publish`` sorts by publication time first); with
``speed``, an article published before the one sent ahead of it goes at once
after it: send times never go back.
"""
import dataclasses
import itertools
import math

__all__ = ["Send", "schedule", "cycle_span_ms"]


@dataclasses.dataclass(frozen=True)
class Send:
    """One article to send ``at_s`` seconds after the replay started."""
    at_s: float
    article: dict


def _check(name, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or value <= 0):
        msg = f"{name} must be a number > 0, got {value!r}"
        raise ValueError(msg)


def cycle_span_ms(articles) -> int:
    """How far each cycle of a loop moves publication times: first to last, plus the
    mean gap between consecutive articles (one second for a single article or when
    all share one time)."""
    times = [a["published_at"] for a in articles]
    if not times:
        return 0
    spread = max(times) - min(times)
    gap = spread // (len(times) - 1) if len(times) > 1 else 0
    return spread + (gap or 1000)


def schedule(articles, *, speed=None, rate=None, loop=False, rebase_to_ms=None):
    """``Send`` for each article (for ever when ``loop``); see the module docstring.

    Args (keyword-only):
      speed: seconds of publication time per wall-clock second (None: not paced by time).
      rate: articles per second (None: not paced by count). Not both.
      loop: repeat the articles, each cycle a span later with fresh ids (default False).
      rebase_to_ms: the first article's new publication time, epoch ms (default None).
    """
    _check("speed", speed)
    _check("rate", rate)
    if speed is not None and rate is not None:
        raise ValueError(f"give speed or rate, not both (speed={speed!r}, rate={rate!r})")
    articles = list(articles)
    if not articles:
        return
    first_ms = articles[0]["published_at"]
    shift_ms = 0 if rebase_to_ms is None else rebase_to_ms - first_ms
    span_ms = cycle_span_ms(articles)
    last_at = 0.0
    for cycle in itertools.count() if loop else (0,):
        for index, article in enumerate(articles):
            moved_ms = article["published_at"] + cycle * span_ms
            if speed is not None:
                at = max(last_at, (moved_ms - first_ms) / 1000 / speed)
            elif rate is not None:
                at = (cycle * len(articles) + index) / rate
            else:
                at = 0.0
            last_at = at
            sent = dict(article, published_at=moved_ms + shift_ms)
            if cycle:
                sent["id"] = f"{article['id']}~c{cycle}"
            yield Send(at, sent)
