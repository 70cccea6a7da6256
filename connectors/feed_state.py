"""What ``entitystream feeds`` remembers across restarts, in one SQLite file.

- ``published``: the ids of the articles the broker acknowledged, with when each
  was first seen and last seen in its feed. Rows not seen in any feed for
  ``max_age_seconds`` (default 30 days) are dropped, so the file stays small; an
  entry a feed still lists is seen again at every poll and so is never dropped.
- ``pending``: the articles of the batch being published, written (with the end
  offsets of the topic's partitions just before) before the first is sent. After
  a crash between the broker's acknowledgement and ``published``, the next start
  reads the topic from those offsets: what is there is marked published, what is
  not is sent again (``FeedPublisher.recover``). So a restart after SIGKILL
  publishes no entry twice and loses none.
- ``feeds``: per feed, the HTTP validators (ETag, Last-Modified) for conditional
  GETs, the next poll time, the consecutive failures (for the backoff) and the
  last success.

One writer: the ``feeds`` process. Every change is one transaction.
"""
import json
import sqlite3

__all__ = ["FeedState", "FeedRow", "DEFAULT_MAX_AGE_SECONDS"]

DEFAULT_MAX_AGE_SECONDS = 30 * 86_400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    id TEXT PRIMARY KEY, feed TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS published_last_seen ON published (last_seen_ms);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY, feed TEXT NOT NULL, article TEXT NOT NULL, topic TEXT NOT NULL,
    start_offsets TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, next_poll_ms INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0, last_success_ms INTEGER);
"""


class FeedRow:
    """One feed's polling state."""
    __slots__ = ("url", "etag", "last_modified", "next_poll_ms", "failures", "last_success_ms")

    def __init__(self, url, etag=None, last_modified=None, next_poll_ms=0, failures=0,
                 last_success_ms=None):
        self.url, self.etag, self.last_modified = url, etag, last_modified
        self.next_poll_ms, self.failures, self.last_success_ms = next_poll_ms, failures, last_success_ms


class FeedState:
    """The SQLite state at ``path`` (``:memory:`` for tests of the logic)."""

    def __init__(self, path, *, max_age_seconds=DEFAULT_MAX_AGE_SECONDS):
        if max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds must be > 0, got {max_age_seconds!r}")
        self._db = sqlite3.connect(str(path), isolation_level=None)  # explicit transactions
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a recorded id survives a power cut
        self._db.executescript(_SCHEMA)
        self._max_age_ms = int(max_age_seconds * 1000)

    def close(self):
        self._db.close()

    # --- published ids
    def unpublished(self, ids):
        """The ids of ``ids`` neither published nor pending, in their order."""
        ids = list(ids)
        known = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for table in ("published", "pending"):
                rows = self._db.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk)
                known.update(r[0] for r in rows)
        return [i for i in ids if i not in known]

    def touch(self, ids, now_ms):
        """The entries ``ids`` are still listed by their feed: not dropped for age."""
        with self._transaction():
            self._db.executemany("UPDATE published SET last_seen_ms=? WHERE id=?",
                                 [(now_ms, i) for i in ids])

    def prune(self, now_ms) -> int:
        """Forget ids no feed listed for ``max_age_seconds``; return how many."""
        with self._transaction():
            return self._db.execute("DELETE FROM published WHERE last_seen_ms < ?",
                                    (now_ms - self._max_age_ms,)).rowcount

    # --- the batch being published
    def begin_batch(self, feed, topic, articles, start_offsets):
        """Write the batch down (with the topic's end offsets) before sending it."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO pending (id, feed, article, topic, start_offsets) "
                "VALUES (?, ?, ?, ?, ?)",
                [(a["id"], feed, json.dumps(a, ensure_ascii=False), topic,
                  json.dumps(start_offsets)) for a in articles])

    def pending(self):
        """[(feed, topic, article, start offsets {partition: offset})] left by a crash."""
        rows = self._db.execute("SELECT feed, topic, article, start_offsets FROM pending")
        return [(feed, topic, json.loads(article),
                 {int(p): o for p, o in json.loads(offsets).items()})
                for feed, topic, article, offsets in rows]

    def mark_published(self, feed_of, now_ms):
        """The articles ``feed_of`` ({id: feed}) are on the topic: published, not pending."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO published (id, feed, first_seen_ms, last_seen_ms) "
                "VALUES (?, ?, ?, ?)", [(i, feed, now_ms, now_ms) for i, feed in feed_of.items()])
            self._db.executemany("DELETE FROM pending WHERE id=?", [(i,) for i in feed_of])

    def forget_pending(self, ids):
        """Drop ``ids`` from the pending batch (about to be sent again in a new one)."""
        with self._transaction():
            self._db.executemany("DELETE FROM pending WHERE id=?", [(i,) for i in ids])

    # --- polling state per feed
    def feed(self, url) -> FeedRow:
        row = self._db.execute("SELECT url, etag, last_modified, next_poll_ms, failures, "
                               "last_success_ms FROM feeds WHERE url=?", (url,)).fetchone()
        return FeedRow(*row) if row else FeedRow(url)

    def save_feed(self, row: FeedRow):
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO feeds (url, etag, last_modified, next_poll_ms, failures, "
                "last_success_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (row.url, row.etag, row.last_modified, row.next_poll_ms, row.failures,
                 row.last_success_ms))

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
