"""decode_article: valid messages and every dead-letter reason."""
import json

import pytest

from pipeline.decode import DecodeError, decode_article

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
    (b"\xff\xfe\x00", "invalid_utf8"),
    (b"[1, 2]", "not_an_object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "body"}).encode(), "missing_field"),
    (json.dumps(dict(GOOD, id="  ")).encode(), "missing_field"),
    (json.dumps(dict(GOOD, title=5)).encode(), "bad_type"),
    (json.dumps(dict(GOOD, published_at="yesterday")).encode(), "bad_timestamp"),
    (json.dumps(dict(GOOD, published_at="2024-04-30T12:00:00")).encode(), "bad_timestamp"),
    (json.dumps(dict(GOOD, published_at=True)).encode(), "bad_type"),
])
def test_bad_messages_raise_with_reason(value, reason):
    with pytest.raises(DecodeError) as info:
        decode(value)
    assert info.value.reason == reason


def test_tombstone_is_a_dead_letter():
    with pytest.raises(DecodeError) as info:
        decode_article(None, topic="t", partition=0, offset=0)
    assert info.value.reason == "empty_message"
