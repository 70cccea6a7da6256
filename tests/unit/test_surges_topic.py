"""--surges-topic: the message key, value and timestamp of a surges record,
and the settings that go with it (pure logic; the broker end to end is in
tests/integration/test_surges.py)."""
import argparse
import datetime as dt

import pytest

from connectors.aggregates_topic import (PublishSurges, _headers, _value, _window_end,
                                         decode_message, message_key)
from pipeline.settings import Settings, add_arguments, from_args

# A surges record as the pane DoFn emits it (pipeline/surges.py), with the
# pane fields pane_records adds, made by hand: 5 of 25 articles, share 0.2,
# baseline 0, score 0.6745 * 0.2 / 0.005 = 26.98.
SURGE = {"kind": "surges", "window_start": 544_489_200_000, "window_end": 544_492_800_000,
         "subject": "tuple", "tracked": True, "entities": ["BRIDGE", "NORTH_KOREA", "RUSSIA"],
         "articles": 5, "total_articles": 25, "share": 0.2, "baseline": 0.0,
         "spread": 0.005, "baseline_windows": 14, "score": 26.98, "threshold": 3.5,
         "pane_timing": "ON_TIME", "pane_index": 0, "is_final": True,
         "emitted_at": 1_764_590_000_000}


def test_a_surge_is_keyed_by_its_window_start_and_its_entities():
    assert message_key(SURGE) == b"surges/544489200000/BRIDGE+NORTH_KOREA+RUSSIA"
    entity = dict(SURGE, subject="entity", entities=["RUSSIA"])
    assert message_key(entity) == b"surges/544489200000/RUSSIA"


def test_the_other_kinds_keep_their_keys():
    count = {"kind": "entity_counts", "window_start": 7, "entity_id": "RUSSIA"}
    pair = {"kind": "cooccurrence", "window_start": 7, "scope": "article",
            "entities": ["A", "B"]}
    assert message_key(count) == b"entity_counts/7/RUSSIA"
    assert message_key(pair) == b"cooccurrence/7/article:A+B"


def _utc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def test_a_surge_message_decodes_back_to_the_record_and_is_stamped_with_the_window_end():
    times = ("window_start", "window_end", "emitted_at")  # timestamp-millis: read as datetimes
    assert decode_message(_value(SURGE), _headers(SURGE)) == dict(
        SURGE, **{t: _utc(SURGE[t]) for t in times})
    assert dict(_headers(SURGE))["entitystream.kind"] == b"surges"
    assert dict(_headers(SURGE))["avro.schema.name"] == b"entitystream.Surge"
    assert _window_end(SURGE) == 544_492_800_000


def test_publish_surges_needs_a_topic():
    with pytest.raises(ValueError, match="--surges-topic"):
        PublishSurges(bootstrap_servers="127.0.0.1:1", topic="")


def test_the_flag_sets_the_topic_and_needs_surges_on():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = from_args(parser.parse_args(["--bounded", "--surges-topic", "news.surges"]))
    assert settings.surges_topic == "news.surges"
    assert from_args(parser.parse_args(["--bounded"])).surges_topic is None
    with pytest.raises(ValueError, match="surge_threshold is 0"):
        Settings(surges_topic="news.surges", surge_threshold=0)
    with pytest.raises(ValueError, match="surge_threshold is 0"):
        Settings(surge_top_pairs=5, surge_threshold=0)
    with pytest.raises(ValueError, match="surge_top_pairs must be >= 0"):
        Settings(surge_top_pairs=-1)
    assert from_args(parser.parse_args(["--bounded", "--surge-top-pairs", "7"])).surge_top_pairs == 7
