"""Which batch runs next: priority weights with ageing, so no batch starves and small ones are not stuck.

Every time the engine takes a chunk of items it serves the batch with the highest score

    score = weight[priority] + (now − last served, or submitted if never served) / ageing seconds

(critical 3, high 2, normal 1, low 0; ageing 30 s).  Serving a batch resets its wait, so batches of the same
priority take turns chunk by chunk (a 10-spectrum batch submitted behind a 100,000-spectrum one of the same
priority runs within one chunk), and a higher priority goes first.  A batch that has waited ``ageing × (weight
difference)`` seconds catches up with any higher one: a ``low`` batch behind a stream of ``critical`` work
gets a chunk at least every 90 s (with the default ageing).
"""
from __future__ import annotations

PRIORITIES = ("critical", "high", "normal", "low")
WEIGHTS = {"critical": 3.0, "high": 2.0, "normal": 1.0, "low": 0.0}
AGEING_S = 30.0


def score(batch: dict, now: float, weights: dict | None = None, ageing_s: float = AGEING_S) -> float:
    """The batch's claim to the next chunk (higher first)."""
    weights = weights or WEIGHTS
    since = batch.get("last_served") or batch["created_at"]
    return float(weights.get(batch["priority"], 1.0)) + max(0.0, now - since) / max(ageing_s, 1e-9)


def order(batches: list[dict], now: float, weights: dict | None = None, ageing_s: float = AGEING_S) -> list[dict]:
    """``batches`` in the order they would be served next: highest score, then the one served longest ago
    (never served first), then the oldest."""
    return sorted(batches, key=lambda b: (-score(b, now, weights, ageing_s), b.get("last_served") or 0.0,
                                          b["created_at"], b["id"]))
