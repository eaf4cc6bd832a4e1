"""The embedded batch-job store: batches, their items and results, and idempotency keys in SQLite.

It shares the model store's database file (other tables) and keeps uploaded archives as files beside it, in a
``jobs/`` directory.  Every method is one transaction, so a process killed at any moment leaves either the
whole change or none of it; :meth:`claim` and :meth:`complete` hold the write lock (``BEGIN IMMEDIATE``), so
several server processes can share one store and an item is leased by one of them at a time.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from astrodash_core.hookspecs import BATCH_FINISHED, BatchExists, IdempotencyMismatch, UploadSpaceError

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        last_served REAL,
        params TEXT NOT NULL,
        opts_key TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        timeout_ms INTEGER,
        total INTEGER NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        processing_ms REAL NOT NULL DEFAULT 0,
        error TEXT,
        archive TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS batch_items (
        batch_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        input BLOB,
        lease_owner TEXT,
        lease_until REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        seq INTEGER,
        result BLOB,
        error TEXT,
        processing_ms REAL,
        finished_at REAL,
        PRIMARY KEY (batch_id, idx)
    )""",
    "CREATE INDEX IF NOT EXISTS batch_items_status ON batch_items (batch_id, status, idx)",
    "CREATE INDEX IF NOT EXISTS batch_items_seq ON batch_items (batch_id, seq)",
    "CREATE INDEX IF NOT EXISTS batch_items_running ON batch_items (status, lease_owner)",
    "CREATE INDEX IF NOT EXISTS batches_status ON batches (status, created_at)",
    "CREATE INDEX IF NOT EXISTS batch_items_finished ON batch_items (finished_at)",
    """CREATE TABLE IF NOT EXISTS batch_idempotency (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        digest TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (owner, key)
    )""",
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        filename TEXT NOT NULL,
        total_size INTEGER NOT NULL,
        sha256 TEXT,
        received INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        batch_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS job_config (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
)
_BATCH_COLUMNS = ("id", "owner", "status", "priority", "created_at", "started_at", "finished_at", "last_served",
                  "params", "opts_key", "metadata", "timeout_ms", "total", "completed", "failed", "processing_ms",
                  "error", "archive")
_ITEM_COLUMNS = ("batch_id", "idx", "request_id", "name", "status", "seq", "result", "error", "processing_ms",
                 "attempts")
_UPLOAD_COLUMNS = ("id", "owner", "filename", "total_size", "sha256", "received", "status", "batch_id",
                   "created_at", "updated_at", "expires_at")
#: The seconds a lease lasts: an item leased by a process that neither finishes nor renews it within this
#: time is queued again (a process on this host that has died is noticed at once, see ``claim``).
LEASE_S = 120.0


def _batch(row) -> dict:
    b = dict(zip(_BATCH_COLUMNS, row))
    b["params"] = json.loads(b["params"])
    b["metadata"] = json.loads(b["metadata"])
    return b


class SQLiteJobStore:
    def __init__(self, db_path: str | os.PathLike, archive_dir: str | os.PathLike | None = None):
        self.db_path = Path(db_path)
        self.archive_dir = Path(archive_dir) if archive_dir else self.db_path.parent / "jobs"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)
        finally:
            db.close()

    @contextmanager
    def _connect(self, write: bool = False):
        """A connection for one transaction: ``write`` takes the write lock at the start (BEGIN IMMEDIATE), so
        what it reads cannot change before it writes."""
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- archives ---------------------------------------------------------------------------------------------
    def save_archive(self, batch_id: str, data: bytes) -> str:
        """Keep an uploaded archive for a batch (written whole, then renamed into place); its path.  The name is
        new every time, so a submit refused for a batch id already taken never touches that batch's archive."""
        path = self.archive_dir / f"{batch_id}-{uuid.uuid4().hex[:8]}.zip"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return str(path)

    def drop_archive(self, path: str | None) -> None:
        if path:
            Path(path).unlink(missing_ok=True)

    # --- submit -------------------------------------------------------------------------------------------------
    def create_batch(self, batch: dict, items: Iterable[dict], idempotency: tuple[str, str] | None = None
                     ) -> tuple[dict, bool]:
        """Store a batch and its items in one transaction: ``(batch, True)``.  With ``idempotency = (key,
        digest)``: a key already used by the same owner with the same digest gives ``(that batch, False)`` and
        stores nothing; with another digest :class:`IdempotencyMismatch`.  An existing id is :class:`BatchExists`.
        ``items``: dicts with ``request_id``, ``name`` and ``input`` (bytes)."""
        owner = batch.get("owner") or ""
        with self._connect(write=True) as db:
            if idempotency is not None:
                key, digest = idempotency
                row = db.execute("SELECT digest, batch_id FROM batch_idempotency WHERE owner = ? AND key = ?",
                                 (owner, key)).fetchone()
                if row is not None:
                    existing = db.execute(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches WHERE id = ?",
                                          (row[1],)).fetchone()
                    if existing is not None:
                        if row[0] != digest:
                            raise IdempotencyMismatch(key, row[1])
                        return _batch(existing), False
                    db.execute("DELETE FROM batch_idempotency WHERE owner = ? AND key = ?", (owner, key))
            if db.execute("SELECT 1 FROM batches WHERE id = ?", (batch["id"],)).fetchone():
                raise BatchExists(batch["id"])
            now = time.time()
            row = {"id": batch["id"], "owner": owner, "status": "queued", "priority": batch["priority"],
                   "created_at": now, "started_at": None, "finished_at": None, "last_served": None,
                   "params": json.dumps(batch.get("params") or {}), "opts_key": batch["opts_key"],
                   "metadata": json.dumps(batch.get("metadata") or {}), "timeout_ms": batch.get("timeout_ms"),
                   "total": 0, "completed": 0, "failed": 0, "processing_ms": 0.0, "error": None,
                   "archive": batch.get("archive")}
            db.execute(f"INSERT INTO batches ({', '.join(_BATCH_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(_BATCH_COLUMNS))})", [row[c] for c in _BATCH_COLUMNS])
            total = 0
            rows = ((batch["id"], i, it["request_id"], it["name"], "queued", it["input"])
                    for i, it in enumerate(items))

            def counted():
                nonlocal total
                for r in rows:
                    total += 1
                    yield r

            db.executemany("INSERT INTO batch_items (batch_id, idx, request_id, name, status, input) "
                           "VALUES (?, ?, ?, ?, ?, ?)", counted())
            db.execute("UPDATE batches SET total = ? WHERE id = ?", (total, batch["id"]))
            if idempotency is not None:
                db.execute("INSERT INTO batch_idempotency (owner, key, digest, batch_id, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (owner, idempotency[0], idempotency[1], batch["id"], now))
            row["total"] = total
        return {**row, "params": batch.get("params") or {}, "metadata": batch.get("metadata") or {}}, True

    # --- read ---------------------------------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> dict | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _batch(row)

    def list_batches(self, statuses: tuple[str, ...] | None = None, owner: str | None = None, limit: int = 100,
                     after: tuple[float, str] | None = None) -> list[dict]:
        """Batches newest first; ``after`` = (created_at, id) of the last one of the previous page."""
        where: list[str] = []
        args: list = []
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += list(statuses)
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [after[0], after[0], after[1]]
        sql = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(sql, [*args, int(limit)]).fetchall()
        return [_batch(r) for r in rows]

    def results(self, batch_id: str, after_seq: int = 0, limit: int | None = 100) -> list[dict]:
        """Finished items (done or failed) in the order they finished, those after ``after_seq``; each with
        ``seq`` (1, 2, ... per batch), ``result`` (bytes as stored) or ``error``."""
        sql = (f"SELECT {', '.join(_ITEM_COLUMNS)} FROM batch_items WHERE batch_id = ? AND seq > ? "
               "ORDER BY seq")
        args: list = [batch_id, int(after_seq)]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
        return [dict(zip(_ITEM_COLUMNS, r)) for r in rows]

    def queue_length(self) -> int:
        """Items waiting to run (queued) over all batches."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM batch_items WHERE status = 'queued'").fetchone()[0]

    def active_batches(self) -> int:
        """Batches queued or processing."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM batches WHERE status IN ('queued', 'processing')").fetchone()[0]

    # --- activity (metrics and analytics) ---------------------------------------------------------------------
    def activity(self, since: float) -> dict:
        """Counts for the metrics, in one read: ``queue_length``, ``active_batches``; over every stored batch
        ``completed``, ``failed`` (items) and ``processing_ms`` (their summed processing time); over items that
        finished at or after ``since``: ``recent_finished``, ``recent_failed`` and ``recent_latency_s`` (summed
        time from their batch's submission to their result)."""
        with self._connect() as db:
            queue = db.execute("SELECT COUNT(*) FROM batch_items WHERE status = 'queued'").fetchone()[0]
            active = db.execute("SELECT COUNT(*) FROM batches WHERE status IN ('queued', 'processing')").fetchone()[0]
            done, failed, ms = db.execute("SELECT COALESCE(SUM(completed), 0), COALESCE(SUM(failed), 0), "
                                          "COALESCE(SUM(processing_ms), 0.0) FROM batches").fetchone()
            n, n_failed, latency = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(i.status = 'failed'), 0), COALESCE(SUM(i.finished_at - "
                "b.created_at), 0.0) FROM batch_items i JOIN batches b ON b.id = i.batch_id WHERE i.finished_at "
                ">= ? AND i.status IN ('done', 'failed')", (since,)).fetchone()
        return {"queue_length": queue, "active_batches": active, "completed": done, "failed": failed,
                "processing_ms": float(ms), "recent_finished": n, "recent_failed": n_failed,
                "recent_latency_s": float(latency)}

    def finished_series(self, start: float, end: float, step: float) -> list[dict]:
        """Items finished in [start, end) grouped in buckets of ``step`` seconds from ``start``: one dict per
        bucket with any, ``{bucket (0, 1, ...), finished, failed, processing_ms (sum), timed (items with a
        processing time), latency_s (summed time from submission to result)}``."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT CAST((i.finished_at - ?) / ? AS INTEGER) AS k, COUNT(*), COALESCE(SUM(i.status = "
                "'failed'), 0), COALESCE(SUM(i.processing_ms), 0.0), COUNT(i.processing_ms), "
                "COALESCE(SUM(i.finished_at - b.created_at), 0.0) FROM batch_items i JOIN batches b ON b.id = "
                "i.batch_id WHERE i.finished_at >= ? AND i.finished_at < ? AND i.status IN ('done', 'failed') "
                "GROUP BY k ORDER BY k", (start, step, start, end)).fetchall()
        return [{"bucket": k, "finished": n, "failed": f, "processing_ms": float(ms), "timed": timed,
                 "latency_s": float(lat)} for k, n, f, ms, timed, lat in rows]

    # --- resumable uploads ----------------------------------------------------------------------------------------
    def upload_file(self, upload_id: str) -> str:
        """Where an upload's bytes are kept (the file is written by the caller, under its own lock)."""
        return str(self.upload_dir / f"{upload_id}.part")

    @property
    def upload_dir(self) -> Path:
        d = self.archive_dir / "uploads"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def create_upload(self, upload: dict, ttl_s: float, max_total_bytes: int, now: float | None = None) -> dict:
        """Reserve room for an upload (``id``, ``owner``, ``filename``, ``total_size``, ``sha256`` or None) and
        make its empty file; :class:`UploadSpaceError` when the open uploads' declared sizes would pass
        ``max_total_bytes``.  Expired uploads are removed first."""
        now = time.time() if now is None else now
        self.expire_uploads(now)
        with self._connect(write=True) as db:
            held = db.execute("SELECT COALESCE(SUM(total_size), 0) FROM uploads WHERE status IN ('open', "
                              "'complete')").fetchone()[0]
            if held + upload["total_size"] > max_total_bytes:
                raise UploadSpaceError(held, max_total_bytes)
            row = {"id": upload["id"], "owner": upload.get("owner") or "", "filename": upload["filename"],
                   "total_size": int(upload["total_size"]), "sha256": upload.get("sha256"), "received": 0,
                   "status": "open", "batch_id": None, "created_at": now, "updated_at": now,
                   "expires_at": now + ttl_s}
            db.execute(f"INSERT INTO uploads ({', '.join(_UPLOAD_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(_UPLOAD_COLUMNS))})", [row[c] for c in _UPLOAD_COLUMNS])
            open(self.upload_file(upload["id"]), "wb").close()
        return row

    def get_upload(self, upload_id: str, now: float | None = None) -> dict | None:
        """The upload, or None when there is none or it has expired."""
        now = time.time() if now is None else now
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_UPLOAD_COLUMNS)} FROM uploads WHERE id = ? AND expires_at >= ?",
                             (upload_id, now)).fetchone()
        return None if row is None else dict(zip(_UPLOAD_COLUMNS, row))

    def record_upload(self, upload_id: str, received: int, ttl_s: float, complete: bool = False,
                      sha256: str | None = None, now: float | None = None) -> dict | None:
        """After a chunk: the bytes received, a new expiry (``ttl_s`` from now), ``complete`` (with the file's
        SHA-256) or open again (``received`` 0 after a checksum mismatch)."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            db.execute("UPDATE uploads SET received = ?, status = ?, sha256 = COALESCE(?, sha256), updated_at = ?, "
                       "expires_at = ? WHERE id = ? AND status IN ('open', 'complete')",
                       (received, "complete" if complete else "open", sha256, now, now + ttl_s, upload_id))
        return self.get_upload(upload_id, now)

    def link_upload(self, upload_id: str, batch_id: str) -> str:
        """A complete upload's bytes as a batch archive (a hard link, or a copy across file systems): its path.
        The upload is kept until :meth:`finish_upload` (so a batch that is not stored leaves it as it was)."""
        path = self.archive_dir / f"{batch_id}-{upload_id[:8]}.zip"  # never another batch's archive
        path.unlink(missing_ok=True)
        try:
            os.link(self.upload_file(upload_id), path)
        except OSError:
            import shutil

            shutil.copyfile(self.upload_file(upload_id), path)
        return str(path)

    def finish_upload(self, upload_id: str, batch_id: str) -> None:
        """The upload became batch ``batch_id``: its file is dropped; the record says so until it expires."""
        with self._connect(write=True) as db:
            db.execute("UPDATE uploads SET status = 'submitted', batch_id = ? WHERE id = ?", (batch_id, upload_id))
        Path(self.upload_file(upload_id)).unlink(missing_ok=True)

    def delete_upload(self, upload_id: str) -> bool:
        with self._connect(write=True) as db:
            gone = db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount
        Path(self.upload_file(upload_id)).unlink(missing_ok=True)
        return bool(gone)

    def expire_uploads(self, now: float | None = None) -> int:
        """Remove uploads whose time ran out (``ASTRODASH_UPLOAD_TTL`` after their last chunk) and their files."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            ids = [r[0] for r in db.execute("SELECT id FROM uploads WHERE expires_at < ?", (now,)).fetchall()]
            db.execute("DELETE FROM uploads WHERE expires_at < ?", (now,))
        for i in ids:
            Path(self.upload_file(i)).unlink(missing_ok=True)
        return len(ids)

    # --- configuration shared by every server process ---------------------------------------------------------
    def get_config(self, name: str) -> tuple[dict, float] | None:
        """``(value, updated_at)`` of a stored configuration, or None."""
        with self._connect() as db:
            row = db.execute("SELECT value, updated_at FROM job_config WHERE name = ?", (name,)).fetchone()
        return None if row is None else (json.loads(row[0]), row[1])

    def set_config(self, name: str, value: dict, now: float | None = None) -> float:
        """Store (replace) a configuration; its ``updated_at``."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            db.execute("INSERT INTO job_config (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                       (name, json.dumps(value, sort_keys=True), now))
        return now

    # --- run ----------------------------------------------------------------------------------------------------
    def claim(self, worker: str, limit: int, order: Callable[[list, float], list],
              dead: Callable[[str], bool] = lambda owner: False, now: float | None = None,
              lease_s: float = LEASE_S) -> list[dict]:
        """Lease up to ``limit`` queued items to ``worker``: those of the batch that ``order(batches, now)`` puts
        first, then items of other batches with the same options (``opts_key``), so that they share forward
        passes.  Items leased by a ``dead(owner)`` worker or whose lease ran out are queued again first.  Each
        item comes with ``input`` and its batch (``batch``: id, params, opts_key, archive, timeout_ms)."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            owners = [r[0] for r in db.execute("SELECT DISTINCT lease_owner FROM batch_items WHERE status = "
                                               "'running'").fetchall()]
            gone = [o for o in owners if o != worker and dead(o)]
            db.execute("UPDATE batch_items SET status = 'queued', lease_owner = NULL, lease_until = NULL "
                       "WHERE status = 'running' AND lease_until < ?", (now,))
            for o in gone:
                db.execute("UPDATE batch_items SET status = 'queued', lease_owner = NULL, lease_until = NULL "
                           "WHERE status = 'running' AND lease_owner = ?", (o,))
            rows = db.execute(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches b WHERE status IN "
                              "('queued', 'processing') AND EXISTS (SELECT 1 FROM batch_items i WHERE "
                              "i.batch_id = b.id AND i.status = 'queued')").fetchall()
            if not rows:
                return []
            batches = order([_batch(r) for r in rows], now)
            first = batches[0]
            chosen = [first] + [b for b in batches[1:] if b["opts_key"] == first["opts_key"]]
            claimed: list[dict] = []
            for b in chosen:
                want = limit - len(claimed)
                if want <= 0:
                    break
                items = db.execute("SELECT idx, request_id, name, input, attempts FROM batch_items WHERE batch_id "
                                   "= ? AND status = 'queued' ORDER BY idx LIMIT ?", (b["id"], want)).fetchall()
                if not items:
                    continue
                db.executemany("UPDATE batch_items SET status = 'running', lease_owner = ?, lease_until = ?, "
                               "attempts = attempts + 1 WHERE batch_id = ? AND idx = ?",
                               [(worker, now + lease_s, b["id"], it[0]) for it in items])
                db.execute("UPDATE batches SET status = CASE status WHEN 'queued' THEN 'processing' ELSE status "
                           "END, started_at = COALESCE(started_at, ?), last_served = ? WHERE id = ?",
                           (now, now, b["id"]))
                info = {k: b[k] for k in ("id", "params", "opts_key", "archive", "timeout_ms", "owner")}
                claimed += [{"batch": info, "idx": idx, "request_id": rid, "name": name, "input": data,
                             "attempts": attempts + 1} for idx, rid, name, data, attempts in items]
        return claimed

    def complete(self, worker: str, outcomes: list[dict], now: float | None = None) -> int:
        """Store finished items: dicts with ``batch_id``, ``idx`` and ``result`` (bytes) or ``error``, and
        ``processing_ms``.  Only items still leased by ``worker`` are written (one whose lease was taken over is
        left to its new owner), so no item is counted twice; a batch with nothing left to run is completed.
        The number of items written."""
        now = time.time() if now is None else now
        written = 0
        with self._connect(write=True) as db:
            counts: dict[str, list] = {}
            for o in outcomes:
                bid = o["batch_id"]
                if bid not in counts:
                    row = db.execute("SELECT completed, failed FROM batches WHERE id = ?", (bid,)).fetchone()
                    if row is None:
                        continue
                    counts[bid] = [row[0], row[1], 0.0]
                c = counts[bid]
                ok = o.get("error") is None
                seq = c[0] + c[1] + 1
                cur = db.execute("UPDATE batch_items SET status = ?, result = ?, error = ?, processing_ms = ?, "
                                 "finished_at = ?, seq = ?, input = NULL, lease_owner = NULL, lease_until = NULL "
                                 "WHERE batch_id = ? AND idx = ? AND status = 'running' AND lease_owner = ?",
                                 ("done" if ok else "failed", o.get("result"), o.get("error"),
                                  o.get("processing_ms"), now, seq, bid, o["idx"], worker))
                if cur.rowcount == 1:
                    written += 1
                    c[0 if ok else 1] += 1
                    c[2] += float(o.get("processing_ms") or 0.0)
            for bid, (done, failed, ms) in counts.items():
                db.execute("UPDATE batches SET completed = ?, failed = ?, processing_ms = processing_ms + ? "
                           "WHERE id = ?", (done, failed, ms, bid))
                left = db.execute("SELECT COUNT(*) FROM batch_items WHERE batch_id = ? AND status IN "
                                  "('queued', 'running')", (bid,)).fetchone()[0]
                if left == 0:
                    db.execute("UPDATE batches SET status = 'completed', finished_at = ? WHERE id = ? AND status "
                               "IN ('queued', 'processing')", (now, bid))
        return written

    def drop_cancelled(self, worker: str, batch_ids: list[str]) -> set[str]:
        """Of ``batch_ids``, those cancelled; the items of them that ``worker`` holds become cancelled (they were
        leased before the cancel and will not run)."""
        if not batch_ids:
            return set()
        with self._connect(write=True) as db:
            marks = ", ".join("?" * len(batch_ids))
            gone = {r[0] for r in db.execute(f"SELECT id FROM batches WHERE id IN ({marks}) AND status = "
                                             "'cancelled'", batch_ids).fetchall()}
            for bid in gone:
                db.execute("UPDATE batch_items SET status = 'cancelled', input = NULL, lease_owner = NULL WHERE "
                           "batch_id = ? AND status = 'running' AND lease_owner = ?", (bid, worker))
        return gone

    def renew(self, worker: str, now: float | None = None, lease_s: float = LEASE_S) -> None:
        """Extend the leases ``worker`` holds (called while a long chunk runs)."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            db.execute("UPDATE batch_items SET lease_until = ? WHERE status = 'running' AND lease_owner = ?",
                       (now + lease_s, worker))

    def fail_batch(self, batch_id: str, error: str, now: float | None = None) -> None:
        """The batch cannot run at all (its model is gone): every unfinished item fails with ``error``."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            row = db.execute("SELECT completed, failed FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return
            seq = row[0] + row[1]
            idxs = [r[0] for r in db.execute("SELECT idx FROM batch_items WHERE batch_id = ? AND status IN "
                                             "('queued', 'running') ORDER BY idx", (batch_id,)).fetchall()]
            db.executemany("UPDATE batch_items SET status = 'failed', error = ?, finished_at = ?, seq = ?, "
                           "input = NULL, lease_owner = NULL WHERE batch_id = ? AND idx = ?",
                           [(error, now, seq + k + 1, batch_id, idx) for k, idx in enumerate(idxs)])
            db.execute("UPDATE batches SET failed = failed + ?, status = 'failed', error = ?, finished_at = ? "
                       "WHERE id = ? AND status IN ('queued', 'processing')", (len(idxs), error, now, batch_id))

    def cancel(self, batch_id: str, now: float | None = None) -> dict | None:
        """Cancel a batch: its queued items never run (items already running still store their results);
        a finished batch is left as it is.  The batch after the change, or None when there is none."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            row = db.execute("SELECT status FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            if row[0] not in BATCH_FINISHED:
                db.execute("UPDATE batch_items SET status = 'cancelled', input = NULL WHERE batch_id = ? "
                           "AND status = 'queued'", (batch_id,))
                db.execute("UPDATE batches SET status = 'cancelled', finished_at = ? WHERE id = ?", (now, batch_id))
        return self.get_batch(batch_id)

    def expire(self, ttl_s: float, key_ttl_s: float, now: float | None = None) -> int:
        """Delete batches finished more than ``ttl_s`` ago with their items and archives, and idempotency keys
        older than ``key_ttl_s``; the number of batches deleted."""
        now = time.time() if now is None else now
        with self._connect(write=True) as db:
            old = db.execute("SELECT id, archive FROM batches WHERE finished_at IS NOT NULL AND finished_at < ?",
                             (now - ttl_s,)).fetchall()
            for bid, _ in old:
                db.execute("DELETE FROM batch_items WHERE batch_id = ?", (bid,))
                db.execute("DELETE FROM batches WHERE id = ?", (bid,))
            db.execute("DELETE FROM batch_idempotency WHERE created_at < ?", (now - key_ttl_s,))
        for _, archive in old:
            self.drop_archive(archive)
        return len(old)

    def release_archives(self) -> int:
        """Delete the archives of finished batches (their items no longer need them); how many."""
        with self._connect(write=True) as db:
            paths = [r[0] for r in db.execute("SELECT archive FROM batches WHERE archive IS NOT NULL AND status IN "
                                              "('completed', 'failed', 'cancelled')").fetchall()]
            db.execute("UPDATE batches SET archive = NULL WHERE archive IS NOT NULL AND status IN "
                       "('completed', 'failed', 'cancelled')")
        for p in paths:
            self.drop_archive(p)
        return len(paths)
