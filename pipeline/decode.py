"""Stage 1: decode Kafka messages into ``Article`` records.

A message is a JSON object with the fields of ``schemas/article.avsc``
(``published_at`` in epoch milliseconds, or an ISO-8601 string with a time
zone). Bytes that are not valid UTF-8 are read as cp1252 (latin-1 for the
five bytes cp1252 leaves undefined), sequence by sequence, so the valid UTF-8
around them is kept: the article is kept, the fallback is counted in
``entitystream_decode_fallbacks_total{encoding}`` and logged with the
message's coordinates. Anything else becomes a dead letter: a dict shaped by
``schemas/dead_letter.avsc`` with a reason, the detail, and the message's
topic, partition and offset, on the ``dead_letters`` output. One bad message
never fails the bundle.

Each decoded article is stamped with its publication time: the event time of
everything downstream.
"""
import datetime as dt
import json
import logging

import apache_beam as beam
from apache_beam import pvalue
from prometheus_client import Counter

from pipeline.records import Article

__all__ = ["DecodeArticles", "decode_article", "decode_text", "DecodeError",
           "ARTICLES", "DEAD_LETTERS"]

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

_REQUIRED_STR = ("id", "title", "body")


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


def _parse_time_ms(value) -> int:
    if isinstance(value, bool):
        raise DecodeError("bad_type", "published_at must be epoch milliseconds or ISO-8601, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DecodeError("bad_timestamp", f"published_at {value!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise DecodeError("bad_timestamp", f"published_at {value!r} has no time zone")
        return int(parsed.timestamp() * 1000)
    raise DecodeError("bad_type", f"published_at must be epoch milliseconds or ISO-8601, got {type(value).__name__}")


def decode_article(value: bytes, *, topic: str, partition: int, offset: int) -> Article:
    """Decode one message value into an ``Article`` or raise ``DecodeError``."""
    if value is None:
        raise DecodeError("empty_message", "the message has no value (tombstone)")
    text, fallback = decode_text(value)
    if fallback:
        DECODE_FALLBACKS.labels(fallback).inc()
        _LOG.warning("%s/%d@%d is not valid UTF-8: decoded with %s", topic, partition,
                     offset, fallback)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError("invalid_json", f"message is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("not_an_object", f"expected a JSON object, got {type(doc).__name__}")
    for name in _REQUIRED_STR + ("published_at",):
        if name not in doc or doc[name] is None:
            raise DecodeError("missing_field", f"required field {name!r} is missing")
    for name in _REQUIRED_STR + ("source", "url", "language"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise DecodeError("bad_type", f"field {name!r} must be a string, got {type(doc[name]).__name__}")
    if not doc["id"].strip():
        raise DecodeError("missing_field", "field 'id' is empty")
    return Article(
        id=doc["id"], source=doc.get("source") or "unknown", url=doc.get("url"),
        title=doc["title"], body=doc["body"],
        published_at_ms=_parse_time_ms(doc["published_at"]),
        language=doc.get("language") or "en",
        topic=topic, partition=partition, offset=offset)


class _DecodeArticleFn(beam.DoFn):
    """KafkaRecord -> Article (main) | dead-letter dict (``dead_letters``)."""

    def process(self, record):
        labels = (record.topic, str(record.partition))
        CONSUMED.labels(*labels).inc()
        CONSUMED_BYTES.labels(*labels).inc(len(record.value or b""))
        try:
            article = decode_article(record.value, topic=record.topic,
                                     partition=record.partition, offset=record.offset)
        except DecodeError as exc:
            DEAD_LETTERED.labels(exc.reason).inc()
            _LOG.warning("dead letter from %s/%d@%d: %s", record.topic,
                         record.partition, record.offset, exc)
            yield pvalue.TaggedOutput(DEAD_LETTERS, {
                "reason": exc.reason, "detail": exc.detail,
                "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "key": record.key, "value": record.value,
                "timestamp_ms": record.timestamp_ms})
            return
        yield beam.window.TimestampedValue(article, article.published_at_ms / 1000.0)


class DecodeArticles(beam.PTransform):
    """``KafkaRecord`` -> (``articles``, ``dead_letters``).

    Example::

        decoded = records | 'DecodeArticles' >> DecodeArticles()
        decoded.articles, decoded.dead_letters
    """

    def expand(self, records):
        return records | "DecodeJson" >> beam.ParDo(_DecodeArticleFn()).with_outputs(
            DEAD_LETTERS, main=ARTICLES)
