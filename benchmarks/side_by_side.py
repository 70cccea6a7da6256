"""Two checkouts of entitystream on the same topic, one run after the other.

    .venv/bin/python benchmarks/side_by_side.py --other /work/main --articles 5000 \
        [--rounds 2] [--flags "--rules-only --tracked-entities tests/fixtures/reuters_tracked_entities.json"]
    .venv/bin/python benchmarks/side_by_side.py --other . --other-flags \
        "--environment_type=EXTERNAL --environment_config=localhost:PORT" \
        --worker-pool POOL_PID ...

Publishes ``--articles`` Reuters articles (``benchmarks/workloads.py``) to a
fresh topic once, then runs ``entitystream run --bounded --runner prism`` of
``--other`` (its ``.venv``, its working tree) and of this checkout, A B A B
..., each in a process of its own, and prints per run the steady rate (first
article read to last pane written), the CPU seconds of the process tree over
that span (``benchmarks/endtoend.py``), the panes, and the ratio of this
checkout to the other from the means. ``--other-flags`` are added to the
other side's flags only (e.g. SDK workers in a worker pool against LOOPBACK,
with ``--other .``); ``--this-flags`` to this side's. ``--worker-pool PID``:
the CPU seconds of that worker pool's process tree (its SDK workers, outside
the pipeline's tree) over the same span are added to each run's and shown
apart. Each run also gives the rate and CPU seconds including start-up
(process start to process exit). The machine is shared: only the ratios of
one invocation mean something.
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
from benchmarks.processes import TreeSampler  # noqa: E402
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
    parser.add_argument("--this-flags", default="", help="flags for this side only")
    parser.add_argument("--worker-pool", type=int, action="append", default=[], metavar="PID",
                        help="a Beam worker pool whose process tree's CPU seconds count too "
                             "(repeat for more pools)")
    args = parser.parse_args(argv)
    flags = shlex.split(args.flags)
    side_flags = {"other": flags + shlex.split(args.other_flags),
                  "this": flags + shlex.split(args.this_flags)}
    sides = {"other": _process_class(args.other), "this": pipeline_process.PipelineProcess}
    results = {"other": [], "this": []}
    with_startup = {"other": [], "this": []}
    with kafka() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        topic = publish_topic(articles(args.articles), bootstrap, prefix="sbs")
        try:
            for r in range(args.rounds):
                for side, cls in sides.items():
                    endtoend.PipelineProcess = cls
                    out = pathlib.Path(tmp) / f"{side}{r}"
                    pools = [TreeSampler(pid, root_role="pool") for pid in args.worker_pool]
                    for pool in pools:
                        pool.__enter__()
                    try:
                        run = endtoend.run_pipeline(topic, bootstrap, out,
                                                    out.with_suffix(".log"), args.articles,
                                                    side_flags[side])
                    finally:
                        for pool in pools:
                            pool.sample()
                            pool.stop()
                    workers = sum(p.cpu_between(run.first_article or run.started, run.finished)
                                  for p in pools)
                    workers_all = sum(p.cpu_between(run.started, run.exited) for p in pools)
                    rate, cpu = args.articles / run.steady_s, run.cpu_s + workers
                    cpu_all = run.sampler.cpu_between(run.started, run.exited) + workers_all
                    results[side].append((rate, cpu))
                    with_startup[side].append((args.articles / (run.exited - run.started),
                                               cpu_all))
                    print(f"{side:5} round {r}: {rate:7.1f} articles/s, {cpu:6.1f} CPU s "
                          f"({cpu * 1000 / args.articles:.2f} per 1,000), {run.panes} panes,"
                          f" by role {({k: round(v, 1) for k, v in run.cpu_by_role.items()})}"
                          f", worker pool {workers:.1f}; incl. start-up (process start to "
                          f"exit, {run.exited - run.started:.1f} s): "
                          f"{with_startup[side][-1][0]:.1f} articles/s, {cpu_all:.1f} CPU s",
                          flush=True)
        finally:
            delete_topics(bootstrap, [topic])
    for label, figures in (("", results), (" incl. start-up", with_startup)):
        rate = {s: statistics.mean(r for r, _ in v) for s, v in figures.items()}
        cpu = {s: statistics.mean(c for _, c in v) for s, v in figures.items()}
        print(f"this / other{label}: rate {rate['this'] / rate['other']:.2f}x, CPU seconds "
              f"{cpu['this'] / cpu['other']:.2f}x ({args.articles} articles, flags "
              f"{side_flags})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
