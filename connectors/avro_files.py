"""WriteWindowPanes: the Avro file sink, one file per aggregate, window and pane.

Layout under the output directory::

    <kind>/<window start>_<window end>/pane-<index>-<timing>.avro
    entity_counts/20250503T120000Z_20250503T130000Z/pane-0000-ON_TIME.avro

Each file is an Avro Object Container File (fastavro, deflate) written to a
temporary name in the same directory, made durable, then renamed: readers
never see half a file, and a retried bundle or a re-run overwrites the same
name instead of adding a duplicate. Pane files are made durable once per
bundle (``_DurableBatch``: one ``syncfs`` of their file system after the
bundle's temporary files are written, then the renames, then another for
the renames) rather than with one fsync each; late-article files are rare
and keep their own fsync.

Late articles go to ``late_articles/<article id>.avro`` (``WriteLateArticles``).
``read_records(dir)`` reads everything back (used by ``entitystream inspect``).
"""
import datetime as dt
import os
import pathlib
import re
import tempfile
import time

import apache_beam as beam
import fastavro
from apache_beam.transforms.window import GlobalWindows
from prometheus_client import Counter, Histogram

from schemas import parsed_schema

__all__ = ["WriteWindowPanes", "WriteLateArticles", "pane_path", "window_dir", "pane_records", "schema_of", "read_records", "KIND_SCHEMAS"]

KIND_SCHEMAS = {"entity_counts": "entity_count", "sliding_entity_counts": "entity_count",
                "running_entity_counts": "entity_count", "cooccurrence": "cooccurrence",
                "running_cooccurrence": "cooccurrence"}

WRITE_SECONDS = Histogram("entitystream_sink_write_duration_seconds",
                          "Time to write and publish one pane file.", ["kind"])
WRITE_FAILURES = Counter("entitystream_sink_write_failures",
                         "Pane files that could not be written.", ["kind"])
AVRO_BYTES = Counter("entitystream_avro_written_bytes",
                     "Bytes of Avro pane files written.", ["kind"])


def _stamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def window_dir(root, kind, window_start_ms, window_end_ms) -> pathlib.Path:
    """Directory of one window's pane files under ``root``."""
    return (pathlib.Path(root) / kind
            / f"{_stamp(window_start_ms)}_{_stamp(window_end_ms)}")


def pane_path(root, pane) -> pathlib.Path:
    """Deterministic path of a ``WindowPane``'s file under ``root``."""
    return (window_dir(root, pane.kind, pane.window_start_ms, pane.window_end_ms)
            / f"pane-{pane.pane_index:04d}-{pane.pane_timing}.avro")


def schema_of(kind):
    """The parsed Avro schema of aggregate ``kind``."""
    if kind not in KIND_SCHEMAS:
        raise ValueError(f"no Avro schema for aggregate kind {kind!r}; known: {sorted(KIND_SCHEMAS)}")
    return parsed_schema(KIND_SCHEMAS[kind])


def pane_records(pane):
    """The pane's records with the kind, window and pane fields filled in."""
    extra = {"kind": pane.kind, "window_start": pane.window_start_ms,
             "window_end": pane.window_end_ms, "pane_timing": pane.pane_timing,
             "pane_index": pane.pane_index, "is_final": pane.is_final,
             "emitted_at": pane.emitted_at_ms}
    return [dict(r, **extra) for r in pane.records]


def _write_temporary(path, schema, records, fsync) -> str:
    """An Avro container file under a temporary name beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".avro", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            fastavro.writer(out, schema, records, codec="deflate")
            out.flush()
            if fsync:
                os.fsync(out.fileno())
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomically(path, schema, records) -> pathlib.Path:
    """Write an Avro container file: temporary name, fsync, rename."""
    path = pathlib.Path(path)
    tmp = _write_temporary(path, schema, records, fsync=True)
    try:
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _syncfs(directory):
    """Flush the file system holding ``directory`` (Linux ``syncfs``); False
    where it is not available."""
    import ctypes
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


class _DurableBatch:
    """Temporary files made durable together, then renamed to their names."""

    def __init__(self, root):
        self._root, self._files = root, []

    def write(self, path, schema, records):
        path = pathlib.Path(path)
        self._files.append((_write_temporary(path, schema, records, fsync=False), path))

    def commit(self):
        """Durable data first, then the names; returns the paths written."""
        files, self._files = self._files, []
        if files and not _syncfs(self._root):
            for tmp, _ in files:  # no syncfs here: one fsync each, as before
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        for tmp, path in files:
            os.replace(tmp, path)
        if files:
            _syncfs(self._root)
        return [path for _, path in files]

    def abort(self):
        for tmp, _ in self._files:
            pathlib.Path(tmp).unlink(missing_ok=True)
        self._files = []


def write_pane(root, pane) -> pathlib.Path:
    """Write one pane atomically; return its path."""
    return write_atomically(pane_path(root, pane), schema_of(pane.kind), pane_records(pane))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def late_article_path(root, late) -> pathlib.Path:
    """``late_articles/<article id>.avro``: one file per late article, so a
    retry or a re-run overwrites it."""
    return pathlib.Path(root) / "late_articles" / f"{_UNSAFE.sub('_', late['article_id'])}.avro"


class _WritePaneFn(beam.DoFn):
    def __init__(self, root):
        self._root = root

    def start_bundle(self):
        self._batch, self._kinds = _DurableBatch(self._root), []

    def process(self, pane):
        started = time.perf_counter()
        try:
            self._batch.write(pane_path(self._root, pane), schema_of(pane.kind),
                              pane_records(pane))
        except OSError:
            WRITE_FAILURES.labels(pane.kind).inc()
            self._batch.abort()
            raise  # the runner retries the bundle; the names are the same
        WRITE_SECONDS.labels(pane.kind).observe(time.perf_counter() - started)
        self._kinds.append(pane.kind)

    def finish_bundle(self):
        try:
            paths = self._batch.commit()
        except OSError:
            for kind in set(self._kinds):
                WRITE_FAILURES.labels(kind).inc()
            self._batch.abort()
            raise
        for kind, path in zip(self._kinds, paths):
            AVRO_BYTES.labels(kind).inc(path.stat().st_size)
            yield GlobalWindows.windowed_value(str(path))


class _WriteLateArticleFn(beam.DoFn):
    def __init__(self, root):
        self._root = root

    def process(self, late):
        path = write_atomically(late_article_path(self._root, late),
                                parsed_schema("late_article"), [late])
        AVRO_BYTES.labels("late_articles").inc(path.stat().st_size)
        yield str(path)


class WriteLateArticles(beam.PTransform):
    """Late-article dicts -> ``late_articles/<id>.avro`` under ``output_dir``."""

    def __init__(self, *, output_dir):
        super().__init__()
        self._root = str(output_dir)

    def expand(self, late):
        return late | "WriteAvroFile" >> beam.ParDo(_WriteLateArticleFn(self._root))


class WriteWindowPanes(beam.PTransform):
    """``WindowPane`` -> path of the Avro file written for it.

    Args:
      output_dir: root directory (created if missing).

    Example::

        panes | 'WriteEntityCounts' >> WriteWindowPanes(output_dir='out')
    """

    def __init__(self, *, output_dir):
        super().__init__()
        if not output_dir:
            raise ValueError("WriteWindowPanes needs an output_dir")
        self._root = str(output_dir)

    def expand(self, panes):
        return panes | "WriteAvroFile" >> beam.ParDo(_WritePaneFn(self._root))


def read_records(root, kind=None):
    """Yield ``(kind, record)`` for every record of every pane file under
    ``root`` (and of the late-article files, as kind ``late_articles``)."""
    root = pathlib.Path(root)
    paths = sorted(root.glob("*/*/pane-*.avro")) + sorted(root.glob("late_articles/*.avro"))
    for path in paths:
        file_kind = path.parent.name if path.parent.name == "late_articles" else path.parent.parent.name
        if kind is not None and file_kind != kind:
            continue
        with path.open("rb") as f:
            for record in fastavro.reader(f):
                yield file_kind, record
