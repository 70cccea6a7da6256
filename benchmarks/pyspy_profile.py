"""Where the time goes: a bounded pipeline run under py-spy, summarised as text.

    .venv/bin/python benchmarks/pyspy_profile.py [--articles 2000] [--ner-processes 1]
        [--rules-only [--tracked-entities F]] [--top 15] [--raw PATH]

Publishes the first N Reuters-21578 articles to a fresh topic and runs
``entitystream run --bounded --runner prism`` under ``py-spy record
--subprocesses --gil --format raw`` (100 samples/s; only the thread holding
the GIL is sampled: py-spy's idle detection counts threads blocked in
``Condition.wait`` or gRPC polls as busy, and the GIL is what bounds the
Python work of one process): the pipeline process, whose LOOPBACK SDK worker
runs every DoFn, and its NER worker processes. Prints:

- per process role (pipeline, NER worker) the share of the run's time its GIL
  was held (samples / (seconds x 100 per process));
- the pipeline process's samples by stage: each sample goes to the innermost
  project frame on its stack (``pipeline/entities.py`` is extraction,
  ``pipeline/aggregate.py`` aggregation, ...), else to the library it is in
  (Beam runner and worker, gRPC, ...);
- the top functions by own samples, and by samples with them on the stack.

``--raw PATH`` keeps py-spy's raw (collapsed stacks) output.
"""
import argparse
import collections
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.workloads import articles, delete_topics, kafka, publish_topic  # noqa: E402
from tests.integration.pipeline_process import PipelineProcess  # noqa: E402

PY_SPY = pathlib.Path(sys.executable).with_name("py-spy")
# Innermost project file on a stack -> stage (checked leaf first).
STAGES = (("connectors/kafka_read.py", "read (Kafka)"), ("connectors/kafka_progress.py", "read (Kafka)"),
          ("pipeline/decode.py", "decode"), ("pipeline/normalise.py", "normalise"),
          ("pipeline/entities.py", "extract (spaCy)"), ("pipeline/gazetteer.py", "extract (spaCy)"),
          ("pipeline/cooccurrence.py", "aggregate"), ("pipeline/windows.py", "aggregate"),
          ("pipeline/ledger.py", "aggregate"), ("pipeline/aggregate.py", "aggregate"),
          ("pipeline/window_book.py", "aggregate"), ("pipeline/tallies.py", "aggregate"),
          ("pipeline/heavy_hitters.py", "aggregate"),
          ("pipeline/aggregation_state.py", "aggregate"),
          ("pipeline/checkpointer.py", "checkpoint"),
          ("pipeline/stories.py", "stories (sign, index)"), ("pipeline/surges.py", "surges"),
          ("connectors/checkpoint_files.py", "checkpoint"),
          ("connectors/kafka_offsets.py", "commit offsets"),
          ("connectors/avro_files.py", "write Avro"), ("connectors/kafka_write.py", "dead letters"),
          ("pipeline/metrics.py", "metrics"), ("pipeline/status.py", "metrics"))
LIBRARIES = (("apache_beam/runners/worker", "Beam SDK worker (bundles, state, data channel)"),
             ("apache_beam/coders", "Beam coders"), ("apache_beam", "Beam (other)"),
             ("grpc", "gRPC"), ("prometheus_client", "metrics"), ("spacy", "extract (spaCy)"),
             ("thinc", "extract (spaCy)"), ("kafka/", "read (Kafka)"),
             ("fastavro", "write Avro"), ("datasketch", "stories (sign, index)"), ("concurrent/futures", "NER pool (IPC)"),
             ("multiprocessing", "NER pool (IPC)"), ("pickle", "pickle"))
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")


def _frames(stack):
    out = []
    for frame in stack:
        m = _FRAME.match(frame)
        out.append((m["func"], m["file"]) if m else (frame, ""))
    return out


def _stage(frames):
    for func, file in reversed(frames):
        for suffix, stage in STAGES:
            if file.endswith(suffix):
                return stage
    for func, file in reversed(frames):
        for part, stage in LIBRARIES:
            if part in file:
                return stage
    return "other (interpreter, threading, ...)"


def parse(raw_text):
    """[(role, [(func, file), ...] root first, samples)] from py-spy's raw output."""
    out = []
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        role = "pipeline"
        if parts and parts[0].startswith("process "):
            head = parts.pop(0)
            role = ("NER worker" if "multiprocessing" in head or "spawn_main" in head
                    else "pipeline" if "entitystream" in head else "other")
        out.append((role, _frames(parts), int(count)))
    return out


def summary(stacks, top=15, seconds=None, processes=None):
    lines = []
    by_role = collections.Counter()
    for role, _, n in stacks:
        by_role[role] += n
    if seconds:
        processes = processes or {}
        lines.append("GIL held, share of the run: " + ", ".join(
            f"{role} {n / (seconds * 100 * processes.get(role, 1)):.0%}"
            + (f" (each of {processes[role]})" if processes.get(role, 1) > 1 else "")
            for role, n in by_role.most_common()))
    pipeline = [(f, n) for role, f, n in stacks if role == "pipeline"]
    ptotal = sum(n for _, n in pipeline) or 1
    stages = collections.Counter()
    for frames, n in pipeline:
        stages[_stage(frames)] += n
    lines.append("\nPipeline process, by stage (innermost project frame):")
    lines += [f"  {n / ptotal:6.1%}  {stage}" for stage, n in stages.most_common()]
    for title, role in (("Pipeline process", "pipeline"), ("NER workers", "NER worker")):
        chosen = [(f, n) for r, f, n in stacks if r == role]
        rtotal = sum(n for _, n in chosen)
        if not rtotal:
            continue
        own, inclusive = collections.Counter(), collections.Counter()
        for frames, n in chosen:
            if frames:
                own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
        lines.append(f"\n{title}, top functions by own samples (of {rtotal:,}):")
        lines += [f"  {n / rtotal:6.1%}  {func} ({_short(file)})" for (func, file), n
                  in own.most_common(top)]
        lines.append(f"\n{title}, top functions with them on the stack:")
        lines += [f"  {n / rtotal:6.1%}  {func} ({_short(file)})" for (func, file), n
                  in inclusive.most_common(top + 10)
                  if not func.startswith(("<module>", "run (threading", "_bootstrap"))][:top]
    return "\n".join(lines)


def _short(file):
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--ner-processes", type=int, default=1)
    parser.add_argument("--rules-only", action="store_true")
    parser.add_argument("--tracked-entities", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka (default $KAFKA_BOOTSTRAP_SERVERS, else the local broker)")
    parser.add_argument("--own-broker", action="store_true",
                        help="a broker of this run's own, stopped at the end")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        parser.error(f"py-spy is not installed in this virtualenv ({PY_SPY}): it is a "
                     f"profiling tool, not a dependency; install it with "
                     f"`{sys.executable} -m pip install py-spy==0.4.3`")
    flags = ["--ner-processes", args.ner_processes, "--batch-size", args.batch_size]
    flags += ["--rules-only"] if args.rules_only else []
    flags += ["--tracked-entities", args.tracked_entities] if args.tracked_entities else []
    with tempfile.TemporaryDirectory() as tmp, \
            kafka(args.bootstrap_servers, tmp if args.own_broker else None) as bootstrap:
        topic = publish_topic(articles(args.articles), bootstrap, prefix="profile")
        raw = args.raw or pathlib.Path(tmp) / "profile.raw"
        proc = PipelineProcess(["--topic", topic, "--output", f"{tmp}/out", "--group-id",
                                f"g-{topic}", "--bootstrap-servers", bootstrap,
                                "--runner", "prism", "--bounded", *flags],
                               pathlib.Path(tmp) / "pipeline.log").start()
        started = time.monotonic()
        spy = subprocess.run([str(PY_SPY), "record", "--pid", str(proc.proc.pid),
                              "--subprocesses", "--gil", "--format", "raw", "--full-filenames",
                              "--nolineno", "--rate", "100", "--output", str(raw)],
                             capture_output=True, text=True)
        proc.proc.wait(timeout=3600)
        delete_topics(bootstrap, [topic])
        if proc.proc.returncode != 0 or not raw.exists():
            msg = (f"profiled run failed (pipeline exit {proc.proc.returncode}, py-spy "
                   f"{spy.returncode}: {spy.stderr[-1000:]}):\n{proc.log()[-3000:]}")
            raise RuntimeError(msg)
        seconds = time.monotonic() - started
        print(f"{args.articles:,} articles, {seconds:.0f} s under py-spy; "
              f"flags: {' '.join(map(str, flags))}")
        print(summary(parse(raw.read_text(errors="replace")), args.top, seconds,
                      {"NER worker": args.ner_processes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
