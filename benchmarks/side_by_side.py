"""Two checkouts of entitystream on the same topic, one run after the other.

    .venv/bin/python benchmarks/side_by_side.py --other /work/main --articles 5000 \
        [--rounds 2] [--flags "--rules-only --tracked-entities tests/fixtures/reuters_tracked_entities.json"]
    .venv/bin/python benchmarks/side_by_side.py --other . --other-flags \
        "--environment_type=EXTERNAL --environment_config=localhost:PORT" ...

Publishes ``--articles`` Reuters articles (``benchmarks/workloads.py``) to a
fresh topic once, then runs ``entitystream run --bounded --runner prism`` of
``--other`` (its ``.venv``, its working tree) and of this checkout, A B A B
..., each in a process of its own, and prints per run the steady rate (first
article read to last pane written), the CPU seconds of the process tree over
that span (``benchmarks/endtoend.py``), the panes, and the ratio of this
checkout to the other from the means. ``--other-flags`` are added to the
other side's flags only (e.g. SDK workers in a worker pool against LOOPBACK,
with ``--other .``). The machine is shared: only the ratios of one
invocation mean something.
"""
import argparse
import pathlib
import shlex
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import endtoend  # noqa: E402
from benchmarks.workloads import articles, delete_topics, kafka, publish_topic  # noqa: E402
from tests.integration import pipeline_process  # noqa: E402


def _process_class(checkout):
    """``PipelineProcess`` running the ``entitystream`` of ``checkout``."""
    checkout = pathlib.Path(checkout).resolve()

    class Other(pipeline_process.PipelineProcess):
        def __init__(self, args, log_path, metrics_port=None):
            super().__init__(args, log_path, metrics_port)
            self.args[0] = str(checkout / ".venv" / "bin" / "entitystream")

        def start(self):
            log = self.log_path.open("ab")
            self.proc = pipeline_process.subprocess.Popen(
                self.args, cwd=checkout, stdout=log, stderr=pipeline_process.subprocess.STDOUT,
                stdin=pipeline_process.subprocess.DEVNULL, start_new_session=True)
            log.close()
            return self
    return Other


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", required=True, help="the other checkout (with its .venv)")
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flags", default="", help="more flags for entitystream run")
    parser.add_argument("--other-flags", default="", help="flags for the other side only")
    args = parser.parse_args(argv)
    flags = shlex.split(args.flags)
    side_flags = {"other": flags + shlex.split(args.other_flags), "this": flags}
    sides = {"other": _process_class(args.other), "this": pipeline_process.PipelineProcess}
    results = {"other": [], "this": []}
    with kafka() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        topic = publish_topic(articles(args.articles), bootstrap, prefix="sbs")
        try:
            for r in range(args.rounds):
                for side, cls in sides.items():
                    endtoend.PipelineProcess = cls
                    out = pathlib.Path(tmp) / f"{side}{r}"
                    run = endtoend.run_pipeline(topic, bootstrap, out, out.with_suffix(".log"),
                                                args.articles, side_flags[side])
                    rate = args.articles / run.steady_s
                    results[side].append((rate, run.cpu_s))
                    print(f"{side:5} round {r}: {rate:7.1f} articles/s, {run.cpu_s:6.1f} CPU s "
                          f"({run.cpu_s * 1000 / args.articles:.2f} per 1,000), {run.panes} panes,"
                          f" by role {({k: round(v, 1) for k, v in run.cpu_by_role.items()})}",
                          flush=True)
        finally:
            delete_topics(bootstrap, [topic])
    rate = {s: statistics.mean(r for r, _ in v) for s, v in results.items()}
    cpu = {s: statistics.mean(c for _, c in v) for s, v in results.items()}
    print(f"this / other: rate {rate['this'] / rate['other']:.2f}x, CPU seconds "
          f"{cpu['this'] / cpu['other']:.2f}x ({args.articles} articles, flags {flags})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
