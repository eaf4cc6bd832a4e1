"""The embedded model store: SQLite metadata plus one file per model in a data directory."""
from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    model_filename TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
)"""
_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
)"""
_COLUMNS = ("id", "name", "description", "owner", "model_filename", "created_at", "updated_at", "size", "sha256",
            "meta")
EDITABLE = ("name", "description", "owner")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _path_of(url: str) -> str:
    parsed = urlparse(url)
    path = unquote(parsed.netloc + parsed.path) if parsed.netloc else unquote(parsed.path)
    if path.startswith("/"):
        path = "/" + path.lstrip("/")
    if not path:
        raise ValueError(f"storage URL {url!r} names no path")
    return path


class SQLiteModelStore:
    def __init__(self, db_path: str | os.PathLike, data_dir: str | os.PathLike | None = None):
        self.db_path = Path(db_path)
        self.data_dir = Path(data_dir) if data_dir else self.db_path.parent / "models"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            db.execute(_KEYS_SCHEMA)
            db.execute("CREATE INDEX IF NOT EXISTS models_sha256 ON models (sha256)")
            db.execute("CREATE INDEX IF NOT EXISTS models_owner ON models (owner, created_at)")

    @classmethod
    def from_url(cls, url: str) -> "SQLiteModelStore":
        parsed = urlparse(url)
        path = Path(_path_of(url))
        data_dir = parse_qs(parsed.query).get("data_dir", [None])[0]
        if parsed.scheme == "file":
            return cls(path / "models.db", data_dir or path / "models")
        return cls(path, data_dir)

    @contextmanager
    def _connect(self):
        """A connection for one operation: committed (or rolled back) and closed."""
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def jobs(self):
        """The batch-job store in the same database (see :mod:`.jobs_sqlite`), made once."""
        with self._lock:
            if getattr(self, "_jobs", None) is None:
                from .jobs_sqlite import SQLiteJobStore

                self._jobs = SQLiteJobStore(self.db_path, self.db_path.parent / "jobs")
            return self._jobs
    def check(self) -> None:
        """Raise unless the database exists with its table, takes a write lock, and the data directory is
        writable (for /ready; creates nothing)."""
        db = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=rw", uri=True, timeout=1)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT 1 FROM models LIMIT 1").fetchall()
            db.rollback()
        finally:
            db.close()
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"model directory {self.data_dir} is not writable")

    def _file(self, model_id: str) -> Path:
        if not model_id or not all(c in "0123456789abcdef" for c in model_id):
            raise KeyError(model_id)
        return self.data_dir / f"{model_id}.npz"

    @staticmethod
    def _record(row) -> dict:
        rec = dict(zip(_COLUMNS, row))
        rec["meta"] = json.loads(rec["meta"] or "{}")
        return rec

    def put(self, data: bytes, record: dict) -> dict:
        import hashlib

        model_id = uuid.uuid4().hex
        path = self._file(model_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        now = _now()
        row = {"id": model_id, "name": str(record.get("name") or model_id), "description":
               str(record.get("description") or ""), "owner": str(record.get("owner") or ""),
               "model_filename": str(record.get("model_filename") or ""), "created_at": now, "updated_at": now,
               "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
               "meta": json.dumps(record.get("meta") or {})}
        try:
            with self._lock, self._connect() as db:
                db.execute(f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                           [row[c] for c in _COLUMNS])
        except Exception:
            path.unlink(missing_ok=True)
            raise
        stored = self.get(model_id)
        if stored is None:  # deleted by another process between the insert and this read
            raise KeyError(model_id)
        return stored

    def get(self, model_id: str) -> dict | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE id = ?", (model_id,)).fetchone()
        return None if row is None else self._record(row)

    def read(self, model_id: str) -> bytes:
        if self.get(model_id) is None:
            raise KeyError(model_id)
        return self._file(model_id).read_bytes()

    def list(self, owner: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict]:
        """Records, newest first; ``limit``/``offset`` page through them."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM models"
        args: tuple = ()
        if owner is not None:
            sql, args = sql + " WHERE owner = ?", (owner,)
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ? OFFSET ?", args + (int(limit), max(0, int(offset)))
        elif offset:
            sql, args = sql + " LIMIT -1 OFFSET ?", args + (max(0, int(offset)),)
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
        return [self._record(r) for r in rows]

    def count(self, owner: str | None = None) -> int:
        with self._connect() as db:
            if owner is None:
                return db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
            return db.execute("SELECT COUNT(*) FROM models WHERE owner = ?", (owner,)).fetchone()[0]

    def usage(self) -> tuple[int, int]:
        """(number of models, total bytes of their files)."""
        with self._connect() as db:
            n, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM models").fetchone()
        return int(n), int(size)

    def find(self, sha256: str) -> dict | None:
        """The oldest record whose file has this SHA-256, or None."""
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE sha256 = ? "
                             "ORDER BY created_at, rowid LIMIT 1", (sha256,)).fetchone()
        return None if row is None else self._record(row)

    def update(self, model_id: str, fields: dict) -> dict | None:
        changes = {k: str(v) for k, v in fields.items() if k in EDITABLE and v is not None}
        if changes:
            sets = ", ".join(f"{k} = ?" for k in changes)
            with self._lock, self._connect() as db:
                db.execute(f"UPDATE models SET {sets}, updated_at = ? WHERE id = ?",
                           [*changes.values(), _now(), model_id])
        return self.get(model_id)

    def delete(self, model_id: str) -> bool:
        with self._lock, self._connect() as db:
            gone = db.execute("DELETE FROM models WHERE id = ?", (model_id,)).rowcount > 0
        if gone:
            self._file(model_id).unlink(missing_ok=True)
        return gone

    # --- API keys (hashed; the key itself is never stored) ---------------------------------------------------
    def add_key(self, name: str, key_hash: str, scopes=()) -> dict:
        """Keep a key's hash under ``name``; KeyError when that name is taken."""
        row = (name, key_hash, ",".join(scopes), _now())
        try:
            with self._lock, self._connect() as db:
                db.execute("INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            raise KeyError(name) from None
        return {"name": name, "scopes": list(scopes), "created_at": row[3]}

    def list_keys(self) -> builtins.list[dict]:
        """``{name, scopes, created_at}`` of every key, by name (no hashes)."""
        with self._connect() as db:
            rows = db.execute("SELECT name, scopes, created_at FROM api_keys ORDER BY name").fetchall()
        return [{"name": n, "scopes": [s for s in scopes.split(",") if s], "created_at": c} for n, scopes, c in rows]

    def key_hashes(self) -> builtins.list[dict]:
        """``{name, key_hash, scopes}`` of every key, for the server's check."""
        with self._connect() as db:
            rows = db.execute("SELECT name, key_hash, scopes FROM api_keys").fetchall()
        return [{"name": n, "key_hash": h, "scopes": [s for s in scopes.split(",") if s]} for n, h, scopes in rows]

    def revoke_key(self, name: str) -> bool:
        with self._lock, self._connect() as db:
            return db.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount > 0
