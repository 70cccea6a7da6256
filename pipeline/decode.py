"""Stage 1: decode Kafka messages into ``Article`` records.

A message is a JSON object with the fields of ``schemas/article.avsc``
(``published_at`` in epoch milliseconds, or an ISO-8601 string with a time
zone). Bytes that are not valid UTF-8 are read as cp1252 (latin-1 for the
five bytes cp1252 leaves undefined), sequence by sequence, so the valid UTF-8
around them is kept: the article is kept, the fallback is counted in
``entitystream_decode_fallbacks_total{encoding}`` and logged with the
message's coordinates. A JSON escape of a lone UTF-16 surrogate (``\\ud800``
not part of a pair) is text no UTF-8 writer can encode (the Avro files, the
dead-letter topic): each is replaced by U+FFFD, and the article is kept and
counted with ``encoding="replacement"``.

Anything else becomes a dead letter: a dict shaped by
``schemas/dead_letter.avsc`` with a reason, the detail, and the message's
topic, partition and offset, on the ``dead_letters`` output. One bad message
never fails the bundle. The reasons:

- ``empty_message``: the message has no value (a tombstone).
- ``too_large``: the value is longer than ``max_message_bytes`` (default
  1,000,000, as spaCy's ``nlp.max_length`` is 1,000,000 characters); checked
  before anything is decoded, so a huge message costs nothing.
- ``invalid_json``: not JSON (also JSON nested too deep to parse, or a number
  with more digits than Python converts).
- ``not_an_object``: JSON, but not an object.
- ``missing_field``: ``id``, ``title``, ``body`` or ``published_at`` absent
  or null, or ``id`` blank.
- ``bad_type``: a field of the wrong JSON type (strings; ``published_at`` an
  integer or a string).
- ``empty_body``: ``body`` empty or only whitespace: nothing to extract.
- ``bad_timestamp``: ``published_at`` not ISO-8601, without a time zone, or
  outside the years 1 to 9999 (what Python and Beam can represent). Old is
  fine: the Reuters corpus is from 1987.
- ``future_timestamp``: ``published_at`` more than ``max_future_seconds``
  (default 86,400) ahead of the wall clock: one such article would move the
  event-time watermark ahead and close every open window.

A dead letter keeps the message's key and at most ``dead_letter_value_bytes``
(default 65,536) of its value, with ``value_size`` (the original length) and
``value_truncated``: published as JSON (each byte that is not printable ASCII
escaped in up to 6), it fits in Kafka's default 1 MB message limit. A key
longer than that is cut too, and the detail says so.

Each decoded article is stamped with its publication time: the event time of
everything downstream.
"""
import datetime as dt
import json
import logging
import math
import re
import time

import apache_beam as beam
from apache_beam import pvalue
from prometheus_client import Counter

from pipeline.ledger import SourcePosition
from pipeline.records import Article

__all__ = ["DecodeArticles", "decode_article", "decode_text", "parse_time_ms", "DecodeError",
           "ARTICLES", "DEAD_LETTERS", "DEFAULT_MAX_MESSAGE_BYTES",
           "DEFAULT_MAX_FUTURE_SECONDS", "DEFAULT_DEAD_LETTER_VALUE_BYTES"]

_LOG = logging.getLogger(__name__)

CONSUMED = Counter("entitystream_articles_consumed",
                   "Messages read from the article topics (valid or not).",
                   ["topic", "partition"])
CONSUMED_BYTES = Counter("entitystream_consumed_bytes",
                         "Bytes of message values read from the article topics.",
                         ["topic", "partition"])
DEAD_LETTERED = Counter("entitystream_dead_letters",
                        "Messages sent to the dead-letter topic, by reason.",
                        ["reason"])

DECODE_FALLBACKS = Counter("entitystream_decode_fallbacks",
                           "Messages with bytes that are not UTF-8, decoded with a fallback "
                           "encoding and kept, by that encoding.", ["encoding"])

ARTICLES = "articles"
DEAD_LETTERS = "dead_letters"

# spaCy's nlp.max_length is 1,000,000 characters; a UTF-8 character is at least a byte.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
DEFAULT_MAX_FUTURE_SECONDS = 86_400
# 64 KiB, escaped at worst 6 bytes a byte in the JSON dead letter, twice (key and
# value): under Kafka's default 1 MB message limit.
DEFAULT_DEAD_LETTER_VALUE_BYTES = 65_536

_REQUIRED_STR = ("id", "title", "body")
_TEXT_FIELDS = ("id", "source", "url", "title", "body", "language")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_MS = dt.timedelta(milliseconds=1)
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: Python's datetime range, well
# inside Beam's (int64 microseconds, about 292,000 years either side of 1970).
_MIN_TIME_MS = -62_135_596_800_000
_MAX_TIME_MS = 253_402_300_799_999
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_CHARS = 80


class DecodeError(ValueError):
    """A message that is not a valid article; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_text(value: bytes):
    """``(text, fallback)``: ``value`` as UTF-8, each invalid byte read as cp1252 (else
    latin-1); ``fallback`` is None, ``"cp1252"`` or ``"latin-1"`` (when any byte needed it)."""
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    parts, used, rest = [], set(), value
    while rest:
        try:
            parts.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            parts.append(rest[:exc.start].decode("utf-8"))
            for byte in rest[exc.start:exc.end]:
                try:
                    parts.append(bytes([byte]).decode("cp1252"))
                    used.add("cp1252")
                except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d
                    parts.append(bytes([byte]).decode("latin-1"))
                    used.add("latin-1")
            rest = rest[exc.end:]
    text = "".join(parts)
    return text, "latin-1" if "latin-1" in used else "cp1252"


def _shown(value) -> str:
    """``repr(value)``, cut: a detail must stay short whatever the message holds."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text):,} chars)"


def parse_time_ms(value) -> int:
    """``published_at`` (epoch milliseconds, or ISO-8601 with a zone) in epoch milliseconds;
    raises ``DecodeError`` (``bad_type`` or ``bad_timestamp``) naming the value."""
    if isinstance(value, bool):
        raise DecodeError("bad_type", "published_at must be epoch milliseconds or ISO-8601, got a boolean")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DecodeError("bad_timestamp", f"published_at {_shown(value)} is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise DecodeError("bad_timestamp", f"published_at {_shown(value)} has no time zone")
        # Exact integer arithmetic: timestamp() goes through a float.
        ms = (parsed - _EPOCH) // _ONE_MS
    else:
        raise DecodeError("bad_type", "published_at must be epoch milliseconds or ISO-8601, "
                          f"got {type(value).__name__}")
    if not _MIN_TIME_MS <= ms <= _MAX_TIME_MS:
        raise DecodeError("bad_timestamp", f"published_at {_shown(value)} is outside the years "
                          "1 to 9999 (epoch milliseconds from -62135596800000 to 253402300799999)")
    return ms


def _iso(ms: int) -> str:
    return (_EPOCH + ms * _ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_not_future(ms: int, max_future_seconds, now_ms) -> None:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ahead_ms = ms - now_ms
    if ahead_ms > max_future_seconds * 1000:
        msg = (f"published_at {_iso(ms)} is {ahead_ms / 1000:,.0f} s ahead of the clock "
               f"({_iso(now_ms)}), more than max_future_seconds={max_future_seconds:,}: it would "
               "move the event-time watermark ahead and close every open window; if the clocks "
               "are right, raise --max-future-seconds")
        raise DecodeError("future_timestamp", msg)


def _without_lone_surrogates(doc, topic, partition, offset) -> None:
    """Replace lone surrogates in ``doc``'s text fields by U+FFFD, in place, counted."""
    replaced = [name for name in _TEXT_FIELDS
                if isinstance(doc.get(name), str) and _LONE_SURROGATE.search(doc[name])]
    for name in replaced:
        doc[name] = _LONE_SURROGATE.sub("\ufffd", doc[name])
    if replaced:
        DECODE_FALLBACKS.labels("replacement").inc()
        _LOG.warning("%s/%d@%d has lone surrogates in %s: replaced by U+FFFD", topic,
                     partition, offset, ", ".join(replaced))


def decode_article(value: bytes, *, topic: str, partition: int, offset: int,
                   max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                   max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS,
                   now_ms: int = None) -> Article:
    """Decode one message value into an ``Article`` or raise ``DecodeError``.

    Args:
      value: the Kafka message value (None for a tombstone).
      topic, partition, offset: where it was read, kept on the article.
      max_message_bytes: a longer value is ``too_large`` (default 1,000,000).
      max_future_seconds: a ``published_at`` further ahead of ``now_ms`` is a
        ``future_timestamp`` (default 86,400).
      now_ms: the wall clock in epoch milliseconds (None: ``time.time()``).
    """
    if value is None:
        raise DecodeError("empty_message", "the message has no value (tombstone)")
    if len(value) > max_message_bytes:
        msg = (f"the message value is {len(value):,} bytes, over the limit of "
               f"{max_message_bytes:,} bytes (spaCy reads at most 1,000,000 characters); "
               "raise it with --max-message-bytes")
        raise DecodeError("too_large", msg)
    text, fallback = decode_text(value)
    if fallback:
        DECODE_FALLBACKS.labels(fallback).inc()
        _LOG.warning("%s/%d@%d is not valid UTF-8: decoded with %s", topic, partition,
                     offset, fallback)
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise DecodeError("invalid_json", f"message is not JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("invalid_json", "message is JSON nested too deep to parse") from None
    if not isinstance(doc, dict):
        raise DecodeError("not_an_object", f"expected a JSON object, got {type(doc).__name__}")
    for name in _REQUIRED_STR + ("published_at",):
        if name not in doc or doc[name] is None:
            raise DecodeError("missing_field", f"required field {name!r} is missing")
    for name in _TEXT_FIELDS:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise DecodeError("bad_type", f"field {name!r} must be a string, got {type(doc[name]).__name__}")
    if not doc["id"].strip():
        raise DecodeError("missing_field", "field 'id' is empty")
    if not doc["body"].strip():
        raise DecodeError("empty_body", f"article {_shown(doc['id'])} has an empty body")
    published_at_ms = parse_time_ms(doc["published_at"])
    _check_not_future(published_at_ms, max_future_seconds, now_ms)
    _without_lone_surrogates(doc, topic, partition, offset)
    return Article(
        id=doc["id"], source=doc.get("source") or "unknown", url=doc.get("url"),
        title=doc["title"], body=doc["body"], published_at_ms=published_at_ms,
        language=doc.get("language") or "en",
        topic=topic, partition=partition, offset=offset)


def _cut(data, limit):
    """``(data[:limit], len(data), whether it was cut)``; None stays None."""
    if data is None:
        return None, None, False
    return data[:limit], len(data), len(data) > limit


class _DecodeArticleFn(beam.DoFn):
    """KafkaRecord -> Article (main) | dead-letter dict (``dead_letters``)."""

    def __init__(self, max_message_bytes, max_future_seconds, dead_letter_value_bytes):
        self._max_message_bytes = max_message_bytes
        self._max_future_seconds = max_future_seconds
        self._dead_letter_value_bytes = dead_letter_value_bytes

    def process(self, record):
        labels = (record.topic, str(record.partition))
        CONSUMED.labels(*labels).inc()
        CONSUMED_BYTES.labels(*labels).inc(len(record.value or b""))
        try:
            article = decode_article(record.value, topic=record.topic,
                                     partition=record.partition, offset=record.offset,
                                     max_message_bytes=self._max_message_bytes,
                                     max_future_seconds=self._max_future_seconds)
        except DecodeError as exc:
            DEAD_LETTERED.labels(exc.reason).inc()
            _LOG.warning("dead letter from %s/%d@%d: %s", record.topic,
                         record.partition, record.offset, exc)
            value, value_size, value_truncated = _cut(record.value, self._dead_letter_value_bytes)
            key, key_size, key_truncated = _cut(record.key, self._dead_letter_value_bytes)
            detail = exc.detail
            if key_truncated:
                detail += f" (the key is cut to its first {len(key):,} of {key_size:,} bytes)"
            yield pvalue.TaggedOutput(DEAD_LETTERS, {
                "reason": exc.reason, "detail": detail,
                "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "key": key, "value": value,
                "value_size": value_size, "value_truncated": value_truncated,
                "timestamp_ms": record.timestamp_ms,
                # Where it was read, for the aggregation's ledger (not published).
                "_position": SourcePosition(record.topic, record.partition, record.offset,
                                            record.prev_offset, record.starts_run,
                                            record.watermark_ms)})
            return
        article = article._replace(prev_offset=record.prev_offset, starts_run=record.starts_run,
                                   watermark_ms=record.watermark_ms)
        yield beam.window.TimestampedValue(article, article.published_at_ms / 1000.0)


def _check_setting(name, value, minimum, kinds=(int,)):
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        kind = "an integer" if kinds == (int,) else "a number"
        msg = f"DecodeArticles: {name} must be {kind} >= {minimum:,}, got {value!r}"
        raise ValueError(msg)


class DecodeArticles(beam.PTransform):
    """``KafkaRecord`` -> (``articles``, ``dead_letters``).

    Args (keyword-only):
      max_message_bytes: a message value longer than this is a ``too_large``
        dead letter, not decoded (default 1,000,000; ``--max-message-bytes``).
      max_future_seconds: an article published further than this ahead of the
        wall clock is a ``future_timestamp`` dead letter (default 86,400;
        ``--max-future-seconds``).
      dead_letter_value_bytes: a dead letter keeps at most this many bytes of
        the value (and of the key), with ``value_size`` and
        ``value_truncated`` (default 65,536; ``--dead-letter-value-bytes``).

    Example::

        decoded = records | 'DecodeArticles' >> DecodeArticles()
        decoded.articles, decoded.dead_letters
    """

    def __init__(self, *, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                 max_future_seconds=DEFAULT_MAX_FUTURE_SECONDS,
                 dead_letter_value_bytes=DEFAULT_DEAD_LETTER_VALUE_BYTES):
        super().__init__()
        _check_setting("max_message_bytes", max_message_bytes, 1)
        _check_setting("max_future_seconds", max_future_seconds, 0, (int, float))
        _check_setting("dead_letter_value_bytes", dead_letter_value_bytes, 0)
        self._max_message_bytes = max_message_bytes
        self._max_future_seconds = max_future_seconds
        self._dead_letter_value_bytes = dead_letter_value_bytes

    def expand(self, records):
        return records | "DecodeJson" >> beam.ParDo(_DecodeArticleFn(
            self._max_message_bytes, self._max_future_seconds,
            self._dead_letter_value_bytes)).with_outputs(DEAD_LETTERS, main=ARTICLES)
