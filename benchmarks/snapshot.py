"""Run the benchmarks from a copy of the working tree (``benchmarks/run.py --snapshot``).

Several people share one working tree: a long run that imports the pipeline
(every ``entitystream run`` and NER worker process it starts does) would
otherwise pick up whatever half-made edit is on disk at that moment. With
``--snapshot`` the tree's files as they are now (tracked and untracked, not
ignored) are copied to a temporary directory and the same command runs from
there (``PYTHONPATH`` points at the copy), then the
copy is removed. ``source()`` names what ran: the commit and the files that
differed from it. Imports nothing of the pipeline.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

__all__ = ["rerun_from_snapshot", "source"]

_SOURCE_ENV = "ENTITYSTREAM_BENCH_SOURCE"
DOCS_ENV = "ENTITYSTREAM_BENCH_DOCS"
CORPUS_ENV = "ENTITYSTREAM_CORPUS"


def _git(*args):
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def source():
    """'<commit>' or '<commit> with uncommitted changes in a, b' (for the docs)."""
    if os.environ.get(_SOURCE_ENV):
        return os.environ[_SOURCE_ENV]
    commit = _git("rev-parse", "--short", "HEAD").strip() or "unknown (not a git checkout)"
    dirty = sorted(line[3:] for line in _git("status", "--porcelain", "--untracked-files=no")
                   .splitlines() if not line[3:].startswith(("benchmarks/", "docs/")))
    return commit + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


def rerun_from_snapshot(argv):
    """Copy the tree, run ``benchmarks/run.py argv`` from the copy; return its exit code."""
    files = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    with tempfile.TemporaryDirectory(prefix="entitystream-snapshot-") as tmp:
        copy = pathlib.Path(tmp) / ROOT.name
        for name in filter(None, files):
            src = ROOT / name
            if src.is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, copy / name)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(copy)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        env.setdefault(_SOURCE_ENV, f"a snapshot of the working tree: {source()}")
        env.setdefault(DOCS_ENV, str(ROOT / "docs" / "benchmarks.md"))
        env.setdefault(CORPUS_ENV, str(ROOT.parent / "shared" / "corpora" / "reuters21578"))
        print(f"running from a snapshot of the working tree in {copy}", flush=True)
        # The working directory stays: relative paths in argv (--json) mean what they said.
        return subprocess.call([sys.executable, str(copy / "benchmarks" / "run.py"), *argv],
                               env=env)
