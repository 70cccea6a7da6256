"""Avro schemas of entitystream, one ``.avsc`` file each, loaded by name.

>>> from schemas import load_schema
>>> load_schema("entity_count")["name"]
'EntityCount'
"""
import functools
import json
import pathlib

import fastavro

__all__ = ["load_schema", "parsed_schema", "SCHEMA_DIR"]

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent


def load_schema(name: str) -> dict:
    """Return the JSON of ``schemas/<name>.avsc`` as a dict."""
    path = SCHEMA_DIR / f"{name}.avsc"
    if not path.is_file():
        known = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))
        msg = f"no Avro schema named {name!r} in {SCHEMA_DIR}; known: {known}"
        raise ValueError(msg)
    return json.loads(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def parsed_schema(name: str):
    """The fastavro-parsed schema ``name`` (cached)."""
    return fastavro.parse_schema(load_schema(name))
