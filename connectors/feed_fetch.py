"""Fetching feeds politely: one conditional GET, bounded, and when to come back.

``fetch(client, url, ...)`` sends ``If-None-Match`` / ``If-Modified-Since`` from
the last answer, follows at most ``MAX_REDIRECTS`` redirects, reads at most
``max_bytes`` (after decompression) within ``total_timeout_s``, and never raises
for what a server or network does: it returns a ``Fetched`` whose ``outcome`` is
one of ``OUTCOMES`` (the ``outcome`` label of ``entitystream_feed_fetches_total``).

``next_poll_delay_s(...)``: the per-feed interval with jitter; after failures,
exponential backoff (interval x 2^(failures-1), at most ``MAX_BACKOFF_S``); a
``Retry-After`` (429, 503) is honoured when it asks for longer. Pure: the random
source is an argument.
"""
import dataclasses
import email.utils
import time

from pipeline import __version__

__all__ = ["Fetched", "fetch", "client", "next_poll_delay_s", "parse_retry_after",
           "OUTCOMES", "SUCCESS", "USER_AGENT", "DEFAULT_MAX_BYTES", "MAX_REDIRECTS"]

USER_AGENT = (f"entitystream-feeds/{__version__} (RSS/Atom poller; conditional GET; "
              "honours Retry-After)")
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_BACKOFF_S = 6 * 3600
MAX_RETRY_AFTER_S = 24 * 3600
JITTER = 0.1  # +-10 % of each delay, so that feeds polled together drift apart
OUTCOMES = ("ok", "not_modified", "malformed", "not_a_feed", "http_error", "rate_limited",
            "timeout", "connection_error", "too_many_redirects", "too_large")
SUCCESS = ("ok", "not_modified")
_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
           "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


@dataclasses.dataclass(frozen=True)
class Fetched:
    outcome: str
    status: int = None
    body: bytes = b""
    url: str = None  # after redirects
    headers: dict = dataclasses.field(default_factory=dict)
    retry_after_s: float = None
    detail: str = ""


def client(timeout_s=20.0):
    """An ``httpx.Client`` with the project's User-Agent, timeouts and redirect limit."""
    import httpx
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                        follow_redirects=True, max_redirects=MAX_REDIRECTS,
                        headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT})


def parse_retry_after(value, now_s=None):
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def fetch(http, url, *, etag=None, last_modified=None, max_bytes=DEFAULT_MAX_BYTES,
          total_timeout_s=60.0, clock=time.monotonic) -> Fetched:
    """GET ``url`` with ``http`` (see ``client``); never raises for the server's or the
    network's doing (see the module docstring)."""
    import httpx
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = clock()
    try:
        with http.stream("GET", url, headers=headers) as response:
            status, final_url = response.status_code, str(response.url)
            answer = dict(response.headers)
            if status == 304:
                return Fetched("not_modified", status, url=final_url, headers=answer)
            if status in (429, 503):
                wait_s = parse_retry_after(response.headers.get("retry-after"))
                if status == 429 or wait_s is not None:
                    return Fetched("rate_limited", status, url=final_url, headers=answer,
                                   retry_after_s=wait_s, detail=f"HTTP {status}")
            if not 200 <= status < 300:
                return Fetched("http_error", status, url=final_url, headers=answer,
                               detail=f"HTTP {status} {response.reason_phrase}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                return Fetched("too_large", status, url=final_url, headers=answer,
                               detail=f"Content-Length {int(declared):,} > {max_bytes:,} bytes")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return Fetched("too_large", status, url=final_url, headers=answer,
                                   detail=f"over {max_bytes:,} bytes")
                if clock() - started > total_timeout_s:
                    return Fetched("timeout", status, url=final_url, headers=answer,
                                   detail=f"not read within {total_timeout_s:g} s")
                chunks.append(chunk)
            return Fetched("ok", status, b"".join(chunks), final_url, answer)
    except httpx.TooManyRedirects as exc:
        return Fetched("too_many_redirects", detail=f"more than {MAX_REDIRECTS} redirects: {exc}")
    except httpx.TimeoutException as exc:
        return Fetched("timeout", detail=f"{type(exc).__name__}: {exc}")
    except (httpx.TransportError, httpx.InvalidURL, httpx.DecodingError) as exc:
        return Fetched("connection_error", detail=f"{type(exc).__name__}: {exc}")


def next_poll_delay_s(*, interval_s, failures=0, retry_after_s=None, random=None):
    """Seconds until a feed's next poll (see the module docstring); ``random()`` in
    [0, 1) (default ``random.random``) sets the jitter."""
    import random as random_module
    draw = (random or random_module.random)()
    delay = interval_s if failures <= 0 else min(max(interval_s, MAX_BACKOFF_S),
                                                 interval_s * 2 ** min(failures - 1, 20))
    delay *= 1 + JITTER * (2 * draw - 1)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay
