"""CheckpointFiles: the aggregation's checkpoints, kept beside its Avro output.

``<output>/_checkpoint/aggregation.pickle`` holds the latest checkpoint (the
window book's snapshot, the source ledger and the outputs not yet known to be
written; see ``pipeline/checkpointer.py``). It is written like the pane files: a
temporary name, fsync, rename, then an fsync of the directory, so a crash
leaves either the old checkpoint or the new one, never half of one.

``discard_panes(keep)`` removes pane files a lost run wrote after its last
checkpoint (the restored run writes its own), keeping those ``keep(kind,
window_start_ms, window_end_ms, pane_index)`` accepts.
"""
import datetime as dt
import logging
import os
import pathlib
import pickle
import tempfile

from prometheus_client import Counter, Histogram

__all__ = ["CheckpointFiles", "CHECKPOINT_DIR"]

_LOG = logging.getLogger(__name__)

CHECKPOINT_DIR = "_checkpoint"
_NAME = "aggregation.pickle"
_FORMAT = 2  # 2: WindowBook snapshots (pipeline/checkpointer.py)

CHECKPOINT_SECONDS = Histogram("entitystream_checkpoint_duration_seconds",
                               "Time to write one aggregation checkpoint.")
CHECKPOINT_BYTES = Counter("entitystream_checkpoint_written_bytes",
                           "Bytes of aggregation checkpoints written.")


def _ms(stamp: str) -> int:
    parsed = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp() * 1000)


class CheckpointFiles:
    """Save and load checkpoints under ``output_dir``; picklable (a DoFn holds it)."""

    def __init__(self, output_dir):
        if not output_dir:
            raise ValueError("CheckpointFiles needs an output_dir")
        self._root = str(output_dir)

    @property
    def path(self) -> pathlib.Path:
        return pathlib.Path(self._root) / CHECKPOINT_DIR / _NAME

    def save(self, snapshot) -> int:
        """Write ``snapshot`` (any picklable value) atomically; return its size in bytes."""
        import time
        started = time.perf_counter()
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps((_FORMAT, snapshot), protocol=pickle.HIGHEST_PROTOCOL)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        CHECKPOINT_BYTES.inc(len(data))
        return len(data)

    def load(self):
        """The latest snapshot saved, or None when there is none."""
        path = self.path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            fmt, snapshot = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - any unpickling error means the same
            msg = (f"the checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                   "it was written by another version of entitystream or damaged. Move it "
                   "away to start with empty windows from the group's committed offsets.")
            raise ValueError(msg) from None
        if fmt != _FORMAT:
            raise ValueError(f"the checkpoint {path} has format {fmt}, this version reads "
                             f"{_FORMAT}; move it away to start with empty windows")
        return snapshot

    def discard_panes(self, keep) -> int:
        """Delete every pane file ``keep`` rejects; return how many."""
        removed = 0
        for path in pathlib.Path(self._root).glob("*/*/pane-*.avro"):
            kind = path.parent.parent.name
            try:
                start, end = (_ms(s) for s in path.parent.name.split("_"))
                index = int(path.name.split("-")[1])
            except ValueError:
                continue  # not one of ours
            if not keep(kind, start, end, index):
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            _LOG.info("removed %d pane files written after the last checkpoint", removed)
        return removed
