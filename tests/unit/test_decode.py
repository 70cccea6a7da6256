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
