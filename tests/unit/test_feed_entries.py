"""Feed entries to article messages (connectors/feed_entries.py), the feeds file, the
polling policy (connectors/feed_fetch.py) and the state (connectors/feed_state.py).
Expected values are hand-checked against tests/fixtures/feeds/*; epoch seconds from
`date -u -d 'YYYY-MM-DD HH:MM:SS' +%s`."""
import pathlib

import pytest

from connectors.feed_entries import canonical_url, html_to_text, parse_feed, to_article
from connectors.feed_fetch import next_poll_delay_s, parse_retry_after
from connectors.feed_state import FeedState
from connectors.feeds import FeedSource, read_feeds_file

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
SEEN = 1_764_583_200_000  # 2025-12-01 10:00 UTC, when the entries were first seen


def articles(fixture, url, **kw):
    doc = parse_feed((FIXTURES / fixture).read_bytes(), url, {"content-type": "application/xml"})
    return doc, [to_article(e, feed_url=url, document=doc, first_seen_ms=SEEN, **kw)
                 for e in doc.entries]


def test_rss2_cdata_entities_relative_link_and_zone():
    doc, (opens, deal, note) = articles("rss2.xml", "https://news.example/feed.xml")
    assert doc.problem is None and doc.title == "Tumen Wire & Friends"
    # GUID "tw-1001" is not global: the id is the link, made absolute, fragment dropped.
    assert opens["id"] == opens["url"] == "https://news.example/2025/05/bridge-opens"
    assert opens["source"] == "Tumen Wire & Friends" and opens["language"] == "en"
    # CDATA HTML: tags and the script gone, &ldquo;/&rdquo; decoded, one line a paragraph.
    assert opens["body"] == ("Russia and North Korea opened the road bridge over the Tumen "
                             "River.\nOfficials called it a \u201cfriendship bridge\u201d.")
    # Sat, 03 May 2025 14:23:00 +0200 = 12:23 UTC = 1746274980 s.
    assert (opens["published_at"], opens["published_at_from"]) == (1746274980000, "published")
    # The GUID is a URL: the id. content:encoded is longer than the description: the body.
    assert deal["id"] == "https://news.example/2025/05/deal"
    assert deal["title"] == "Moscow & Pyongyang sign a deal"
    assert deal["body"] == ("Russia signed a trade deal with North Korea in Moscow.\n"
                            "The deal covers the bridge and rail links.")
    assert deal["published_at"] == 1746345600000  # Sun, 04 May 2025 08:00:00 GMT
    # No date: first seen, and flagged.
    assert (note["published_at"], note["published_at_from"]) == (SEEN, "first_seen")


def test_atom_with_updated_only_html_title_and_xml_base():
    doc, (entry,) = articles("atom.xml", "https://atom.example/feed")
    assert entry["id"] == "tag:atom.example,2025:entry-7"  # a tag: URI is global
    assert entry["url"] == "https://atom.example/blog/posts/7"  # against xml:base
    assert entry["title"] == "North Korea ships steel"
    assert entry["body"] == "North Korea shipped steel to Russia for the bridge."
    # 2025-04-30T09:30:00-04:00 = 13:30 UTC = 1746019800 s.
    assert (entry["published_at"], entry["published_at_from"]) == (1746019800000, "updated")
    assert "language" not in entry  # the feed gives none: the decoder's default


def test_rdf_with_dc_date():
    doc, (entry,) = articles("rdf.xml", "https://rdf.example/rss")
    assert doc.title == "RDF Bulletin" and entry["id"] == "https://rdf.example/items/42"
    assert entry["published_at"] == 1744977600000  # 2025-04-18T15:00+03:00 = 12:00 UTC


def test_latin1_feed_is_decoded_by_its_declaration():
    doc, (entry,) = articles("latin1.xml", "https://latin.example/rss")
    assert doc.title == "Caf\u00e9 Presse" and entry["title"] == "R\u00e9sum\u00e9 of the bridge talks"
    assert "na\u00efve plan" in entry["body"]
    assert entry["published_at"] == 1744970400000  # Fri, 18 Apr 2025 10:00:00 +0000


def test_an_html_page_is_not_a_feed_and_malformed_xml_keeps_what_was_read():
    page = parse_feed((FIXTURES / "page.html").read_bytes(), "https://x.example/",
                      {"content-type": "text/html"})
    assert page.problem == "not_a_feed" and page.entries == []
    doc, (entry,) = articles("malformed.xml", "https://broken.example/rss")
    assert doc.problem == "malformed" and "not well-formed" in doc.detail
    assert entry["id"] == "https://broken.example/1"


def test_name_from_the_feeds_file_is_the_source():
    _, (entry,) = articles("atom.xml", "https://atom.example/feed", name="My Atom")
    assert entry["source"] == "My Atom"


def test_entry_without_guid_or_link_gets_a_stable_id_from_its_text():
    doc = parse_feed(b'<rss version="2.0"><channel><title>T</title><item><title>A</title>'
                     b"<description>B</description></item></channel></rss>", "https://t.example/f")
    one, two = (to_article(doc.entries[0], feed_url="https://t.example/f", document=doc,
                           first_seen_ms=ms) for ms in (1, 2))
    assert one["id"] == two["id"] and one["id"].startswith("https://t.example/f#sha256=")


def test_a_date_far_ahead_of_the_clock_is_not_believed():
    doc = parse_feed(b'<rss version="2.0"><channel><title>T</title><item><guid>tag:x,1</guid>'
                     b"<title>A</title><description>B</description>"
                     b"<pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item></channel></rss>",
                     "https://t.example/f")
    art = to_article(doc.entries[0], feed_url="https://t.example/f", document=doc,
                     first_seen_ms=SEEN)
    assert (art["published_at"], art["published_at_from"]) == (SEEN, "first_seen")


def test_html_to_text_and_canonical_url():
    assert html_to_text("<p>a&amp;b</p><style>x{}</style><br>c &nbsp; d") == "a&b\nc d"
    assert canonical_url("../b?q=1#frag", "HTTPS://Ex.Example/a/c") == "https://ex.example/b?q=1"
    assert canonical_url("", "https://x/") is None


def test_feeds_file_opml_and_plain_list(tmp_path):
    opml = tmp_path / "f.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body><outline text="News">'
                    '<outline text="A" title="Feed A" xmlUrl="https://a.example/rss"/>'
                    '<outline text="B" xmlUrl="https://b.example/atom"/></outline></body></opml>')
    assert read_feeds_file(opml) == [FeedSource("https://a.example/rss", "Feed A"),
                                     FeedSource("https://b.example/atom", "B")]
    plain = tmp_path / "f.txt"
    plain.write_text("# my feeds\nhttps://a.example/rss Agency A\n\nhttps://b.example/atom\n")
    assert read_feeds_file(plain) == [FeedSource("https://a.example/rss", "Agency A"),
                                      FeedSource("https://b.example/atom")]
    bad = tmp_path / "bad.txt"
    bad.write_text("ftp://x.example/feed\n")
    with pytest.raises(ValueError, match="not an http"):
        read_feeds_file(bad)


@pytest.mark.parametrize("kw, draw, want", [
    (dict(interval_s=600), 0.5, 600),                       # no jitter at the middle draw
    (dict(interval_s=600), 0.0, 540),                       # -10 %
    (dict(interval_s=600), 0.999999, 660),                  # +10 % (just under)
    (dict(interval_s=600, failures=1), 0.5, 600),           # first failure: the interval
    (dict(interval_s=600, failures=3), 0.5, 2400),          # 600 x 2^2
    (dict(interval_s=600, failures=30), 0.5, 21600),        # capped at 6 h
    (dict(interval_s=600, retry_after_s=1500), 0.5, 1500),  # the server asks for longer
    (dict(interval_s=600, retry_after_s=60), 0.5, 600),     # ... or not
])
def test_next_poll_delay(kw, draw, want):
    assert next_poll_delay_s(random=lambda: draw, **kw) == pytest.approx(want, abs=0.01)


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("120") == 120.0
    # 2025-12-01 10:02:00 UTC is 120 s after 1764583200 (date -u -d @1764583200).
    assert parse_retry_after("Mon, 01 Dec 2025 10:02:00 GMT", now_s=1764583200) == 120.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_state_pending_batch_published_and_pruned_by_age():
    state = FeedState(":memory:", max_age_seconds=10)
    a, b = {"id": "a", "published_at": 1}, {"id": "b", "published_at": 2}
    state.begin_batch("f", "t", [a, b], {0: 7})
    assert state.unpublished(["a", "b", "c"]) == ["c"]      # pending counts as known
    assert state.pending() == [("f", "t", a, {0: 7}), ("f", "t", b, {0: 7})]
    state.mark_published({"a": "f", "b": "f"}, now_ms=1_000)
    assert state.pending() == [] and state.unpublished(["a", "b"]) == []
    state.touch(["b"], now_ms=20_000)                       # b is still listed
    assert state.prune(now_ms=20_500) == 1                  # a unseen for over 10 s
    assert state.unpublished(["a", "b"]) == ["a"]


def test_a_parser_crash_or_an_unreadable_entry_stays_with_its_feed(monkeypatch):
    """FollowFeeds.poll: a feed whose parsing raises is counted malformed; the others go on."""
    from connectors import feed_fetch, feeds

    class Publisher:
        topic = "t"
        sent = []

        def end_offsets(self):
            return {0: 0}

        def send_all(self, articles):
            self.sent += articles

    ok = (FIXTURES / "atom.xml").read_bytes()
    monkeypatch.setattr(feed_fetch, "fetch", lambda http, url, **kw: feed_fetch.Fetched(
        "ok", 200, b"crash" if "crash" in url else ok, url, {}))
    real_parse = feeds.parse_feed
    monkeypatch.setattr(feeds, "parse_feed", lambda data, *a: (
        (_ for _ in ()).throw(RecursionError("deep")) if data == b"crash" else real_parse(data, *a)))
    publisher = Publisher()
    follow = feeds.FollowFeeds(feeds=[FeedSource("https://crash.example/f"),
                                      FeedSource("https://ok.example/f")],
                               state=FeedState(":memory:"), publisher=publisher, http=None,
                               random=lambda: 0.5, wall_ms=lambda: SEEN)
    assert follow.poll_all() == {"https://crash.example/f": ("malformed", 0),
                                 "https://ok.example/f": ("ok", 1)}
    assert [a["id"] for a in publisher.sent] == ["tag:atom.example,2025:entry-7"]
