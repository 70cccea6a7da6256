"""Everything that touches the outside world: Kafka read and write, replay of
files and corpora into Kafka, and the Avro file sink. Knows nothing of entities."""
