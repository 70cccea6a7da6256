"""Bare ``nlp.pipe``: the reference every end-to-end figure is a ratio to.

    .venv/bin/python benchmarks/bare.py --articles 5000 [--rules-only] [--tracked-entities F]

The pipeline's own model (``load_model``: the same components, the same
tracked-entity ruler, full or rules-only) over the same texts it reads
(``workloads.texts``), ``nlp.pipe`` with the same batch size, in one process;
only the pass over the texts is timed (not the model load). Prints one JSON
line: ``{"articles", "words", "entities", "seconds", "cpu_seconds", "load_seconds",
"components"}`` (``cpu_seconds``: this process's CPU time over the timed pass).

``measure(...)`` runs this script in a process of its own (so its RSS is its
own, sampled like the pipeline's) and returns that dict with ``peak_mb``.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["measure"]


def measure(articles, batch_size=64, rules_only=False, tracked_entities=None):
    """Run this script in a child process; its result dict, plus ``sampler`` (its RSS)."""
    from benchmarks.processes import TreeSampler
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--articles", str(articles),
           "--batch-size", str(batch_size)]
    if rules_only:
        cmd.append("--rules-only")
    if tracked_entities:
        cmd += ["--tracked-entities", str(tracked_entities)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeSampler(proc.pid, root_role="nlp.pipe") as sampler:
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["sampler"] = sampler
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rules-only", action="store_true")
    parser.add_argument("--tracked-entities", default=None)
    args = parser.parse_args(argv)
    from benchmarks.workloads import articles, texts, words
    from pipeline.entities import DEFAULT_MODEL, load_model
    text_list = texts(articles(args.articles))
    loading = time.perf_counter()
    nlp = load_model(DEFAULT_MODEL, args.tracked_entities, args.rules_only)
    started, cpu = time.perf_counter(), time.process_time()
    ents = sum(len(doc.ents) for doc in nlp.pipe(text_list, batch_size=args.batch_size))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"articles": len(text_list), "words": words(text_list), "entities": ents,
                      "seconds": seconds, "cpu_seconds": cpu, "load_seconds": started - loading,
                      "components": nlp.pipe_names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
