"""``entitystream feeds``: follow RSS/Atom feeds and publish each new entry to Kafka.

Each poll of a feed: a conditional GET (``connectors/feed_fetch.py``), the
document parsed and its entries mapped to article messages
(``connectors/feed_entries.py``), the entries not published yet sent with the
article id as key and the publication time as Kafka timestamp, then recorded
(``connectors/feed_state.py``). Publish, then record; the crash window between
the two is closed by the ``pending`` batch: written down before the first send,
with the topic's end offsets, and settled at the next start by reading the topic
from there (``FollowFeeds.recover``). The producer is idempotent (retries do not
duplicate) and waits for every acknowledgement (``acks=all``).

A feed that fails (malformed XML, an HTML page, a timeout, a redirect loop, an
error status, an oversize answer) is logged with its URL and counted; the others
go on. Per feed, the next poll comes after the interval (with jitter), later
after failures (backoff) or when the server asks (``Retry-After``).

Metrics (served on ``--metrics-port``, default 9478):
``entitystream_feed_fetches_total{feed,outcome}``,
``entitystream_feed_entries_published_total{feed}`` and
``entitystream_feed_last_success_timestamp_seconds{feed}`` (the last fetch that
succeeded, ``ok`` or ``not_modified``; set to the start time until one does).
"""
import argparse
import dataclasses
import json
import logging
import os
import pathlib
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree

from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from connectors import feed_fetch
from connectors.feed_entries import FeedDocument, parse_feed, to_article
from connectors.feed_state import DEFAULT_MAX_AGE_SECONDS, FeedState

__all__ = ["FeedSource", "FollowFeeds", "KafkaFeedPublisher", "read_feeds_file", "main",
           "DEFAULT_INTERVAL_S", "DEFAULT_METRICS_PORT"]

_LOG = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 900
DEFAULT_METRICS_PORT = 9478
#: Fault injection for the crash test only (tests/integration/test_feeds.py): SIGKILL
#: this process at that point of a batch: ``before_send`` (written down as pending,
#: nothing sent) or ``after_ack`` (all acknowledged, not recorded as published).
KILL_AT_ENV = "ENTITYSTREAM_FEEDS_KILL_AT"


def _crash_point(name):
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

FETCHES = Counter("entitystream_feed_fetches", "Feed fetches, by feed URL and outcome.",
                  ["feed", "outcome"])
PUBLISHED = Counter("entitystream_feed_entries_published",
                    "Feed entries published to Kafka as articles, by feed URL.", ["feed"])
LAST_SUCCESS = Gauge("entitystream_feed_last_success_timestamp_seconds",
                     "When a fetch of the feed last succeeded (ok or not modified), epoch "
                     "seconds; the start time until one does.", ["feed"])


@dataclasses.dataclass(frozen=True)
class FeedSource:
    """A feed to follow: its URL and, optionally, the name to use as ``source``."""
    url: str
    name: str = None


def read_feeds_file(path):
    """Feeds of a file: OPML (what feed readers export: every ``outline`` with an
    ``xmlUrl``, named by its ``title`` or ``text``) or a plain list (one URL a line,
    optionally followed by a name; ``#`` starts a comment)."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("<"):
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as exc:
            raise ValueError(f"{path}: not valid OPML: {exc}") from None
        feeds = [FeedSource(o.get("xmlUrl").strip(), o.get("title") or o.get("text") or None)
                 for o in root.iter("outline") if o.get("xmlUrl")]
    else:
        feeds = []
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                url, _, name = line.strip().partition(" ")
                feeds.append(FeedSource(url, name.strip() or None))
    bad = [f.url for f in feeds if not f.url.startswith(("http://", "https://"))]
    if bad:
        raise ValueError(f"{path}: not an http(s) URL: {bad[0]!r}")
    if not feeds:
        raise ValueError(f"{path}: no feeds in it (OPML outlines with xmlUrl, or one URL a line)")
    return feeds


class KafkaFeedPublisher:
    """Sends articles to one topic and reads back what a crashed batch left there."""

    def __init__(self, *, bootstrap_servers, topic, partitions=1, client_config=None):
        from kafka import KafkaConsumer, KafkaProducer
        from connectors.replay import ensure_topic
        self.topic = topic
        ensure_topic(bootstrap_servers, topic, partitions, client_config)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=20, client_id="entitystream-feeds", **(client_config or {}))
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers,
                                       enable_auto_commit=False, group_id=None,
                                       client_id="entitystream-feeds-check",
                                       **(client_config or {}))

    def _partitions(self):
        from kafka import TopicPartition
        return [TopicPartition(self.topic, p)
                for p in sorted(self._consumer.partitions_for_topic(self.topic) or ())]

    def end_offsets(self):
        """{partition: end offset} of the topic now."""
        return {tp.partition: o for tp, o in self._consumer.end_offsets(self._partitions()).items()}

    def keys_since(self, start_offsets):
        """The keys of the records from ``start_offsets`` to the end of each partition."""
        from kafka import TopicPartition
        ends = self.end_offsets()
        todo = {TopicPartition(self.topic, p): end for p, end in ends.items()
                if end > start_offsets.get(p, 0)}
        keys = set()
        if not todo:
            return keys
        self._consumer.assign(list(todo))
        for tp in todo:
            self._consumer.seek(tp, start_offsets.get(tp.partition, 0))
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for tp, records in self._consumer.poll(timeout_ms=1000).items():
                keys.update(r.key.decode("utf-8") for r in records if r.key is not None)
                if self._consumer.position(tp) >= todo.get(tp, 0):
                    todo.pop(tp, None)
        if todo:
            raise RuntimeError(f"could not read {self.topic} back to check a crashed batch: "
                               f"{sorted(tp.partition for tp in todo)} not read to the end")
        return keys

    def send_all(self, articles):
        """Send and wait for every acknowledgement; raises on the first failed send."""
        futures = [self._producer.send(
            self.topic, key=a["id"].encode("utf-8"),
            value=json.dumps(a, ensure_ascii=False).encode("utf-8"),
            timestamp_ms=int(a["published_at"])) for a in articles]
        self._producer.flush()
        for future in futures:
            future.get(timeout=60)

    def close(self):
        self._producer.close(timeout=10)
        self._consumer.close()


class FollowFeeds:
    """Polls feeds and publishes their new entries (see the module docstring).

    Args (keyword-only):
      feeds: ``FeedSource`` list. state: a ``FeedState``. publisher: a
      ``KafkaFeedPublisher`` (or anything with ``topic``, ``end_offsets``,
      ``keys_since``, ``send_all``). http: an ``httpx.Client`` (``feed_fetch.client``).
      interval_s: seconds between polls of a feed (default 900).
      max_bytes: the largest answer read (default 5 MiB).
      full_text: fetch each new entry's page and take its text (trafilatura).
      random: ``random()`` for the jitter (default ``random.random``).
      wall_ms: the clock, epoch ms (default ``time.time``).
    """

    def __init__(self, *, feeds, state, publisher, http, interval_s=DEFAULT_INTERVAL_S,
                 max_bytes=feed_fetch.DEFAULT_MAX_BYTES, full_text=False, random=None,
                 wall_ms=lambda: int(time.time() * 1000)):
        if not feeds:
            raise ValueError("no feeds to follow: give --feed URL or --feeds-file FILE")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._feeds, self._state, self._publisher, self._http = feeds, state, publisher, http
        self._interval_s, self._max_bytes, self._full_text = interval_s, max_bytes, full_text
        self._random, self._wall_ms = random, wall_ms
        started_s = wall_ms() / 1000
        for feed in feeds:
            row = state.feed(feed.url)
            LAST_SUCCESS.labels(feed.url).set(
                row.last_success_ms / 1000 if row.last_success_ms else started_s)

    def recover(self):
        """Settle a batch a crash left pending: what reached the topic is recorded as
        published, the rest is sent (the same messages) and recorded."""
        pending = self._state.pending()
        if not pending:
            return 0
        starts = {}
        for _, _, _, offsets in pending:
            for partition, offset in offsets.items():
                starts[partition] = min(offset, starts.get(partition, offset))
        there = self._publisher.keys_since(starts)
        found = {a["id"]: feed for feed, _, a, _ in pending if a["id"] in there}
        missing = [(feed, a) for feed, _, a, _ in pending if a["id"] not in there]
        now = self._wall_ms()
        self._state.mark_published(found, now)
        _LOG.warning("a batch was left pending (the last run stopped while publishing): "
                     "%d of its %d entries are on %s, sending the other %d", len(found),
                     len(pending), self._publisher.topic, len(missing))
        if missing:
            self._state.forget_pending([a["id"] for _, a in missing])
            by_feed = {}
            for feed, article in missing:
                by_feed.setdefault(feed, []).append(article)
            for feed, articles in by_feed.items():
                self._publish(feed, articles)
        return len(missing)

    def _publish(self, feed_url, articles):
        self._state.begin_batch(feed_url, self._publisher.topic, articles,
                                self._publisher.end_offsets())
        _crash_point("before_send")
        self._publisher.send_all(articles)
        _crash_point("after_ack")
        self._state.mark_published({a["id"]: feed_url for a in articles}, self._wall_ms())
        PUBLISHED.labels(feed_url).inc(len(articles))

    def poll(self, feed: FeedSource):
        """Fetch one feed and publish its new entries; return ``(outcome, published)``."""
        now = self._wall_ms()
        row = self._state.feed(feed.url)
        fetched = feed_fetch.fetch(self._http, feed.url, etag=row.etag,
                                   last_modified=row.last_modified, max_bytes=self._max_bytes)
        outcome, published = fetched.outcome, 0
        if outcome == "ok":
            try:
                document = parse_feed(fetched.body, fetched.url, fetched.headers)
            except Exception as exc:  # noqa: BLE001 - a parser crash is this feed's problem only
                document = FeedDocument("", "", [], "malformed", f"{type(exc).__name__}: {exc}")
            if document.problem:
                outcome = document.problem
                _LOG.warning("feed %s: %s (%s)%s", feed.url, outcome, document.detail,
                             f"; {len(document.entries)} entries read all the same"
                             if document.entries else "")
            if document.entries:
                try:
                    published = self._publish_new(feed, document, now, row, fetched)
                except KafkaError as exc:
                    _LOG.error("feed %s: could not publish its new entries to %s: %r; they "
                               "are settled before the next batch (recover)", feed.url,
                               self._publisher.topic, exc)
        elif outcome != "not_modified":
            _LOG.warning("feed %s: %s (%s)", feed.url, outcome,
                         fetched.detail or f"HTTP {fetched.status}")
        FETCHES.labels(feed.url, outcome).inc()
        row.failures = 0 if outcome in feed_fetch.SUCCESS else row.failures + 1
        if outcome in feed_fetch.SUCCESS:
            row.last_success_ms = now
            LAST_SUCCESS.labels(feed.url).set(now / 1000)
        delay_s = feed_fetch.next_poll_delay_s(interval_s=self._interval_s, failures=row.failures,
                                               retry_after_s=fetched.retry_after_s,
                                               random=self._random)
        row.next_poll_ms = now + int(delay_s * 1000)
        self._state.save_feed(row)
        return outcome, published

    def _publish_new(self, feed, document, now, row, fetched):
        articles = {}
        for entry in document.entries:
            try:
                article = to_article(entry, feed_url=feed.url, document=document,
                                     first_seen_ms=now, name=feed.name)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                _LOG.warning("feed %s: entry %r skipped, it cannot be read as an article: %r",
                             feed.url, entry.get("id") or entry.get("link"), exc)
                continue
            articles.setdefault(article["id"], article)  # a feed listing an item twice
        self._state.touch(list(articles), now)
        if self._state.pending():  # a batch that failed earlier in this run
            self.recover()
        new = [articles[i] for i in self._state.unpublished(list(articles))]
        if self._full_text:
            new = [self._with_page_text(a) for a in new]
        if new:
            self._publish(feed.url, new)
        # The validators only once the entries are published: a 304 never hides an
        # entry that was not sent.
        row.etag = fetched.headers.get("etag")
        row.last_modified = fetched.headers.get("last-modified")
        return len(new)

    def _with_page_text(self, article):
        if not article.get("url"):
            return article
        page = feed_fetch.fetch(self._http, article["url"], max_bytes=self._max_bytes)
        if page.outcome != "ok":
            _LOG.warning("full text of %s: %s (%s); keeping the feed's text", article["url"],
                         page.outcome, page.detail or f"HTTP {page.status}")
            return article
        try:
            import trafilatura
        except ImportError:
            msg = "--full-text needs trafilatura: pip install trafilatura==2.3.1 lxml_html_clean"
            raise RuntimeError(msg) from None
        text = trafilatura.extract(page.body, url=article["url"], favor_precision=True)
        return dict(article, body=text) if text and len(text) > len(article["body"]) else article

    def poll_due(self):
        """Poll every feed whose next poll time has come; return ``{url: (outcome, n)}``."""
        now = self._wall_ms()
        return {f.url: self.poll(f) for f in self._feeds
                if self._state.feed(f.url).next_poll_ms <= now}

    def poll_all(self):
        """Poll every feed once, now (``--once``)."""
        return {f.url: self.poll(f) for f in self._feeds}

    def seconds_to_next_poll(self):
        soonest = min(self._state.feed(f.url).next_poll_ms for f in self._feeds)
        return max(0.0, (soonest - self._wall_ms()) / 1000)

    def run(self, stop: threading.Event):
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            self.poll_due()
            self._state.prune(self._wall_ms())
            stop.wait(min(self.seconds_to_next_poll(), 60.0))


def _arguments():
    parser = argparse.ArgumentParser(
        prog="entitystream feeds",
        description="Follow RSS 2.0, RSS 1.0 (RDF) and Atom feeds: publish each new entry "
                    "to a Kafka topic as an article message (key = article id, timestamp = "
                    "publication time), once.")
    parser.add_argument("--feed", action="append", default=[], metavar="URL",
                        help="a feed's URL (repeatable)")
    parser.add_argument("--feeds-file", metavar="FILE",
                        help="OPML (a feed reader's export) or a plain list: one URL a line, "
                             "optionally followed by a name for the source")
    parser.add_argument("--topic", required=True, help="destination topic")
    parser.add_argument("--once", action="store_true", help="poll every feed once and exit")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
                        help="seconds between polls of each feed, +-10%% jitter, longer "
                             "after errors or when a server asks (default %(default)s)")
    parser.add_argument("--state", metavar="PATH",
                        help="SQLite file of what was published and each feed's validators "
                             "(default <cache>/feeds/<topic>.sqlite)")
    parser.add_argument("--full-text", action="store_true",
                        help="fetch each new entry's page and publish its text (trafilatura)")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="default $KAFKA_BOOTSTRAP_SERVERS, else the local broker")
    parser.add_argument("--partitions", type=int, default=1,
                        help="partitions if the topic is created (default %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=feed_fetch.DEFAULT_MAX_BYTES,
                        help="largest answer read, after decompression (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                        help="HTTP connect/read timeout (default %(default)s)")
    parser.add_argument("--max-age-days", type=float, default=DEFAULT_MAX_AGE_SECONDS / 86_400,
                        help="forget published ids no feed listed for this long "
                             "(default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                        help="/metrics port, 0 for none (default %(default)s)")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    from connectors import kafka_security
    kafka_security.add_arguments(parser)
    return parser


def main(argv=None):
    """``entitystream feeds``; returns the exit code (1 when every feed failed ``--once``)."""
    args = _arguments().parse_args(argv)
    from connectors import kafka_security
    from deploy.broker import cache_dir
    from pipeline import metrics
    from pipeline.run import resolve_bootstrap
    from pipeline.settings import Settings
    feeds = [FeedSource(url) for url in args.feed]
    if args.feeds_file:
        feeds += read_feeds_file(args.feeds_file)
    security = kafka_security.from_args(args)
    bootstrap = resolve_bootstrap(Settings(bootstrap_servers=args.bootstrap_servers,
                                           kafka_security=security))
    kafka_security.check_connection(bootstrap, security)
    state_path = pathlib.Path(args.state or cache_dir() / "feeds" / f"{args.topic}.sqlite")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_host)
        print(f"metrics: http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    state = FeedState(state_path, max_age_seconds=args.max_age_days * 86_400)
    publisher = KafkaFeedPublisher(bootstrap_servers=bootstrap, topic=args.topic,
                                   partitions=args.partitions,
                                   client_config=security.client_config())
    http = feed_fetch.client(args.timeout)
    try:
        follow = FollowFeeds(feeds=feeds, state=state, publisher=publisher, http=http,
                             interval_s=args.interval, max_bytes=args.max_bytes,
                             full_text=args.full_text)
        follow.recover()
        if args.once:
            results = follow.poll_all()
            for url, (outcome, count) in results.items():
                print(f"{url}: {outcome}, {count} new", flush=True)
            ok = [u for u, (o, _) in results.items() if o in feed_fetch.SUCCESS]
            print(f"published {sum(n for _, n in results.values())} entries from "
                  f"{len(ok)} of {len(results)} feeds to {args.topic} (state {state_path})")
            return 0 if ok else 1
        print(f"following {len(feeds)} feeds into {args.topic} every {args.interval:g}s "
              f"(state {state_path}); Ctrl-C stops", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        follow.run(stop)
        return 0
    finally:
        http.close()
        publisher.close()
        state.close()


if __name__ == "__main__":
    sys.exit(main())
