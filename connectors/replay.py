"""Replay seed files and corpora into Kafka as article messages.

Readers turn a path into ``dict`` articles shaped by ``schemas/article.avsc``
(``published_at`` in epoch milliseconds):

- a directory or file ``manifest.json`` of seed articles (``seeds/``): the
  manifest gives each file's id, title, source and publication time;
- Reuters-21578 SGML files (``reut2-*.sgm``, or their directory): one article
  per ``<REUTERS>`` with a body, timestamped by its ``<DATE>``;
- JSON Lines files (``*.jsonl``): one article object per line, ``published_at``
  in any form the pipeline's decoder takes (epoch milliseconds, or ISO-8601
  with a zone; ``pipeline.decode.parse_time_ms``).

``publish`` sends them with the article id as key and the publication time as
the Kafka timestamp, in publication order by default (a replay is a feed as
it happened); ``publish_paced`` sends them at the pace of a live feed
(``connectors/pacing.py`` says when). A topic that does not exist is created with time-based
retention off, since replayed history would otherwise be deleted at once.
"""
import datetime as dt
import html
import json
import logging
import pathlib
import re
import time

from connectors import pacing
from pipeline.decode import DecodeError, parse_time_ms

__all__ = ["read_articles", "publish", "publish_paced", "ensure_topic", "read_seeds", "read_reuters"]

_LOG = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_MS = dt.timedelta(milliseconds=1)


def read_seeds(manifest_path):
    """Articles of a seed manifest (``seeds/manifest.json``)."""
    manifest_path = pathlib.Path(manifest_path)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for entry in manifest["articles"]:
        text = (manifest_path.parent / entry["file"]).read_text(encoding="utf-8")
        lines = text.splitlines()
        # The headline, when it is a line of its own, is the title, not body.
        if entry["title"] in (line.strip() for line in lines):
            lines.remove(next(l for l in lines if l.strip() == entry["title"]))
        yield {"id": entry["id"], "source": entry["source"], "url": entry.get("url"),
               "title": entry["title"], "body": "\n".join(lines),
               "published_at": parse_time_ms(entry["published_at"]), "language": "en"}


_REUTERS = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_TAG = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.S) for name in ("DATE", "TITLE", "BODY")}
_NEWID = re.compile(r'NEWID="(\d+)"')


# "26-FEB-1987 15:01:01.79": the fraction is hundredths of a second, sometimes tenths
# ("7-APR-1987 16:22:00.0"); some dates have two spaces, a space in front, or control
# codes and a comment after them ("27-MAR-1987 00:02:59.13&#5;&#5;&#5;RM").
_REUTERS_DATE = re.compile(r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4})\s+(\d+):(\d\d):(\d\d)(?:\.(\d+))?")
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG",
                                       "SEP", "OCT", "NOV", "DEC"), 1)}


def _reuters_date(text: str, story_id: str) -> int:
    """Epoch milliseconds of a Reuters ``<DATE>``; ValueError when its day is unreadable.
    A time of day out of range (one story: "31-MAR-1987 605:12:19.12") keeps the day, at
    00:00, with a warning naming the story."""
    match = _REUTERS_DATE.match(text)
    if not match or match.group(2).upper() not in _MONTHS:
        raise ValueError(f"unreadable date {text!r}")
    day, month, year, hour, minute, second, fraction = match.groups()
    date = dt.datetime(int(year), _MONTHS[month.upper()], int(day), tzinfo=dt.timezone.utc)
    try:
        stamp = date.replace(hour=int(hour), minute=int(minute), second=int(second),
                             microsecond=int((fraction or "0")[:3].ljust(3, "0")) * 1000)
    except ValueError:
        _LOG.warning("%s: time of day in <DATE>%s</DATE> is out of range: read as %s 00:00 UTC",
                     story_id, text.strip(), date.date())
        stamp = date
    return (stamp - _EPOCH) // _ONE_MS


def read_reuters(path, skipped=None):
    """Articles of one Reuters-21578 SGML file. Stories without a body, without a
    ``<DATE>`` or with a date whose day cannot be read are skipped and counted in
    ``skipped`` (a dict) by reason: ``no_body``, ``no_date``, ``bad_date``."""
    skipped = skipped if skipped is not None else {}
    raw = pathlib.Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    for attrs, story in _REUTERS.findall(text):
        body = _TAG["BODY"].search(story)
        date = _TAG["DATE"].search(story)
        if not body:
            skipped["no_body"] = skipped.get("no_body", 0) + 1
            continue
        story_id = f"reuters-{_NEWID.search(attrs).group(1)}"
        if not date:
            skipped["no_date"] = skipped.get("no_date", 0) + 1
            continue
        try:
            published = _reuters_date(date.group(1), story_id)
        except ValueError as exc:
            _LOG.warning("%s in %s: %s, skipped", story_id, path, exc)
            skipped["bad_date"] = skipped.get("bad_date", 0) + 1
            continue
        title = _TAG["TITLE"].search(story)
        yield {"id": story_id, "source": "Reuters-21578",
               "url": None, "title": html.unescape(title.group(1)) if title else "",
               "body": html.unescape(body.group(1)), "published_at": published,
               "language": "en"}


def _read_jsonl(path):
    """Article objects, one a line; ``published_at`` as the decoder takes it (epoch
    milliseconds, or ISO-8601 with a zone), given back in epoch milliseconds."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                article = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON article: {exc}") from None
            if not isinstance(article, dict) or not isinstance(article.get("id"), str):
                raise ValueError(f"{path}:{number}: not an article: a JSON object with a "
                                 "string 'id' is needed")
            if article.get("published_at") is None:
                raise ValueError(f"{path}:{number}: article {article['id']!r} has no "
                                 "published_at (epoch milliseconds or ISO-8601 with a zone)")
            try:
                article["published_at"] = parse_time_ms(article["published_at"])
            except DecodeError as exc:
                raise ValueError(f"{path}:{number}: article {article['id']!r}: "
                                 f"{exc.detail}") from None
            yield article


def read_articles(paths, skipped=None):
    """Articles from every path (see the module docstring for what a path may be)."""
    for path in map(pathlib.Path, paths):
        if path.is_dir() and (path / "manifest.json").is_file():
            yield from read_seeds(path / "manifest.json")
        elif path.name == "manifest.json":
            yield from read_seeds(path)
        elif path.is_dir() and sorted(path.glob("reut2-*.sgm")):
            for sgm in sorted(path.glob("reut2-*.sgm")):
                yield from read_reuters(sgm, skipped)
        elif path.suffix == ".sgm":
            yield from read_reuters(path, skipped)
        elif path.suffix in (".jsonl", ".ndjson"):
            yield from _read_jsonl(path)
        else:
            msg = (f"don't know how to replay {path}: give a seeds directory or "
                   f"manifest.json, Reuters reut2-*.sgm files or their directory, or .jsonl")
            raise ValueError(msg)


def ensure_topic(bootstrap_servers, topic, partitions=1, client_config=None):
    """Create ``topic`` if missing; return its partition count. ``client_config``: extra
    kafka-python settings, e.g. security options (``KafkaSecurity.client_config()``)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="entitystream-admin",
                             **(client_config or {}))
    try:
        if topic not in admin.list_topics():
            try:
                admin.create_topics([NewTopic(topic, partitions, 1,
                                              topic_configs={"retention.ms": "-1"})])
            except TopicAlreadyExistsError:
                pass
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"])
    finally:
        admin.close()


def _producer(bootstrap_servers, client_config, client_id="entitystream-replay"):
    from kafka import KafkaProducer
    return KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all",
                         linger_ms=20, compression_type=None,
                         client_id=client_id, **(client_config or {}))


def _send(producer, topic, article):
    value = json.dumps(article, ensure_ascii=False).encode("utf-8")
    return producer.send(topic, key=article["id"].encode("utf-8"), value=value,
                         timestamp_ms=int(article["published_at"]))


def _sorted(articles, order):
    articles = list(articles)
    if order == "time":
        articles.sort(key=lambda a: (a["published_at"], a["id"]))
    elif order != "input":
        raise ValueError(f"order must be 'time' or 'input', got {order!r}")
    return articles


def publish(articles, *, bootstrap_servers, topic, partitions=1, order="time",
            progress=None, client_config=None):
    """Send ``articles`` to ``topic``; return the number sent.

    ``order``: ``time`` (by publication time, the default) or ``input``.
    ``progress``: optional callable ``(sent, total)`` called as sends complete.
    ``client_config``: extra kafka-python settings for the admin client and the
    producer, e.g. security options (``KafkaSecurity.client_config()``).
    """
    articles = _sorted(articles, order)
    ensure_topic(bootstrap_servers, topic, partitions, client_config)
    producer = _producer(bootstrap_servers, client_config)
    try:
        futures = []
        for index, article in enumerate(articles, 1):
            futures.append(_send(producer, topic, article))
            if progress and index % 500 == 0:
                progress(index, len(articles))
        producer.flush()
        for future in futures:
            future.get(timeout=60)
        if progress:
            progress(len(articles), len(articles))
    finally:
        producer.close(timeout=10)
    return len(articles)


#: Kafka 4 brokers refuse record timestamps more than an hour ahead of their clock
#: (``message.timestamp.after.max.ms``); a paced replay stops, with a clear error, first.
MAX_AHEAD_MS = 3_600_000


def publish_paced(articles, *, bootstrap_servers, topic, partitions=1, order="time",
                  speed=None, rate=None, loop=False, rebase_time=False, limit=None,
                  progress=None, client_config=None, stop=None, clock=time.monotonic,
                  wall_ms=lambda: int(time.time() * 1000)):
    """Send ``articles`` as a live feed would: paced by ``speed`` (seconds of
    publication time per wall-clock second) or ``rate`` (articles per second), for
    ever when ``loop`` (each cycle a span later, fresh ids), the publication times
    moved so the first is now when ``rebase_time``; see ``connectors.pacing``.
    Stops after ``limit`` articles, or when ``stop`` (a ``threading.Event``) is set.
    Returns ``(sent, newest publication time sent)``; ``progress(sent, total)`` is
    called at most every second (``total`` None when looping without a limit)."""
    import threading
    stop = stop or threading.Event()
    articles = _sorted(articles, order)
    ensure_topic(bootstrap_servers, topic, partitions, client_config)
    producer = _producer(bootstrap_servers, client_config)
    total = limit if loop else min(len(articles), limit if limit is not None else len(articles))
    sends = pacing.schedule(articles, speed=speed, rate=rate, loop=loop,
                            rebase_to_ms=wall_ms() if rebase_time and articles else None)
    sent, newest, pending, shown = 0, None, [], clock()
    started = clock()
    try:
        for send in sends:
            if limit is not None and sent >= limit:
                break
            # Wait for the send time; the event wakes the wait at once on Ctrl-C.
            if stop.wait(max(0.0, started + send.at_s - clock())):
                break
            ahead_ms = send.article["published_at"] - wall_ms()
            if ahead_ms > MAX_AHEAD_MS:
                msg = (f"article {send.article['id']!r} would be published "
                       f"{ahead_ms / 1000:,.0f} s ahead of the clock; brokers refuse "
                       "timestamps over an hour ahead (message.timestamp.after.max.ms): "
                       "with --rebase-time pace by --speed 1, or loop a corpus that is older")
                raise ValueError(msg)
            pending.append(_send(producer, topic, send.article))
            sent += 1
            newest = max(newest or send.article["published_at"], send.article["published_at"])
            failed = next((f for f in pending if f.failed()), None)
            if failed:
                raise failed.exception
            pending = [f for f in pending if not f.is_done]
            if progress and clock() - shown >= 1.0:
                shown = clock()
                progress(sent, total)
        producer.flush()
        for future in pending:
            future.get(timeout=60)
        if progress:
            progress(sent, total)
    finally:
        producer.close(timeout=10)
    return sent, newest
