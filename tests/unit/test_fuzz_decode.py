"""Property-based tests of the decode stage: on any bytes, and on JSON
documents of any shape (the article's fields holding any JSON value: huge,
negative, float and boolean numbers, odd strings, lone surrogates), the only
error ``decode_article`` raises is ``DecodeError``, and what it returns is an
article the later stages can use; ``decode_text`` never raises and leaves
valid UTF-8 as it is."""
import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from pipeline.decode import DecodeError, decode_article, decode_text

NOW_MS = 1_714_478_400_000            # 2024-04-30T12:00:00Z (date -u -d ... +%s)
DAY_MS = 86_400_000
YEAR_1_MS, YEAR_9999_END_MS = -62_135_596_800_000, 253_402_300_799_999   # date -u -d ... +%s
FIELDS = ("id", "source", "url", "title", "body", "published_at", "language")

# Any code point, lone surrogates included (st.text() leaves them out).
ANY_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]))
ODD_TEXT = st.one_of(st.text(ANY_CHAR, max_size=30),
                     st.sampled_from(["", " ", "\u3000\n", "\x00", "\ufeff", "\ud800", "\udfff",
                                      "\ud83d\ude00", "null", "1e309", "NaN", "\\u0000"]))
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-10 ** 30, max_value=10 ** 30),
    st.sampled_from([0, -1, 2 ** 63, -(2 ** 63) - 1, 10 ** 20, YEAR_1_MS, YEAR_1_MS - 1,
                     YEAR_9999_END_MS, YEAR_9999_END_MS + 1, NOW_MS + DAY_MS, NOW_MS + DAY_MS + 1]),
    st.floats(), st.booleans())
JSON = st.recursive(st.none() | NUMBERS | ODD_TEXT,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(ODD_TEXT, inner, max_size=3),
                    max_leaves=8)
OFFSETS = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=14)),
                           dt.timezone(dt.timedelta(hours=-12, minutes=-30))])
ISO_TIMES = st.one_of(
    st.builds(lambda t, zone: t.replace(tzinfo=zone).isoformat(), st.datetimes(), OFFSETS),
    st.datetimes().map(dt.datetime.isoformat),           # no zone: bad_timestamp
    st.builds(lambda t: t.isoformat() + "Z", st.datetimes()))
FIELD_VALUES = {
    "id": st.one_of(ODD_TEXT, JSON), "source": st.one_of(ODD_TEXT, JSON),
    "url": st.one_of(ODD_TEXT, JSON), "title": st.one_of(ODD_TEXT, JSON),
    "body": st.one_of(ODD_TEXT, JSON), "published_at": st.one_of(NUMBERS, ISO_TIMES, JSON),
    "language": st.one_of(ODD_TEXT, JSON)}
ARTICLE_LIKE = st.fixed_dictionaries({}, optional=FIELD_VALUES)


def encoded(doc, how):
    if how == "ascii":       # lone surrogates as \\udXXX escapes
        return json.dumps(doc).encode()
    # Raw UTF-8; lone surrogates as the three bytes a careless encoder writes,
    # which are not UTF-8 (they go through the cp1252 fallback).
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def decode_or_error(value, **limits):
    try:
        return decode_article(value, topic="t", partition=0, offset=1, now_ms=NOW_MS, **limits)
    except DecodeError as exc:
        assert exc.reason and exc.detail
        assert len(exc.detail) < 1_000       # a dead letter must stay small
        return exc


def check_article(a):
    """What the later stages count on: non-blank id and body, text they can
    write as UTF-8, a publication time Beam and Python can represent that is
    not ahead of the clock by more than a day."""
    assert a.id.strip() and a.body.strip() and isinstance(a.title, str)
    for text in (a.id, a.source, a.title, a.body, a.language, a.url or ""):
        text.encode("utf-8")
    assert isinstance(a.published_at_ms, int) and not isinstance(a.published_at_ms, bool)
    assert YEAR_1_MS <= a.published_at_ms <= NOW_MS + DAY_MS


@given(st.binary(max_size=500))
def test_any_bytes_decode_or_raise_decode_error(value):
    result = decode_or_error(value)
    if not isinstance(result, DecodeError):
        check_article(result)


@given(ARTICLE_LIKE, st.sampled_from(["ascii", "raw"]))
def test_any_article_shaped_json_decodes_or_raises_decode_error(doc, how):
    result = decode_or_error(encoded(doc, how))
    if not isinstance(result, DecodeError):
        check_article(result)
        if isinstance(doc["published_at"], int):
            assert result.published_at_ms == doc["published_at"]


@given(JSON, st.sampled_from(["ascii", "raw"]))
def test_any_json_decodes_or_raises_decode_error(doc, how):
    result = decode_or_error(encoded(doc, how))
    if not isinstance(result, DecodeError):
        check_article(result)


@given(ARTICLE_LIKE, st.integers(min_value=1, max_value=400))
def test_size_limit_is_checked_first(doc, limit):
    value = encoded(doc, "ascii")
    result = decode_or_error(value, max_message_bytes=limit)
    assert (isinstance(result, DecodeError) and result.reason == "too_large") == (len(value) > limit)


@given(st.binary(max_size=500))
def test_decode_text_never_raises_and_returns_text_writable_as_utf8(value):
    text, fallback = decode_text(value)
    assert isinstance(text, str) and fallback in (None, "cp1252", "latin-1")
    text.encode("utf-8")


@given(st.text())
def test_decode_text_leaves_valid_utf8_as_it_is(text):
    assert decode_text(text.encode("utf-8")) == (text, None)
