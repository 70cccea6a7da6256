"""entitystream: news articles from Kafka through Beam and spaCy to windowed entity counts."""
from setuptools import setup

setup(
    name="entitystream",
    version="0.1.0",
    description="Streaming ingestion and entity tracking: Kafka -> Beam -> spaCy -> Avro",
    python_requires=">=3.10",
    packages=["pipeline", "connectors", "schemas", "deploy"],
    package_data={"schemas": ["*.avsc"], "deploy": ["kafka/*"], "pipeline": ["*.json"]},
    install_requires=[
        "apache-beam==2.75.0",
        "kafka-python==3.0.12",
        "crc32c==2.9.post0",  # kafka-python checks record CRCs in C with it (else pure Python)
        "spacy==3.8.18",
        "fastavro==1.13.1",
        "prometheus-client==0.26.0",
        "matplotlib==3.10.9",
        "pycountry==26.2.16",  # ISO 3166 country names for the country table (LGPL-2.1, unmodified)
        "feedparser==6.0.14",  # entitystream feeds: RSS 0.9x/2.0, RSS 1.0 (RDF), Atom
        "httpx==0.28.1",  # entitystream feeds: timeouts, redirect limit, streamed size limit
        "datasketch==2.0.0",  # MinHash signatures of near-duplicate stories (scipy with it)
        # entitystream dashboard: the Grafana dashboard as code (Apache-2.0, no dependencies;
        # it needs Python 3.11+, where 3.10 lacks typing.Self and enum.StrEnum)
        'grafana-foundation-sdk==1769699998!10.1.0 ; python_version >= "3.11"',
    ],
    extras_require={"test": ["pytest==9.2.0", "testcontainers==4.15.0", "hypothesis==6.170.15"],
                    # entitystream feeds --full-text (the linked page's text)
                    "fulltext": ["trafilatura==2.3.1", "lxml_html_clean==0.4.6"]},
    entry_points={"console_scripts": ["entitystream=pipeline.cli:main"]},
)
