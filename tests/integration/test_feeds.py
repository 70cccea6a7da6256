"""`entitystream feeds` against a local HTTP server (tests/integration/feed_server.py)
serving feeds written for these tests (tests/fixtures/feeds/), through the real broker.

- polite polling, on a stepped clock: a 304 for a known ETag, a 500 then recovery
  with backoff, a 429 whose Retry-After is honoured, bad feeds (an HTML page,
  malformed XML, a redirect loop, a timeout, an oversize answer) logged, counted,
  and never stopping the others;
- the topic holds exactly the expected articles, once each, and the pipeline's
  aggregates over them equal the oracle (tests/integration/oracle.py);
- the command (--once, --feeds-file, /metrics), and restarts after SIGKILL in the
  crash window: no entry twice, none lost.
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from connectors import feed_fetch
from connectors.feed_state import FeedState
from connectors.feeds import KILL_AT_ENV, FeedSource, FollowFeeds, KafkaFeedPublisher
from pipeline import inspect_output, metrics
from pipeline.run import start
from pipeline.settings import Settings
from tests.integration.feed_server import Answer, FeedServer
from tests.integration.oracle import brute_force, final_rows, mentions_of
from tests.scrape import free_port, scrape, total
from tests.topic import topic_records

pytestmark = [pytest.mark.broker]
ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "feeds"
HOUR_S = 3600


def fixture(name):
    return (FIXTURES / name).read_bytes()


def rss(items):
    """An RSS 2.0 feed of ``(guid, title, pubDate, description)`` items."""
    body = "".join(f"<item><title>{t}</title><guid>{g}</guid><pubDate>{d}</pubDate>"
                   f"<description>{s}</description></item>" for g, t, d, s in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Gen</title>'
            f"<link>https://gen.example/</link>{body}</channel></rss>").encode()


NEW_ITEM = ("https://news.example/2025/05/rail", "Rail link to Rason",
            "Mon, 05 May 2025 09:00:00 GMT", "Russia plans a rail link to Rason in North Korea.")


def rss2_v2():
    """rss2.xml with one item more (its three are duplicates of the first poll's)."""
    item = ("<item><title>{1}</title><link>{0}</link><guid>{0}</guid><pubDate>{2}</pubDate>"
            "<description>{3}</description></item>").format(*NEW_ITEM)
    return fixture("rss2.xml").replace(b"<channel>", b"<channel>" + item.encode(), 1)


def routes():
    return {
        "/rss2.xml": [Answer(fixture("rss2.xml"), etag='"v1"'), Answer(fixture("rss2.xml"), etag='"v1"'),
                      Answer(rss2_v2(), etag='"v2"')],
        "/atom.xml": [Answer(fixture("atom.xml"), content_type="application/atom+xml")],
        "/rdf.xml": [Answer(fixture("rdf.xml"), content_type="application/rdf+xml")],
        "/latin1.xml": [Answer(fixture("latin1.xml"), content_type="application/xml")],
        "/page.html": [Answer(fixture("page.html"), content_type="text/html; charset=utf-8")],
        "/malformed.xml": [Answer(fixture("malformed.xml"))],
        "/flaky.xml": [Answer(b"oops", status=500), Answer(b"oops", status=500),
                       Answer(rss([("tag:flaky,1", "Flaky is back", "Tue, 06 May 2025 10:00:00 GMT",
                                    "Moscow says the bridge is busy.")]))],
        "/limited.xml": [Answer(b"slow down", status=429, headers=(("Retry-After", "1500"),)),
                         Answer(rss([("tag:limited,1", "Limited speaks", "Wed, 07 May 2025 11:00:00 GMT",
                                      "North Korea thanks Russia for the bridge.")]))],
        "/loop": [Answer(status=302, headers=(("Location", "/loop"),))],
        "/slow.xml": [Answer(fixture("atom.xml"), delay_s=3)],
        "/big.xml": [Answer(b"<rss>" + b" " * 300_000 + b"</rss>")],
    }


# What each poll must find, hand-checked against tests/fixtures/feeds and routes() above:
# {path: outcome} at each step of the clock (interval 600 s, no jitter).
STEPS = {
    0: {"/rss2.xml": ("ok", 3), "/atom.xml": ("ok", 1), "/rdf.xml": ("ok", 1),
        "/latin1.xml": ("ok", 1), "/page.html": ("not_a_feed", 0),
        "/malformed.xml": ("malformed", 1), "/flaky.xml": ("http_error", 0),
        "/limited.xml": ("rate_limited", 0), "/loop": ("too_many_redirects", 0),
        "/slow.xml": ("timeout", 0), "/big.xml": ("too_large", 0)},
    # Everything again but /limited.xml (Retry-After 1500 s); /rss2.xml answers 304.
    600: {"/rss2.xml": ("not_modified", 0), "/atom.xml": ("ok", 0), "/rdf.xml": ("ok", 0),
          "/latin1.xml": ("ok", 0), "/page.html": ("not_a_feed", 0),
          "/malformed.xml": ("malformed", 0), "/flaky.xml": ("http_error", 0),
          "/loop": ("too_many_redirects", 0), "/slow.xml": ("timeout", 0),
          "/big.xml": ("too_large", 0)},
    # /flaky.xml failed twice: backoff 2 x 600 s, so not before 1800; bad feeds back off too.
    1200: {"/rss2.xml": ("ok", 1), "/atom.xml": ("ok", 0), "/rdf.xml": ("ok", 0),
           "/latin1.xml": ("ok", 0)},
    1500: {"/limited.xml": ("ok", 1)},
    # Failed twice, the bad feeds come back after 2 x 600 s too; /rss2.xml's new ETag: 304.
    1800: {"/rss2.xml": ("not_modified", 0), "/atom.xml": ("ok", 0), "/rdf.xml": ("ok", 0),
           "/latin1.xml": ("ok", 0), "/flaky.xml": ("ok", 1), "/page.html": ("not_a_feed", 0),
           "/malformed.xml": ("malformed", 0), "/loop": ("too_many_redirects", 0),
           "/slow.xml": ("timeout", 0), "/big.xml": ("too_large", 0)},
}
# The first item of rss2.xml has a relative link and a GUID that is not global: its id
# is the link, resolved against the URL the feed came from (the test server's).
EXPECTED_IDS = {
    "/2025/05/bridge-opens", "https://news.example/2025/05/deal",
    "https://news.example/2025/05/note", NEW_ITEM[0], "tag:atom.example,2025:entry-7",
    "https://rdf.example/items/42", "https://latin.example/a/1", "https://broken.example/1",
    "tag:flaky,1", "tag:limited,1"}


class Clock:
    def __init__(self, start_ms):
        self.ms = start_ms

    def __call__(self):
        return self.ms


def test_polling_every_shape_of_feed_publishes_each_entry_once_and_the_aggregates_match(
        bootstrap, topic, tmp_path, caplog):
    # A day ago: undated entries are stamped with it, well inside the broker's limits.
    clock = Clock(int(time.time() * 1000) - 86_400_000)
    metrics_port = free_port()
    metrics.serve(metrics_port)
    with FeedServer(routes()) as server:
        feeds = [FeedSource(server.url(p)) for p in STEPS[0]]
        state = FeedState(tmp_path / "state.sqlite")
        publisher = KafkaFeedPublisher(bootstrap_servers=bootstrap, topic=topic)
        http = feed_fetch.client(timeout_s=1.0)
        follow = FollowFeeds(feeds=feeds, state=state, publisher=publisher, http=http,
                             interval_s=600, max_bytes=200_000, random=lambda: 0.5,
                             wall_ms=clock)
        start_ms = clock.ms
        try:
            for step_s, want in STEPS.items():
                clock.ms = start_ms + step_s * 1000
                got = follow.poll_due()
                assert {u.rsplit(str(server.port), 1)[1]: r for u, r in got.items()} == want, step_s
            # Conditional GET: the second request to /rss2.xml named the first answer's ETag.
            assert [h.get("if-none-match") for h in server.requests("/rss2.xml")] == [
                None, '"v1"', '"v1"', '"v2"']
            assert all(h["user-agent"] == feed_fetch.USER_AGENT for _, h in server.log)
        finally:
            http.close()
            publisher.close()
            state.close()
    # Each failure is logged with the feed's URL.
    for path in ("/page.html", "/malformed.xml", "/flaky.xml", "/limited.xml", "/loop",
                 "/slow.xml", "/big.xml"):
        assert server.url(path) in caplog.text, path
    # The counts, as /metrics serves them: every poll of STEPS, by feed and outcome.
    samples = scrape(metrics_port)
    for path in STEPS[0]:
        feed = server.url(path)
        want = {}
        for step in STEPS.values():
            if path in step:
                want[step[path][0]] = want.get(step[path][0], 0) + 1
        got = {o: total(samples, "entitystream_feed_fetches_total", feed=feed, outcome=o)
               for o in feed_fetch.OUTCOMES}
        assert {o: n for o, n in got.items() if n} == want, path
        assert total(samples, "entitystream_feed_entries_published_total", feed=feed) == sum(
            step[path][1] for step in STEPS.values() if path in step), path
    # Never a success: the gauge still holds the start time.
    assert total(samples, "entitystream_feed_last_success_timestamp_seconds",
                 feed=server.url("/page.html")) == start_ms / 1000
    assert total(samples, "entitystream_feed_last_success_timestamp_seconds",
                 feed=server.url("/flaky.xml")) == (start_ms + 1_800_000) / 1000

    records = topic_records(bootstrap, topic)
    ids = [key for key, _, _ in records]
    assert sorted(ids) == sorted(server.url(i) if i.startswith("/") else i
                                 for i in EXPECTED_IDS)  # each once
    assert all(doc["id"] == key and ts == doc["published_at"] for key, ts, doc in records)
    undated = {doc["id"]: doc for _, _, doc in records if doc["published_at_from"] == "first_seen"}
    assert set(undated) == {"https://news.example/2025/05/note", "https://broken.example/1"}
    assert all(doc["published_at"] == start_ms for doc in undated.values())

    # The pipeline over the topic: every final aggregate equals the brute-force oracle.
    articles = [doc for _, _, doc in records]
    out = tmp_path / "out"
    tuples = (("BRIDGE", "NORTH_KOREA", "RUSSIA"),)
    settings = Settings(topic=topic, output_dir=str(out), bootstrap_servers=bootstrap,
                        runner="direct", bounded=True, group_id=f"g-{topic}", metrics_port=0,
                        tracked_tuples=tuples, max_entities_per_article=10_000,
                        top_k_pairs=10_000_000, window_seconds=HOUR_S,
                        sliding_window_seconds=6 * HOUR_S, sliding_period_seconds=HOUR_S)
    start(settings).wait_until_finish()
    got = final_rows(inspect_output.load(out))
    want = brute_force(mentions_of(articles), window_s=HOUR_S, sliding_s=6 * HOUR_S,
                       period_s=HOUR_S, tuples=tuples)
    assert want and got == want


def _feeds_command(*args, env=None):
    return subprocess.run([sys.executable, "-m", "connectors.feeds", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize("kill_at", ["before_send", "after_ack"])
def test_a_restart_after_sigkill_publishes_no_entry_twice_and_loses_none(
        bootstrap, topic, tmp_path, kill_at):
    items = [(f"tag:crash,{i}", f"Story {i}", f"Thu, 0{i} May 2025 12:00:00 GMT",
              f"Russia story number {i}.") for i in range(1, 6)]
    with FeedServer({"/crash.xml": [Answer(rss(items))]}) as server:
        args = ["--feed", server.url("/crash.xml"), "--topic", topic, "--once",
                "--state", str(tmp_path / "state.sqlite"), "--bootstrap-servers", bootstrap,
                "--metrics-port", "0"]
        killed = _feeds_command(*args, env={KILL_AT_ENV: kill_at})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        on_topic = [k for k, _, _ in topic_records(bootstrap, topic)]
        assert len(on_topic) == (0 if kill_at == "before_send" else 5)
        again = _feeds_command(*args)
        assert again.returncode == 0, again.stderr
        assert "0 new" in again.stdout  # settled by the recovery, not by the poll
    ids = [k for k, _, _ in topic_records(bootstrap, topic)]
    assert sorted(ids) == sorted(g for g, *_ in items)


def test_command_reads_an_opml_file(bootstrap, topic, tmp_path):
    with FeedServer({"/atom.xml": [Answer(fixture("atom.xml"))],
                     "/page.html": [Answer(fixture("page.html"), content_type="text/html")]}) as server:
        opml = tmp_path / "my_feeds.opml"
        opml.write_text(
            '<?xml version="1.0"?><opml version="2.0"><head><title>mine</title></head><body>'
            f'<outline text="News"><outline type="rss" text="Atom desk" title="The Atom Desk" '
            f'xmlUrl="{server.url("/atom.xml")}"/>'
            f'<outline type="rss" text="Home page" xmlUrl="{server.url("/page.html")}"/>'
            '</outline></body></opml>', encoding="utf-8")
        done = _feeds_command("--feeds-file", str(opml), "--topic", topic, "--once", "--state",
                              str(tmp_path / "s.sqlite"), "--bootstrap-servers", bootstrap,
                              "--metrics-port", "0")
    assert done.returncode == 0, done.stderr
    assert f"{server.url('/atom.xml')}: ok, 1 new" in done.stdout
    assert f"{server.url('/page.html')}: not_a_feed, 0 new" in done.stdout
    (key, _, doc), = topic_records(bootstrap, topic)
    assert key == "tag:atom.example,2025:entry-7" and doc["source"] == "The Atom Desk"
    assert "ERROR" not in done.stderr


def test_full_text_takes_the_linked_pages_text(bootstrap, topic, tmp_path):
    page = ("<html><head><title>Bridge</title></head><body><nav>Home | World | Sport</nav>"
            "<article><h1>The bridge opens</h1><p>Russia and North Korea opened the road "
            "bridge over the Tumen River on Monday, officials in Moscow said.</p><p>Trucks "
            "will cross it from the summer, carrying coal and steel both ways.</p></article>"
            "<footer>Copyright 2025</footer></body></html>").encode()
    with FeedServer({"/page/1": [Answer(page, content_type="text/html")]}) as server:
        feed = rss([("tag:full,1", "The bridge opens", "Mon, 05 May 2025 09:00:00 GMT",
                     "Short teaser.")]).replace(
            b"<guid>", f"<link>{server.url('/page/1')}</link><guid>".encode(), 1)
        server.routes["/feed.xml"] = [Answer(feed)]
        state = FeedState(tmp_path / "s.sqlite")
        publisher = KafkaFeedPublisher(bootstrap_servers=bootstrap, topic=topic)
        http = feed_fetch.client(timeout_s=5.0)
        try:
            follow = FollowFeeds(feeds=[FeedSource(server.url("/feed.xml"))], state=state,
                                 publisher=publisher, http=http, full_text=True)
            assert follow.poll_all() == {server.url("/feed.xml"): ("ok", 1)}
        finally:
            http.close()
            publisher.close()
            state.close()
    (_, _, doc), = topic_records(bootstrap, topic)
    # The page's two paragraphs (trafilatura), not the teaser; not the navigation or footer.
    assert "opened the road bridge over the Tumen River" in doc["body"]
    assert "carrying coal and steel" in doc["body"]
    assert "Short teaser" not in doc["body"] and "Copyright" not in doc["body"]
