"""Batch results as clients receive them: one JSON page, or every result streamed as JSON lines, CSV or
msgpack, read from the store a page at a time so memory stays flat however large the batch."""
from __future__ import annotations

import base64
import csv
import io
import json
from typing import Iterator

import msgpack

from ..negotiation import preferred

NDJSON = "application/x-ndjson"
CSV = "text/csv"
MSGPACK = "application/msgpack"
#: Results read from the store at a time while streaming.
STREAM_PAGE = 500
CSV_COLUMNS = ("request_id", "name", "type", "age", "probability", "broad_type", "redshift", "redshift_error",
               "rlap", "reliable", "error")


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"r:{int(seq)}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor given by this server") from None
    kind, _, value = text.partition(":")
    if kind != "r" or not value.isdigit() or len(value) > 18:
        raise ValueError("not a cursor given by this server")
    return int(value)


def encode_batch_cursor(created_at: float, batch_id: str) -> str:
    return base64.urlsafe_b64encode(f"b:{created_at!r}|{batch_id}".encode()).decode().rstrip("=")


def decode_batch_cursor(cursor: str) -> tuple[float, str]:
    """(created_at, id) of the last batch of the previous page; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, rest = text.partition(":")
        t, sep, bid = rest.partition("|")
        if kind != "b" or not sep:
            raise ValueError
        return float(t), bid
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor given by this server") from None


def record(row: dict) -> dict:
    """One result as the API shows it: request_id, name, output, confidence, error?, processing_time_ms."""
    output = msgpack.unpackb(row["result"], raw=False) if row.get("result") is not None else None
    best = ((output or {}).get("classification") or {}).get("best_match") or {}
    rec = {"request_id": row["request_id"], "name": row["name"], "output": output,
           "confidence": best.get("probability"), "processing_time_ms": row.get("processing_ms")}
    if row.get("error") is not None:
        rec["error"] = row["error"]
    return rec


def csv_row(rec: dict) -> list:
    out = rec.get("output") or {}
    best = (out.get("classification") or {}).get("best_match") or {}

    def cell(v):
        return "" if v is None else v

    return [rec["request_id"], rec["name"], cell(best.get("type")), cell(best.get("age")),
            cell(best.get("probability")), cell(best.get("broad_type")), cell(out.get("redshift")),
            cell(out.get("redshift_error")), cell(best.get("rlap")),
            "" if not best else bool(best.get("reliable")), cell(rec.get("error"))]


def stream(pages: Iterator[list[dict]], media: str) -> Iterator[bytes]:
    """The encoded body, a page of records at a time."""
    if media == CSV:
        buf = io.StringIO()
        csv.writer(buf).writerow(CSV_COLUMNS)
        yield buf.getvalue().encode()
    for page in pages:
        if media == NDJSON:
            yield "".join(json.dumps(r, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
                          for r in page).encode()
        elif media == CSV:
            buf = io.StringIO()
            writer = csv.writer(buf)
            for r in page:
                writer.writerow(csv_row(r))
            yield buf.getvalue().encode()
        else:
            packer = msgpack.Packer(use_bin_type=True)
            yield b"".join(packer.pack(r) for r in page)


_OFFERED = {NDJSON: NDJSON, "application/jsonlines": NDJSON, "application/jsonl": NDJSON, CSV: CSV,
            MSGPACK: MSGPACK, "application/x-msgpack": MSGPACK, "application/json": "page", "*/*": "page"}


def streamed_media(accept: str) -> str | None:
    """The streaming format the Accept header prefers (NDJSON, CSV or msgpack), or None for a JSON page."""
    media = preferred(accept, _OFFERED)
    return None if media == "page" else media
