"""decode_article: valid messages, text that is not UTF-8, and every dead-letter reason."""
import json
import pathlib

import pytest

from prometheus_client import REGISTRY

from pipeline.decode import DecodeError, decode_article, decode_text

GOOD = {"id": "a1", "source": "s", "url": None, "title": "T", "body": "B",
        "published_at": 1714478400000, "language": "en"}


def decode(doc):
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode_article(value, topic="t", partition=2, offset=7)


def test_valid_article_keeps_fields_and_coordinates():
    a = decode(GOOD)
    assert (a.id, a.title, a.body, a.published_at_ms) == ("a1", "T", "B", 1714478400000)
    assert (a.topic, a.partition, a.offset) == ("t", 2, 7)


def test_iso_timestamp_with_zone():
    # 2024-04-30T12:00:00Z = 1714478400 s since the epoch (date -d ... +%s).
    a = decode(dict(GOOD, published_at="2024-04-30T12:00:00Z"))
    assert a.published_at_ms == 1714478400000


def test_missing_optional_fields_get_defaults():
    a = decode({"id": "x", "title": "T", "body": "B", "published_at": 0})
    assert (a.source, a.url, a.language) == ("unknown", None, "en")


@pytest.mark.parametrize("value, reason", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe\x00", "invalid_json"),  # not UTF-8 either: read as cp1252, then not JSON
    (b"[1, 2]", "not_an_object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "body"}).encode(), "missing_field"),
    (json.dumps(dict(GOOD, id="  ")).encode(), "missing_field"),
    (json.dumps(dict(GOOD, title=5)).encode(), "bad_type"),
    (json.dumps(dict(GOOD, published_at="yesterday")).encode(), "bad_timestamp"),
    (json.dumps(dict(GOOD, published_at="2024-04-30T12:00:00")).encode(), "bad_timestamp"),
    (json.dumps(dict(GOOD, published_at=True)).encode(), "bad_type"),
    (json.dumps(dict(GOOD, body="")).encode(), "empty_body"),
    (json.dumps(dict(GOOD, body=" \n\t\u00a0\u3000 ")).encode(), "empty_body"),
    # Python's int() refuses more than 4,300 digits: json.loads raises a plain ValueError.
    (b'{"id": "a1", "title": "T", "body": "B", "published_at": 1' + b"0" * 5000 + b"}",
     "invalid_json"),
    # Nested deeper than Python's recursion limit: json.loads raises RecursionError.
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
])
def test_bad_messages_raise_with_reason(value, reason):
    with pytest.raises(DecodeError) as info:
        decode(value)
    assert info.value.reason == reason


def test_tombstone_is_a_dead_letter():
    with pytest.raises(DecodeError) as info:
        decode_article(None, topic="t", partition=0, offset=0)
    assert info.value.reason == "empty_message"


BBC = pathlib.Path(__file__).resolve().parents[3] / "shared" / "corpora" / "bbc"


def fallbacks(encoding):
    return REGISTRY.get_sample_value("entitystream_decode_fallbacks_total",
                                     {"encoding": encoding}) or 0.0


def json_message_with_raw_body(body: bytes) -> bytes:
    """A JSON article whose body is ``body`` as it is, bytes not decoded."""
    escaped = (body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
               .replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t"))
    head = json.dumps(dict(GOOD, body="@BODY@")).encode()
    return head.replace(b"@BODY@", escaped)


@pytest.mark.skipif(not (BBC / "sport" / "199.txt").is_file(),
                    reason=f"BBC corpus not found at {BBC} (../shared/corpora)")
def test_latin1_bbc_article_is_kept_and_counted():
    raw = (BBC / "sport" / "199.txt").read_bytes()
    # Hand-checked: the file is UTF-8-invalid at byte 0xA3 ("a \xa315.8m signing"), the
    # pound sign in Latin-1 and cp1252; it is the only byte above 0x7F.
    assert b"a \xa315.8m signing from Parma" in raw
    before = fallbacks("cp1252")
    a = decode(json_message_with_raw_body(raw))
    assert "a \u00a315.8m signing from Parma" in a.body
    assert a.body.startswith("Chelsea sack Mutu\n\nChelsea have sacked Adrian Mutu")
    assert fallbacks("cp1252") == before + 1


def test_fallback_keeps_valid_utf8_around_a_bad_byte():
    # "Korea\u2019s" in UTF-8 (E2 80 99), then 0x93/0x94: cp1252 curly double quotes.
    text, used = decode_text("Korea\u2019s ".encode() + b"\x93bridge\x94")
    assert (text, used) == ("Korea\u2019s \u201cbridge\u201d", "cp1252")


def test_byte_undefined_in_cp1252_falls_back_to_latin1():
    # 0x81 has no cp1252 character; latin-1 maps it to U+0081 (a control, removed later).
    before = fallbacks("latin-1")
    assert decode_text(b"a\x81b") == ("a\u0081b", "latin-1")
    a = decode(json_message_with_raw_body(b"x\x81y"))
    assert a.body == "x\u0081y" and fallbacks("latin-1") == before + 1


def test_valid_utf8_is_not_a_fallback():
    assert decode_text("Pyongyang \u2014 Moscow".encode()) == ("Pyongyang \u2014 Moscow", None)


# --- Reliability: size, time and dead-letter limits ---

import datetime as dt  # noqa: E402

import apache_beam as beam  # noqa: E402
import fastavro  # noqa: E402
from apache_beam.testing.util import assert_that, equal_to  # noqa: E402

from connectors.kafka_read import KafkaRecord  # noqa: E402
from pipeline.decode import (DEFAULT_DEAD_LETTER_VALUE_BYTES,  # noqa: E402
                             DEFAULT_MAX_FUTURE_SECONDS, DEFAULT_MAX_MESSAGE_BYTES,
                             DecodeArticles)
from schemas import load_schema  # noqa: E402

# 2024-04-30T12:00:00Z (date -u -d ... +%s = 1714478400), the clock of these tests.
NOW_MS = 1_714_478_400_000


def reason_of(value, **limits):
    with pytest.raises(DecodeError) as info:
        decode_article(value, topic="t", partition=2, offset=7, **limits)
    return info.value


def padded(doc, size):
    """``doc`` as JSON, padded with trailing spaces (still valid JSON) to ``size`` bytes."""
    raw = json.dumps(doc).encode()
    return raw + b" " * (size - len(raw))


def test_defaults():
    assert (DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_FUTURE_SECONDS,
            DEFAULT_DEAD_LETTER_VALUE_BYTES) == (1_000_000, 86_400, 65_536)


def test_message_at_the_size_limit_is_decoded():
    value = padded(GOOD, 1_000_000)
    assert len(value) == 1_000_000
    assert decode_article(value, topic="t", partition=2, offset=7).id == "a1"


def test_message_over_the_size_limit_is_too_large_and_names_the_flag():
    error = reason_of(padded(GOOD, 1_000_001))
    assert error.reason == "too_large"
    assert "1,000,001 bytes" in error.detail and "1,000,000" in error.detail
    assert "--max-message-bytes" in error.detail


def test_size_is_checked_before_decoding():
    # 10 MB of bytes that are not UTF-8 (0x93 is a cp1252 quote) and not JSON: had
    # they been decoded, the cp1252 fallback would have been counted.
    before = fallbacks("cp1252")
    assert reason_of(b"\x93" * 10_000_000).reason == "too_large"
    assert fallbacks("cp1252") == before


def test_size_limit_is_a_setting():
    value = padded(GOOD, 200)
    assert reason_of(value, max_message_bytes=199).reason == "too_large"
    assert decode_article(value, topic="t", partition=2, offset=7, max_message_bytes=200).id == "a1"


def test_timestamp_one_day_ahead_is_kept_and_one_ms_more_is_not():
    day_ms = 86_400_000
    kept = decode_article(json.dumps(dict(GOOD, published_at=NOW_MS + day_ms)).encode(),
                          topic="t", partition=2, offset=7, now_ms=NOW_MS)
    assert kept.published_at_ms == NOW_MS + day_ms
    error = reason_of(json.dumps(dict(GOOD, published_at=NOW_MS + day_ms + 1)).encode(),
                      now_ms=NOW_MS)
    assert error.reason == "future_timestamp"
    assert "2024-05-01T12:00:00.001Z" in error.detail and "--max-future-seconds" in error.detail


def test_future_iso_timestamp_and_a_tighter_setting():
    value = json.dumps(dict(GOOD, published_at="2024-04-30T12:00:01Z")).encode()
    assert decode_article(value, topic="t", partition=2, offset=7, now_ms=NOW_MS)
    assert reason_of(value, now_ms=NOW_MS, max_future_seconds=0).reason == "future_timestamp"


def test_future_is_judged_by_the_wall_clock_by_default():
    ten_years_ahead = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3653)
    value = json.dumps(dict(GOOD, published_at=ten_years_ahead.isoformat())).encode()
    assert reason_of(value).reason == "future_timestamp"


@pytest.mark.parametrize("published_at, ms", [
    ("1987-02-26T15:01:01Z", 541_350_061_000),        # Reuters NEWID 1; date -u -d ... +%s
    ("1900-01-01T00:00:00Z", -2_208_988_800_000),     # date -u -d ... +%s
    ("0001-01-01T00:00:00Z", -62_135_596_800_000),    # the earliest: date -u -d ... +%s
    (-62_135_596_800_000, -62_135_596_800_000),
])
def test_old_articles_are_valid(published_at, ms):
    a = decode_article(json.dumps(dict(GOOD, published_at=published_at)).encode(),
                       topic="t", partition=2, offset=7, now_ms=NOW_MS)
    assert a.published_at_ms == ms


@pytest.mark.parametrize("published_at", [
    10 ** 20, -10 ** 20, 2 ** 63, -62_135_596_800_001,
    "0001-01-01T00:00:00+05:00",        # 0000-12-31T19:00Z: before year 1
    "9999-12-31T23:00:00-05:00",        # 10000-01-01T04:00Z: after year 9999
])
def test_timestamps_python_cannot_represent_are_bad_timestamps(published_at):
    value = json.dumps(dict(GOOD, published_at=published_at)).encode()
    assert reason_of(value, max_future_seconds=10 ** 12).reason == "bad_timestamp"


def test_a_huge_timestamp_string_is_shown_cut_in_the_detail():
    error = reason_of(json.dumps(dict(GOOD, published_at="9" * 500_000)).encode())
    assert error.reason == "bad_timestamp" and len(error.detail) < 300


def test_lone_surrogate_escapes_are_replaced_and_counted():
    before = fallbacks("replacement")
    a = decode(b'{"id": "a\\ud800", "title": "T\\udfff", "body": "x\\ud83d\\ude00 y\\ud83d",'
               b' "published_at": 0}')
    assert (a.id, a.title, a.body) == ("a\ufffd", "T\ufffd", "x\U0001F600 y\ufffd")
    assert fallbacks("replacement") == before + 1


def test_a_lone_surrogate_in_any_text_field_is_replaced():
    # Hypothesis (tests/unit/test_fuzz_decode.py), minimal: the article was kept with
    # language "\ud800", which no UTF-8 writer downstream can encode.
    a = decode(b'{"id": "0", "title": "", "body": "0", "published_at": 0, '
               b'"language": "\\ud800"}')
    assert a.language == "\ufffd"


def test_a_surrogate_pair_is_one_character_and_no_fallback():
    before = fallbacks("replacement")
    a = decode(b'{"id": "a", "title": "T", "body": "\\ud83d\\ude00", "published_at": 0}')
    assert a.body == "\U0001F600" and fallbacks("replacement") == before


@pytest.mark.parametrize("setting, value", [
    ("max_message_bytes", 0), ("max_message_bytes", -1), ("max_message_bytes", True),
    ("max_message_bytes", "1000"), ("max_message_bytes", 1.5),
    ("max_future_seconds", -1), ("max_future_seconds", float("nan")),
    ("max_future_seconds", None), ("dead_letter_value_bytes", -1),
    ("dead_letter_value_bytes", 65536.0),
])
def test_bad_settings_are_refused_by_name(setting, value):
    with pytest.raises(ValueError) as info:
        DecodeArticles(**{setting: value})
    assert setting in str(info.value) and repr(value) in str(info.value)


def test_settings_are_keyword_only():
    with pytest.raises(TypeError):
        DecodeArticles(1000)  # noqa


def record(value, key=b"k", offset=7):
    return KafkaRecord("t", 2, offset, key, value, 1_700_000_000_000)


def public(dead_letter):
    return {k: v for k, v in dead_letter.items() if not k.startswith("_")}


def test_null_key_is_fine_the_id_comes_from_the_json():
    with beam.Pipeline() as p:
        decoded = p | beam.Create([record(json.dumps(GOOD).encode(), key=None)]) | DecodeArticles()
        assert_that(decoded.articles | beam.Map(lambda a: (a.id, a.offset)),
                    equal_to([("a1", 7)]), label="Articles")
        assert_that(decoded.dead_letters, equal_to([]), label="DeadLetters")


def test_dead_letters_keep_a_bounded_value_with_its_size_and_match_the_schema():
    big = b"x" * 60                 # 60 bytes, over a 50-byte limit: too_large
    small = b"{not json"            # 9 bytes: kept whole
    expected = [
        {"reason": "too_large", "offset": 1, "key": b"k", "value": big[:10],
         "value_size": 60, "value_truncated": True},
        {"reason": "invalid_json", "offset": 2, "key": b"k", "value": small,
         "value_size": 9, "value_truncated": False},
        {"reason": "empty_message", "offset": 3, "key": b"k", "value": None,
         "value_size": None, "value_truncated": False},
    ]
    schema = fastavro.parse_schema(load_schema("dead_letter"))

    def fields(dead_letter):
        assert fastavro.validation.validate(public(dead_letter), schema)
        return {k: dead_letter[k] for k in expected[0]}

    with beam.Pipeline() as p:
        decoded = (p | beam.Create([record(big, offset=1), record(small, offset=2),
                                    record(None, offset=3)])
                   | DecodeArticles(max_message_bytes=50, dead_letter_value_bytes=10))
        assert_that(decoded.dead_letters | beam.Map(fields), equal_to(expected))


def test_a_long_key_is_cut_like_the_value_and_the_detail_says_so():
    with beam.Pipeline() as p:
        decoded = (p | beam.Create([record(b"[1]", key=b"x" * 25)])
                   | DecodeArticles(dead_letter_value_bytes=10))
        assert_that(decoded.dead_letters | beam.Map(lambda d: (d["key"], d["detail"])),
                    equal_to([(b"x" * 10, "expected a JSON object, got list "
                               "(the key is cut to its first 10 of 25 bytes)")]))
