"""entitystream's Beam pipeline: one module per stage.

Data flows one way (see docs/architecture.md)::

    connectors.kafka_read.ReadFromKafka      KafkaRecord
      -> decode.DecodeArticles               Article        (bad messages -> dead letters)
      -> normalise.NormaliseText             Article        (clean body text)
      -> entities.ExtractEntities            ArticleEntities (spaCy, in batches)
      -> aggregate.AggregateEntities         WindowPane     (event-time windows, panes;
                                                             rules in window_book.WindowBook)
      -> connectors.avro_files.WriteWindowPanes   Avro files, one per window and pane

``run.run(argv)`` wires the stages from a :class:`settings.Settings`.
"""

__version__ = "0.1.0"
