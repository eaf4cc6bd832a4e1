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
  batch-processor API answers 503 without it); the SQLite backend keeps them in the same database, with the
  item counts the batch-processor metrics and analytics read and the configuration ``/configure`` stores
- ``check() -> None``                         raise unless the store can be opened and written (``/ready``)

API keys (optional; a backend without them serves keys from ``ASTRODASH_API_KEYS_FILE`` only, and
``astrodash keys`` says it cannot keep them).  Only a key's SHA-256 (hex) is ever stored:

- ``add_key(name, key_hash, scopes=()) -> dict``  keep a key; KeyError when ``name`` is taken
- ``list_keys() -> list[dict]``               ``{name, scopes, created_at}`` of every key (no hashes)
- ``key_hashes() -> list[dict]``              ``{name, key_hash, scopes}`` of every key, for the server's check
- ``revoke_key(name) -> bool``                forget a key (False when there was none of that name)

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
