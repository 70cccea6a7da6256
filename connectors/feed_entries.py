"""Feed documents to article messages: parse with feedparser, map each entry.

``parse_feed(data, url, headers)`` reads RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom
(feedparser), with relative links resolved against the URL the document came
from, and says what the document is: ``FeedDocument(title, language, entries,
problem)``. ``problem`` is None for a feed, else why it is not one
(``not_a_feed``: an HTML page or anything feedparser finds no feed in) or why
it is broken (``malformed``: XML errors, though the entries feedparser salvaged
are kept).

``to_article(entry, ...)`` maps one entry to a message of ``schemas/article.avsc``:

- ``id``: the entry's GUID when it is global (a URL, ``tag:``, ``urn:``), else
  its canonical link (absolute, no fragment), else the feed's URL with the
  GUID or a hash of the title and body: stable across polls and restarts.
- ``source``: the name the feeds file gives, else the feed's title, else the
  feed's host. ``url``: the canonical link. ``title``: text.
- ``body``: the longest of the entry's content and summary, HTML removed
  (paragraphs and line breaks kept as new lines, scripts and styles dropped,
  entities decoded); the title when the entry has neither.
- ``published_at``: the entry's ``published``, else ``updated`` (feedparser
  applies the zone the date gives, UTC when it gives none), epoch ms; an
  entry without one, or dated more than ``MAX_AHEAD_MS`` ahead of the clock,
  gets the time it was first seen, and ``published_at_from: "first_seen"``
  (else ``"published"`` or ``"updated"``) says which.
- ``language``: the entry's or the feed's (``en-us`` -> ``en``), if given.
"""
import calendar
import dataclasses
import hashlib
import html.parser
import re
import urllib.parse

__all__ = ["FeedDocument", "parse_feed", "to_article", "html_to_text", "canonical_url",
           "MAX_AHEAD_MS"]

#: Publication times further ahead of the clock than this are not believed (a wrong
#: clock or zone): the entry is stamped with the time it was first seen instead.
MAX_AHEAD_MS = 5 * 60 * 1000
_GLOBAL_ID = re.compile(r"^(https?://|tag:|urn:)", re.I)


@dataclasses.dataclass(frozen=True)
class FeedDocument:
    title: str
    language: str
    entries: list
    problem: str = None  # None, "not_a_feed" or "malformed"
    detail: str = ""


def parse_feed(data: bytes, url: str, headers=None) -> FeedDocument:
    """Parse one fetched document; ``url`` is where it came from (after redirects),
    ``headers`` the HTTP response headers (their charset is used)."""
    import feedparser
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    response_headers["content-location"] = url  # the base for relative links
    parsed = feedparser.parse(data, response_headers=response_headers)
    feed = parsed.get("feed", {})
    title = _text(feed.get("title", ""))
    language = feed.get("language", "") or ""
    entries = list(parsed.get("entries", []))
    if not parsed.get("version") and not entries:
        detail = (f"{type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}"
                  if parsed.get("bozo") else "no RSS, RDF or Atom element found")
        return FeedDocument(title, language, [], "not_a_feed", detail)
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if exc is not None and not isinstance(exc, (feedparser.CharacterEncodingOverride,
                                                feedparser.NonXMLContentType)):
        return FeedDocument(title, language, entries, "malformed",
                            f"{type(exc).__name__}: {exc}")
    return FeedDocument(title, language, entries)


class _Text(html.parser.HTMLParser):
    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
               "blockquote", "pre", "section", "article", "header", "footer", "table", "ul", "ol"}
    _DROPPED = {"script", "style", "noscript", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self._dropping = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self._DROPPED:
            self._dropping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._DROPPED:
            self._dropping = max(0, self._dropping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._dropping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Text of an HTML fragment: tags removed, entities decoded, one blank-free line
    per paragraph or line break, runs of spaces made one."""
    parser = _Text()
    parser.feed(markup or "")
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip()
             for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def _text(value) -> str:
    return html_to_text(value) if value else ""


def canonical_url(link: str, base: str = None) -> str:
    """``link`` made absolute against ``base``, without its fragment, scheme and host in
    lower case; None for an empty link."""
    if not link:
        return None
    absolute = urllib.parse.urljoin(base or "", link.strip())
    parts = urllib.parse.urlsplit(absolute)
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                                    parts.query, ""))


def _article_id(entry, feed_url, url, title, body):
    guid = (entry.get("id") or "").strip()
    if guid and _GLOBAL_ID.match(guid):
        return guid
    if url:
        return url
    if guid:
        return f"{feed_url}#guid={guid}"
    digest = hashlib.sha256(f"{title}\n{body}".encode("utf-8")).hexdigest()[:16]
    return f"{feed_url}#sha256={digest}"


def _published(entry, first_seen_ms):
    """(epoch ms, which field) of an entry; ``first_seen_ms`` when it has no usable date."""
    for field in ("published", "updated"):
        parsed = entry.get(f"{field}_parsed")
        if parsed:
            ms = calendar.timegm(parsed) * 1000  # feedparser gives UTC
            if ms <= first_seen_ms + MAX_AHEAD_MS:
                return ms, field
            return first_seen_ms, "first_seen"
    return first_seen_ms, "first_seen"


def _body(entry):
    candidates = [c.get("value", "") for c in entry.get("content", []) or []]
    candidates.append(entry.get("summary", ""))
    texts = [html_to_text(c) for c in candidates if c]
    return max(texts, key=len, default="")


def to_article(entry, *, feed_url: str, document: FeedDocument, first_seen_ms: int,
               name: str = None) -> dict:
    """The article message of one feedparser entry (see the module docstring).

    Args (keyword-only):
      feed_url: the feed's URL as configured (part of ids that are not global).
      document: the parsed feed (its title and language).
      first_seen_ms: when the entry was first seen, epoch ms (the date of undated ones).
      name: the feed's name from the feeds file, if any (the ``source``).
    """
    url = canonical_url(entry.get("link"), feed_url)
    title = _text(entry.get("title", ""))
    body = _body(entry) or title
    published_ms, field = _published(entry, first_seen_ms)
    language = (entry.get("language") or document.language or "").split("-")[0].lower()
    article = {"id": _article_id(entry, feed_url, url, title, body),
               "source": name or document.title or urllib.parse.urlsplit(feed_url).netloc,
               "url": url, "title": title, "body": body, "published_at": published_ms,
               "published_at_from": field}
    if language:
        article["language"] = language
    return article
