"""Built-in storage backends for uploaded models (registered through the ``register_storage`` hook).

A storage backend is what ``factory(url)`` returns for its URL scheme; it stores model files and their
metadata and offers (all synchronous, thread-safe; records are plain dicts with at least ``id``):

- ``put(data: bytes, record: dict) -> dict``  store a validated model file, returning its record (new ``id``)
- ``get(model_id) -> dict | None``            the record, or None
- ``read(model_id) -> bytes``                 the model file (KeyError when unknown)
- ``list(owner=None) -> list[dict]``          records, newest first
- ``update(model_id, fields: dict) -> dict | None``  change ``name``/``description``/``owner``
- ``delete(model_id) -> bool``                remove record and file

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
