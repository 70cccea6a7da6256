"""Local infrastructure for development and tests (see deploy.broker for the Kafka broker)."""
