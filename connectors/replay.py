"""Replay seed files and corpora into Kafka as article messages.

Readers turn a path into ``dict`` articles shaped by ``schemas/article.avsc``
(``published_at`` in epoch milliseconds):

- a directory or file ``manifest.json`` of seed articles (``seeds/``): the
  manifest gives each file's id, title, source and publication time;
- Reuters-21578 SGML files (``reut2-*.sgm``, or their directory): one article
  per ``<REUTERS>`` with a body, timestamped by its ``<DATE>``;
- JSON Lines files (``*.jsonl``): one article object per line.

``publish`` sends them with the article id as key and the publication time as
the Kafka timestamp, in publication order by default (a replay is a feed as
it happened). A topic that does not exist is created with time-based
retention off, since replayed history would otherwise be deleted at once.
"""
import datetime as dt
import html
import json
import logging
import pathlib
import re

__all__ = ["read_articles", "publish", "ensure_topic", "read_seeds", "read_reuters"]

_LOG = logging.getLogger(__name__)


def _iso_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


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
               "published_at": _iso_ms(entry["published_at"]), "language": "en"}


_REUTERS = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_TAG = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.S) for name in ("DATE", "TITLE", "BODY")}
_NEWID = re.compile(r'NEWID="(\d+)"')


def _reuters_date(text: str) -> int:
    # "26-FEB-1987 15:01:01.79"; the fraction is hundredths of a second.
    stamp = dt.datetime.strptime(text.strip()[:20], "%d-%b-%Y %H:%M:%S")
    return int(stamp.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def read_reuters(path, skipped=None):
    """Articles of one Reuters-21578 SGML file. Stories without a body or a
    readable date are skipped and counted in ``skipped`` (a dict) by reason."""
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
        try:
            published = _reuters_date(date.group(1)) if date else None
        except ValueError:
            published = None
        if published is None:
            skipped["bad_date"] = skipped.get("bad_date", 0) + 1
            continue
        title = _TAG["TITLE"].search(story)
        yield {"id": f"reuters-{_NEWID.search(attrs).group(1)}", "source": "Reuters-21578",
               "url": None, "title": html.unescape(title.group(1)) if title else "",
               "body": html.unescape(body.group(1)), "published_at": published,
               "language": "en"}


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON article: {exc}") from None


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


def publish(articles, *, bootstrap_servers, topic, partitions=1, order="time",
            progress=None, client_config=None):
    """Send ``articles`` to ``topic``; return the number sent.

    ``order``: ``time`` (by publication time, the default) or ``input``.
    ``progress``: optional callable ``(sent, total)`` called as sends complete.
    ``client_config``: extra kafka-python settings for the admin client and the
    producer, e.g. security options (``KafkaSecurity.client_config()``).
    """
    from kafka import KafkaProducer
    articles = list(articles)
    if order == "time":
        articles.sort(key=lambda a: (a["published_at"], a["id"]))
    elif order != "input":
        raise ValueError(f"order must be 'time' or 'input', got {order!r}")
    ensure_topic(bootstrap_servers, topic, partitions, client_config)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all",
                             linger_ms=20, compression_type=None,
                             client_id="entitystream-replay", **(client_config or {}))
    try:
        futures = []
        for index, article in enumerate(articles, 1):
            value = json.dumps(article, ensure_ascii=False).encode("utf-8")
            futures.append(producer.send(topic, key=article["id"].encode("utf-8"),
                                         value=value, timestamp_ms=int(article["published_at"])))
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
