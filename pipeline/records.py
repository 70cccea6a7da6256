"""The records that flow between the pipeline's stages.

They are plain NamedTuples: cheap to build, picklable, and readable in tests.
Times are integer milliseconds since the Unix epoch (``*_ms``).
"""
from typing import NamedTuple, Optional, Tuple

from pipeline.ledger import SourcePosition


class Article(NamedTuple):
    """A decoded article, with the Kafka coordinates it was read from."""
    id: str
    source: str
    url: Optional[str]
    title: str
    body: str
    published_at_ms: int
    language: str
    topic: str
    partition: int
    offset: int
    prev_offset: int = -1     # see pipeline/ledger.py
    starts_run: bool = False
    watermark_ms: Optional[int] = None  # see connectors/kafka_read.KafkaRecord
    signature: Optional[object] = None   # MinHash of the body (pipeline/stories.py)

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset, self.prev_offset,
                              self.starts_run, self.watermark_ms)


class Mention(NamedTuple):
    """One entity mention found in an article."""
    entity_id: str       # canonical id, e.g. "GPE:north korea"
    text: str            # surface form as written
    label: str           # spaCy label
    sentence_index: int  # 0-based sentence number in the article text


class ArticleEntities(NamedTuple):
    """All mentions found in one article."""
    article_id: str
    published_at_ms: int
    mentions: Tuple[Mention, ...]
    language: str = "en"
    position: Optional[SourcePosition] = None  # where it was read (None: not from Kafka)
    source: Optional[str] = None        # the outlet (Article.source)
    signature: Optional[object] = None   # MinHash of the body (pipeline/stories.py)


class WindowPane(NamedTuple):
    """One firing (pane) of one aggregate for one event-time window.

    ``records`` are dicts shaped by the Avro schema named ``kind``'s schema
    (without the window and pane fields, which the sink adds from here).
    """
    kind: str               # aggregate kind, also the output sub-directory
    window_start_ms: int
    window_end_ms: int
    pane_timing: str        # EARLY, ON_TIME or LATE
    pane_index: int         # 0, 1, 2, ... per window
    is_final: bool          # no later pane will follow for this window
    emitted_at_ms: int      # processing time of the firing
    records: Tuple[dict, ...]
    total_articles: Optional[int] = None  # every article counted in the window (surges)
