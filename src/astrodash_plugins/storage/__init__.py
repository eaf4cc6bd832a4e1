"""Built-in storage backends for uploaded models (registered through the ``register_storage`` hook).

A storage backend is what ``factory(url)`` returns for its URL scheme; it stores model files and their
metadata and offers (all synchronous, thread-safe; records are plain dicts with at least ``id``):

- ``put(data: bytes, record: dict) -> dict``  store a validated model file, returning its record (new ``id``)
- ``get(model_id) -> dict | None``            the record, or None
- ``read(model_id) -> bytes``                 the model file (KeyError when unknown)
- ``list(owner=None, limit=None, offset=0) -> list[dict]``  records, newest first, one page of them
- ``update(model_id, fields: dict) -> dict | None``  change ``name``/``description``/``owner``
- ``delete(model_id) -> bool``                remove record and file

and, optionally (the HTTP API falls back to ``list()`` without them, which is slower on big stores):

- ``count(owner=None) -> int``                how many records
- ``usage() -> tuple[int, int]``              (number of models, total bytes of their files), for the quota
- ``find(sha256) -> dict | None``             a record whose file has this SHA-256, for de-duplication
- ``jobs() -> JobStore``                      durable batch jobs (``astrodash_core.hookspecs.JobStore``; the
  batch-processor API answers 503 without it); the SQLite backend keeps them in the same database

The embedded default needs no server: SQLite for the metadata and a directory for the files.
``sqlite:///srv/astrodash/models.db`` (files in ``/srv/astrodash/models/``; ``?data_dir=/elsewhere`` moves
them) or ``file:///srv/astrodash`` (``models.db`` and ``models/`` inside that directory).
"""
from __future__ import annotations

from astrodash_core.hookspecs import hookimpl


def _sqlite(url: str):
    from .sqlite import SQLiteModelStore

    return SQLiteModelStore.from_url(url)


@hookimpl
def register_storage(register):
    register("sqlite", _sqlite)
    register("file", _sqlite)
