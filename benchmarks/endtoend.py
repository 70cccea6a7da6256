"""The pipeline as an operator runs it, timed and watched from outside.

``run_pipeline(topic, bootstrap, out_dir, log_path, count, flags, bounded=True)``
runs ``entitystream run --runner prism`` in a process of its own
(``tests/integration/pipeline_process.py``), samples the RSS of its process
tree (the pipeline, its NER worker processes, the Prism runner) and its
/metrics progress every 0.5 s, and returns a ``Run``:

- bounded: it reads the topic to the end offsets seen at start and exits;
- continuous (``bounded=False``): it runs until it has settled ``count``
  messages (``entitystream_messages_settled_total``) and then emitted no pane
  (``entitystream_panes_emitted_total``) for ``quiet_s`` (20 s: more than the
  idle timeout and the early-firing delay, so the windows the replay opened
  have closed), then gets SIGTERM.

Times (``time.time()``, the clock file modification times use):

- ``started``: the process was started;
- ``first_article``: midway between the last sample with nothing consumed and
  the first with something (``entitystream_articles_consumed_total``);
- ``finished``: bounded, the newest Avro pane file's modification time;
  continuous, the sample that saw the last pane emitted.

So ``count / (finished - started)`` is throughput including start-up
(interpreter, runner, model load) and ``count / (finished - first_article)``
the steady state from the first article read to the last pane written.
"""
import pathlib
import sys
import time
from typing import NamedTuple, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.processes import TreeSampler  # noqa: E402
from tests.integration.pipeline_process import PipelineProcess  # noqa: E402
from tests.scrape import total  # noqa: E402

__all__ = ["Run", "run_pipeline", "pane_files", "checkpoint_path", "tree_summary"]


class Run(NamedTuple):
    count: int
    started: float
    first_article: Optional[float]
    finished: float
    exited: float
    panes: int
    late_articles: int  # late_articles/*.avro: articles too late for their windows
    sampler: TreeSampler
    log: str

    @property
    def cpu_s(self):
        """CPU seconds of the whole process tree from the first article to the end."""
        return self.sampler.cpu_between(self.first_article or self.started, self.finished)

    @property
    def cpu_by_role(self):
        """{role: CPU seconds} from the first article to the end."""
        return self.sampler.cpu_between(self.first_article or self.started, self.finished,
                                        by_role=True)

    @property
    def outcomes(self):
        """{outcome: messages} of ``entitystream_messages_settled_total`` at the end."""
        last = [s.extra for s in self.sampler.samples if s.extra and s.extra.get("outcomes")]
        return last[-1]["outcomes"] if last else {}

    @property
    def wall_s(self):
        return self.finished - self.started

    @property
    def steady_s(self):
        return self.finished - (self.first_article or self.started)

    def rate_between(self, low=0.1, high=0.9):
        """Articles/s between ``low`` and ``high`` of ``count`` settled (None if unknown)."""
        points = [(s.t, s.extra["settled"]) for s in self.sampler.samples
                  if s.extra and s.extra.get("settled") is not None]
        lo = next(((t, n) for t, n in points if n >= low * self.count), None)
        hi = next(((t, n) for t, n in points if n >= high * self.count), None)
        if lo is None or hi is None or hi[0] <= lo[0]:
            return None
        return (hi[1] - lo[1]) / (hi[0] - lo[0])


def checkpoint_path(out_dir):
    return pathlib.Path(out_dir) / "_checkpoint" / "aggregation.pickle"


def pane_files(out_dir):
    """Every Avro file the pipeline wrote under ``out_dir`` (not its checkpoint; late
    articles included)."""
    return [p for p in pathlib.Path(out_dir).rglob("*.avro") if "_checkpoint" not in p.parts]


def _probe(proc, out_dir):
    checkpoint = checkpoint_path(out_dir)

    def probe():
        samples = proc.metrics()
        size = checkpoint.stat().st_size if checkpoint.exists() else None
        if not samples:
            return {"consumed": None, "settled": None, "checkpoint_bytes": size}
        outcomes = {dict(labels).get("outcome"): value for (name, labels), value
                    in samples.items() if name == "entitystream_messages_settled_total"}
        return {"consumed": total(samples, "entitystream_articles_consumed_total"),
                "settled": sum(outcomes.values()), "outcomes": outcomes,
                "panes": total(samples, "entitystream_panes_emitted_total"),
                "watermark_lag_s": max((v for (n, _), v in samples.items()
                                        if n == "entitystream_watermark_lag_seconds"),
                                       default=None),
                "checkpoint_bytes": size}
    return probe


def _first_article(samples):
    before = None
    for s in samples:
        consumed = (s.extra or {}).get("consumed")
        if consumed:
            return s.t if before is None else (before + s.t) / 2
        if consumed is not None:
            before = s.t
    return None


def _quiet_since(samples, count):
    """Continuous runs: the time of the last pane emitted once all ``count`` messages
    were settled, and how long ago no pane has been emitted since (None: not settled)."""
    settled = [s for s in samples if s.extra and (s.extra.get("settled") or 0) >= count]
    if not settled:
        return None, 0.0
    last_change = settled[0].t
    for before, after in zip(settled, settled[1:]):
        if after.extra.get("panes") != before.extra.get("panes"):
            last_change = after.t
    return last_change, samples[-1].t - last_change


def run_pipeline(topic, bootstrap, out_dir, log_path, count, flags=(), bounded=True,
                 timeout_s=3600, quiet_s=20.0):
    args = ["--topic", topic, "--output", out_dir, "--bootstrap-servers", bootstrap,
            "--group-id", f"g-{pathlib.Path(out_dir).name}-{topic}", "--runner", "prism",
            *(["--bounded"] if bounded else []), *flags]
    proc = PipelineProcess(args, log_path)
    started = time.time()
    proc.start()
    deadline = time.monotonic() + timeout_s
    done_at = None
    with TreeSampler(proc.proc.pid, probe=_probe(proc, out_dir)) as sampler:
        while proc.alive() and time.monotonic() < deadline:
            if not bounded:
                last_pane, quiet = _quiet_since(list(sampler.samples), count)
                if last_pane is not None and quiet >= quiet_s:
                    done_at = last_pane
                    break
            time.sleep(0.2)
        if not bounded or proc.alive():
            proc.stop()
    exited = time.time()
    code = proc.proc.returncode
    if (bounded and code != 0) or (not bounded and done_at is None):
        msg = (f"entitystream run {' '.join(map(str, args))} did not finish "
               f"(exit {code}, {exited - started:.0f} s); log {log_path}:\n{proc.log()[-4000:]}")
        raise RuntimeError(msg)
    files = pane_files(out_dir)
    panes = [p for p in files if "late_articles" not in p.parts]
    finished = done_at if not bounded else max((p.stat().st_mtime for p in panes), default=exited)
    return Run(count, started, _first_article(sampler.samples), finished, exited, len(panes),
               len(files) - len(panes), sampler, proc.log())


def tree_summary(sampler):
    """'1,234 MB (pipeline 800 + 2 ner worker 300 + prism 120)': peaks, MB."""
    peaks = sampler.peak_by_role_mb()
    counts = sampler.processes_by_role()
    parts = [f"{'' if counts.get(r, 1) == 1 else f'{counts[r]} '}{r} {mb:,.0f}"
             for r, mb in sorted(peaks.items(), key=lambda kv: -kv[1])]
    return f"{sampler.peak_mb():,.0f} MB ({' + '.join(parts)})"

