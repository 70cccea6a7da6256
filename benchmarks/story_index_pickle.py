"""CPU time and bytes of pickling the story index, as a checkpoint does.

    .venv/bin/python benchmarks/story_index_pickle.py [--articles 5000]

Indexes the first ``--articles`` Reuters-21578 articles in a ``StoryIndex``
(the default settings) and times, best of 5 in this process, ``pickle.dumps``
and ``pickle.loads`` of the index as a checkpoint holds it (columns, the LSH
tables rebuilt when loaded) against its entries and tables as they are in
memory (how it was pickled before: ``__dict__``), twice each, alternating.
"""
import argparse
import pathlib
import pickle
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _best(f, reps=5):
    best, out = float("inf"), None
    for _ in range(reps):
        started = time.process_time()
        out = f()
        best = min(best, time.process_time() - started)
    return best, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args(argv)
    from connectors.replay import read_articles
    from pipeline.stories import StoryIndex, story_signature
    index = StoryIndex()
    for n, article in enumerate(read_articles([ROOT.parent / "shared" / "corpora" / "reuters21578"])):
        if n == args.articles:
            break
        index.assign(article["id"], article["published_at"], story_signature(article["body"]))
    print(f"{args.articles} articles indexed, {len(index)} entries held")
    ways = (("entries and tables (__dict__)", lambda: dict(index.__dict__)),
            ("columns (StoryIndex)", lambda: index))
    for name, value in ways + ways:
        dump_s, data = _best(lambda: pickle.dumps(value(), pickle.HIGHEST_PROTOCOL))
        load_s, _ = _best(lambda: pickle.loads(data))
        print(f"  {name:32s} dumps {dump_s * 1000:7.1f} ms CPU, {len(data):12,d} bytes, "
              f"loads {load_s * 1000:7.1f} ms CPU")


if __name__ == "__main__":
    main()
