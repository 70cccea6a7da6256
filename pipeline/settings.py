"""Application settings: one frozen object built from flags and environment.

Defaults work on a laptop with nothing configured: the local broker the
project starts, topic ``articles``, one-hour windows, Avro files under
``out/``, metrics on 127.0.0.1:9477.

Environment variables: ``KAFKA_BOOTSTRAP_SERVERS`` (else the local broker is
started), ``ENTITYSTREAM_TOPIC``, ``ENTITYSTREAM_OUTPUT``,
``ENTITYSTREAM_METRICS_PORT``, ``ENTITYSTREAM_SPACY_MODEL``,
``ENTITYSTREAM_TRACKED_ENTITIES``, and the Kafka security variables
(``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``: see
``connectors/kafka_security.py`` and ``docs/security.md``).
"""
import argparse
import dataclasses
import os
from typing import Optional

from connectors.kafka_security import KafkaSecurity
from connectors.kafka_security import add_arguments as add_security_arguments
from connectors.kafka_security import from_args as security_from_args
from pipeline.decode import DEFAULT_MAX_FUTURE_SECONDS, DEFAULT_MAX_MESSAGE_BYTES
from pipeline.entities import DEFAULT_MODEL, EXCLUDED_LABELS

__all__ = ["Settings", "add_arguments", "from_args", "RUNNERS"]

RUNNERS = ("direct", "prism")


@dataclasses.dataclass(frozen=True)
class Settings:
    topic: str = "articles"
    output_dir: str = "out"
    bootstrap_servers: Optional[str] = None  # None: the local broker
    group_id: str = "entitystream"
    dead_letter_topic: Optional[str] = None  # None: "<topic>.dlq"
    runner: str = "prism"
    bounded: bool = False
    start_from: str = "committed"
    window_seconds: int = 3600
    early_firing_seconds: float = 5.0
    allowed_lateness_seconds: int = 0
    idle_timeout_seconds: float = 5.0
    sliding_window_seconds: int = 86400  # 0: no sliding windows
    sliding_period_seconds: int = 3600
    max_entities_per_article: int = 20
    top_k_pairs: int = 1000
    tracked_tuples: tuple = (("BRIDGE", "NORTH_KOREA", "RUSSIA"),)
    story_threshold: float = 0.55  # near-duplicate stories (pipeline/stories.py); 0: off
    story_horizon_seconds: int = 3 * 86400
    story_index_size: int = 200_000
    by_source: bool = False  # source_counts: tracked entities and tuples per outlet
    surge_threshold: float = 3.5  # pipeline/surges.py; 0: no surges
    surge_baseline_windows: int = 24
    surge_top_pairs: int = 0  # also score each window's N largest pairs; 0: none
    aggregates_topic: Optional[str] = None  # also publish aggregates as Avro to this topic
    surges_topic: Optional[str] = None  # also publish the surges records as Avro to this topic
    spacy_model: str = DEFAULT_MODEL
    tracked_entities: Optional[str] = None  # tracked-entities JSON; None: the shipped one
    rules_only: bool = False  # only tracked entities, without the statistical NER
    ner_processes: int = 1  # >1: NER in that many worker processes (more cores)
    excluded_labels: tuple = tuple(sorted(EXCLUDED_LABELS))  # spaCy labels not counted
    batch_size: int = 64
    max_records_per_call: int = 500
    checkpoint_interval_seconds: float = 5.0  # 0: no checkpoints (a restart starts empty)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # larger: dead letter too_large
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS  # later: dead letter future_timestamp
    metrics_port: int = 9477  # 0: no endpoint
    metrics_host: str = "127.0.0.1"
    # TLS/SASL for every Kafka client; default from the KAFKA_* environment variables.
    kafka_security: KafkaSecurity = dataclasses.field(default_factory=KafkaSecurity.from_env)

    def __post_init__(self):
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}, got {self.runner!r}")
        for name in ("window_seconds", "batch_size", "max_records_per_call", "ner_processes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.early_firing_seconds <= 0 or self.idle_timeout_seconds <= 0:
            raise ValueError("early_firing_seconds and idle_timeout_seconds must be > 0")
        if self.checkpoint_interval_seconds < 0:
            raise ValueError(f"checkpoint_interval_seconds must be >= 0, got "
                             f"{self.checkpoint_interval_seconds}")
        if not 0 <= self.story_threshold < 1 or self.story_horizon_seconds <= 0 \
                or self.story_index_size < 1:
            raise ValueError(f"story_threshold must be in [0, 1) (0: off), story_horizon_seconds "
                             f"> 0 and story_index_size >= 1, got {self.story_threshold}, "
                             f"{self.story_horizon_seconds} and {self.story_index_size}")
        if self.surge_threshold < 0 or self.surge_baseline_windows < 1:
            raise ValueError(f"surge_threshold must be >= 0 (0: off) and surge_baseline_windows "
                             f">= 1, got {self.surge_threshold} and {self.surge_baseline_windows}")
        if self.allowed_lateness_seconds < 0:
            raise ValueError(f"allowed_lateness_seconds must be >= 0, got {self.allowed_lateness_seconds}")
        if self.surge_top_pairs < 0:
            raise ValueError(f"surge_top_pairs must be >= 0 (0: none), got {self.surge_top_pairs}")
        if (self.surges_topic or self.surge_top_pairs) and not self.surge_threshold:
            raise ValueError(f"surges_topic {self.surges_topic!r} and surge_top_pairs "
                             f"{self.surge_top_pairs} need surges: surge_threshold is 0 (off); "
                             "give a threshold > 0, or no surges topic and 0 top pairs")

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dlq"


def add_arguments(parser: argparse.ArgumentParser):
    """The pipeline's own flags (``entitystream run``)."""
    env = os.environ.get
    d = Settings(kafka_security=KafkaSecurity())  # security: env and flags, in from_args
    parser.add_argument("--topic", default=env("ENTITYSTREAM_TOPIC", d.topic),
                        help="input topic (default %(default)s)")
    parser.add_argument("--output", dest="output_dir", default=env("ENTITYSTREAM_OUTPUT", d.output_dir),
                        help="directory for the Avro aggregates (default %(default)s)")
    parser.add_argument("--bootstrap-servers", default=env("KAFKA_BOOTSTRAP_SERVERS"),
                        help="Kafka brokers (default $KAFKA_BOOTSTRAP_SERVERS, else the local broker)")
    parser.add_argument("--group-id", default=d.group_id, help="consumer group (default %(default)s)")
    parser.add_argument("--dead-letter-topic", default=None, help="default: <topic>.dlq")
    parser.add_argument("--runner", choices=RUNNERS, default=None,
                        help="prism (continuous; default) or direct (bounded only; default with --bounded)")
    parser.add_argument("--bounded", action="store_true",
                        help="read each partition up to its end offset at start, then exit")
    parser.add_argument("--start-from", choices=("committed", "earliest", "latest"),
                        default=d.start_from, help="where to start when the group has no offset "
                        "(committed falls back to earliest; default %(default)s)")
    parser.add_argument("--window-seconds", type=int, default=d.window_seconds,
                        help="event-time window size (default %(default)s)")
    parser.add_argument("--early-firing-seconds", type=float, default=d.early_firing_seconds,
                        help="processing-time delay between early panes (default %(default)s)")
    parser.add_argument("--allowed-lateness-seconds", type=int, default=d.allowed_lateness_seconds,
                        help="late articles still counted this long after a window ends (default %(default)s)")
    parser.add_argument("--sliding-window-seconds", type=int, default=d.sliding_window_seconds,
                        help="sliding window size, 0 for none (default %(default)s)")
    parser.add_argument("--sliding-period-seconds", type=int, default=d.sliding_period_seconds,
                        help="a sliding window starts every ... (default %(default)s)")
    parser.add_argument("--max-entities-per-article", type=int, default=d.max_entities_per_article,
                        help="entities per article used for co-occurrence pairs (default %(default)s)")
    parser.add_argument("--top-k-pairs", type=int, default=d.top_k_pairs,
                        help="co-occurrence pairs kept per window (default %(default)s)")
    parser.add_argument("--tracked-tuple", action="append", default=None, metavar="ID,ID[,ID...]",
                        help="entity ids counted together exactly (repeatable; default "
                             "RUSSIA,NORTH_KOREA,BRIDGE)")
    parser.add_argument("--story-threshold", type=float, default=d.story_threshold,
                        help="estimated containment (the share of the shorter article's "
                             "4-word shingles that the other has) at which two articles are "
                             "one story (docs/stories.md); 0 turns stories off "
                             "(each article its own story) (default %(default)s)")
    parser.add_argument("--story-horizon-seconds", type=int, default=d.story_horizon_seconds,
                        help="copies published this far apart or less can be one story "
                             "(default %(default)s)")
    parser.add_argument("--story-index-size", type=int, default=d.story_index_size,
                        help="articles the story index holds at most (default %(default)s)")
    parser.add_argument("--by-source", action="store_true",
                        help="also write source_counts: the tracked entities and tuples per "
                             "outlet (source) and tumbling window")
    parser.add_argument("--surge-threshold", type=float, default=d.surge_threshold,
                        help="modified z-score of a tracked entity's or tuple's share of a "
                             "window's articles at which the window is a surge; 0 for none "
                             "(default %(default)s)")
    parser.add_argument("--surge-baseline-windows", type=int, default=d.surge_baseline_windows,
                        help="earlier tumbling windows a surge is scored against "
                             "(default %(default)s)")
    parser.add_argument("--surge-top-pairs", type=int, default=d.surge_top_pairs, metavar="N",
                        help="also score the N largest co-occurrence pairs (article scope) of "
                             "each closed window, on the pair table's bounds "
                             "(docs/stories.md); 0 for none (default %(default)s)")
    parser.add_argument("--aggregates-topic", default=None,
                        help="also publish every aggregate record as Avro binary to this topic")
    parser.add_argument("--surges-topic", default=None,
                        help="also publish each surges record as Avro binary to this topic "
                             "(key: surges/<window start ms>/<entity ids>; Kafka timestamp: "
                             "the window's end); created at start if missing")
    parser.add_argument("--checkpoint-interval-seconds", type=float,
                        default=d.checkpoint_interval_seconds,
                        help="save the aggregation's state under OUTPUT/_checkpoint at most this "
                             "often, and commit offsets only once counted there, so a restart "
                             "after a crash loses nothing and counts nothing twice; 0 for none "
                             "(default %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes,
                        help="a message larger than this is dead-lettered (too_large) unread "
                             "(default %(default)s)")
    parser.add_argument("--max-future-seconds", type=float, default=d.max_future_seconds,
                        help="an article published further ahead of the clock than this is "
                             "dead-lettered (future_timestamp) (default %(default)s)")
    parser.add_argument("--idle-timeout-seconds", type=float, default=d.idle_timeout_seconds,
                        help="a partition silent this long lets its watermark follow the clock "
                        "(default %(default)s)")
    parser.add_argument("--spacy-model", default=env("ENTITYSTREAM_SPACY_MODEL", d.spacy_model),
                        help="spaCy pipeline package (default %(default)s)")
    parser.add_argument("--tracked-entities", metavar="PATH",
                        default=env("ENTITYSTREAM_TRACKED_ENTITIES"),
                        help="tracked-entities JSON file (default $ENTITYSTREAM_TRACKED_ENTITIES, "
                             "else pipeline/tracked_entities.json)")
    parser.add_argument("--rules-only", action="store_true",
                        help="find only the tracked entities, without the statistical NER")
    parser.add_argument("--excluded-labels", metavar="LABEL,...", default=",".join(d.excluded_labels),
                        help="spaCy labels not counted, comma-separated, '' for none "
                             "(default %(default)s)")
    parser.add_argument("--ner-processes", type=int, default=d.ner_processes,
                        help="NER worker processes; 2 uses both cores of a 2-core machine "
                             "(default %(default)s: in the pipeline's process)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="articles per nlp.pipe batch (default %(default)s)")
    parser.add_argument("--metrics-port", type=int,
                        default=int(env("ENTITYSTREAM_METRICS_PORT", d.metrics_port)),
                        help="Prometheus endpoint port, 0 for none (default %(default)s)")
    parser.add_argument("--metrics-host", default=d.metrics_host,
                        help="address the endpoint binds (default %(default)s)")
    add_security_arguments(parser)


def _tuples(values):
    tuples = []
    for value in values:
        ids = tuple(sorted(i.strip() for i in value.split(",") if i.strip()))
        if len(ids) < 2:
            raise ValueError(f"--tracked-tuple needs at least two entity ids, got {value!r}")
        tuples.append(ids)
    return tuple(tuples)


def from_args(args: argparse.Namespace) -> Settings:
    runner = args.runner or ("direct" if args.bounded else "prism")
    if runner == "direct" and not args.bounded:
        raise ValueError("the direct runner only runs --bounded jobs (it is a batch runner); "
                         "use --runner prism for a continuous run")
    return Settings(
        topic=args.topic, output_dir=args.output_dir, bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id, dead_letter_topic=args.dead_letter_topic, runner=runner,
        bounded=args.bounded, start_from=args.start_from, window_seconds=args.window_seconds,
        early_firing_seconds=args.early_firing_seconds,
        allowed_lateness_seconds=args.allowed_lateness_seconds,
        sliding_window_seconds=args.sliding_window_seconds,
        sliding_period_seconds=args.sliding_period_seconds,
        max_entities_per_article=args.max_entities_per_article, top_k_pairs=args.top_k_pairs,
        tracked_tuples=_tuples(args.tracked_tuple) if args.tracked_tuple else Settings.tracked_tuples,
        aggregates_topic=args.aggregates_topic, surges_topic=args.surges_topic,
        story_threshold=args.story_threshold,
        story_horizon_seconds=args.story_horizon_seconds,
        story_index_size=args.story_index_size, by_source=args.by_source,
        surge_threshold=args.surge_threshold,
        surge_baseline_windows=args.surge_baseline_windows,
        surge_top_pairs=args.surge_top_pairs,
        checkpoint_interval_seconds=args.checkpoint_interval_seconds,
        max_message_bytes=args.max_message_bytes, max_future_seconds=args.max_future_seconds,
        idle_timeout_seconds=args.idle_timeout_seconds, spacy_model=args.spacy_model,
        tracked_entities=args.tracked_entities, rules_only=args.rules_only,
        ner_processes=args.ner_processes,
        excluded_labels=tuple(sorted({l.strip().upper() for l in args.excluded_labels.split(",")
                                      if l.strip()})),
        batch_size=args.batch_size, metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, kafka_security=security_from_args(args))
