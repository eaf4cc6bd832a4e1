"""Batch jobs: a durable, prioritised queue of spectra classified in the background (the batch-processor API).

:mod:`.engine` runs stored batches; :mod:`.routes` (HTTP) and :mod:`.progress` (WebSocket) are adapters over
it; :mod:`.submit` checks what clients send, :mod:`.inputs` stores items, :mod:`.export` encodes results and
:mod:`.scheduling` decides which batch goes next.  Everything durable lives in the storage plugin's job store
(:class:`astrodash_core.hookspecs.JobStore`).
"""
from .engine import Engine

__all__ = ["Engine"]
