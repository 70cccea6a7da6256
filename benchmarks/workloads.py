"""The benchmarks' workloads: Reuters-21578 articles as the pipeline reads them.

- ``articles(n)``: the first ``n`` Reuters-21578 stories with a body, in file
  order (the seeds, repeated with fresh ids, when the corpus is absent);
- ``cycled(n)``: ``n`` articles, Reuters read again and again, each cycle's
  publication times shifted past the previous cycle's and its ids made fresh
  (``reuters-123~c2``), so a long replay is one feed moving forward in time,
  not repeats the aggregation would suppress;
- ``texts(articles)``: what ``ExtractEntities`` runs spaCy on (title and body
  normalised, joined by ``article_text``);
- ``publish_topic(articles, bootstrap)``: a fresh uuid-named topic holding them;
  ``delete_topics`` removes it (and its dead-letter topic) afterwards;
- ``kafka(bootstrap, own_in)``: the brokers to use (see its docstring).
"""
import contextlib
import os
import pathlib
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.replay import publish, read_articles  # noqa: E402
from pipeline.entities import article_text  # noqa: E402
from pipeline.normalise import normalise_text  # noqa: E402
from pipeline.records import Article  # noqa: E402

__all__ = ["CORPUS", "PHRASE_TRACKED", "articles", "cycled", "texts", "words", "publish_topic",
           "delete_topics", "kafka"]

#: $ENTITYSTREAM_CORPUS (set by --snapshot), else beside the repository.
CORPUS = pathlib.Path(os.environ.get("ENTITYSTREAM_CORPUS")
                      or ROOT.parent / "shared" / "corpora" / "reuters21578")
#: Phrase aliases only: rules-only extraction is the tokenizer and the matcher.
PHRASE_TRACKED = ROOT / "tests" / "fixtures" / "reuters_tracked_entities.json"
_DAY_MS = 86_400_000


def _source():
    return [CORPUS] if CORPUS.exists() else [ROOT / "seeds"]


def corpus_name():
    return "Reuters-21578" if CORPUS.exists() else "seeds (repeated)"


def cycled(count):
    """``count`` articles: the corpus over and over, each cycle later in time, fresh ids."""
    base = list(read_articles(_source()))
    start = min(a["published_at"] for a in base)
    newest = max(a["published_at"] for a in base)
    span = newest - start + _DAY_MS  # a quiet day between cycles
    # Brokers reject records more than an hour ahead of their clock (Kafka 4):
    # cycles of a recent corpus (the seeds) go back in time instead, ending
    # where the corpus ends.
    last_cycle = -(-count // len(base)) - 1
    back = newest + last_cycle * span > time.time() * 1000 - _DAY_MS
    out = []
    cycle = 0
    while len(out) < count:
        shift = (cycle - last_cycle if back else cycle) * span
        out.extend(dict(a, id=a["id"] if cycle == 0 else f"{a['id']}~c{cycle}",
                        published_at=a["published_at"] + shift)
                   for a in base[:count - len(out)])
        cycle += 1
    return out


def articles(count):
    """The first ``count`` articles of the corpus (cycled when it has fewer)."""
    return cycled(count)


def texts(arts):
    """The texts ``ExtractEntities`` gives spaCy for these articles."""
    return [article_text(Article(a["id"], "", None, normalise_text(a["title"]),
                                 normalise_text(a["body"]), 0, "en", "", 0, 0)) for a in arts]


def words(text_list):
    return sum(len(t.split()) for t in text_list)


def publish_topic(arts, bootstrap, prefix="bench"):
    """Publish ``arts`` (in publication order) to a fresh topic; return its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    publish(arts, bootstrap_servers=bootstrap, topic=topic)
    return topic


def delete_topics(bootstrap, topics):
    """Delete ``topics`` and their ``.dlq`` topics, those that exist. Clean-up only: a
    broker that cannot be reached is reported on stderr, never raised (results first)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="entitystream-bench")
    except KafkaError as exc:
        print(f"warning: topics {topics} not deleted: {exc!r}", file=sys.stderr)
        return
    try:
        existing = set(admin.list_topics())
        doomed = [t for name in topics for t in (name, f"{name}.dlq") if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    except KafkaError as exc:
        print(f"warning: topics {topics} not deleted: {exc!r}", file=sys.stderr)
    finally:
        admin.close()


@contextlib.contextmanager
def kafka(bootstrap=None, own_in=None):
    """The brokers' address, for a ``with`` block.

    ``own_in`` (a directory): a broker of the block's own, on free ports, its state
    there, stopped at the end (the shared local broker may be restarted by someone
    else's test session in the middle of a long run). Else ``bootstrap``, else
    ``$KAFKA_BOOTSTRAP_SERVERS``, else the local broker (started if need be)."""
    if own_in is None:
        from pipeline.run import resolve_bootstrap
        from pipeline.settings import Settings
        yield (bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
               or resolve_bootstrap(Settings()))
        return
    from deploy import broker
    from tests.scrape import free_port
    state = pathlib.Path(own_in) / "broker"
    address = broker.start(port=free_port(), controller_port=free_port(), timeout_s=120,
                           state_dir=state)
    try:
        yield address
    finally:
        broker.stop(state_dir=state)
