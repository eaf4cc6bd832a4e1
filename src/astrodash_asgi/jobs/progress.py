"""``/ws/batch-processor``: live progress of batches over a WebSocket.

The client sends ``{"action": "subscribe", "batch_id": ...}`` (or ``"unsubscribe"``) as often as it likes; for
each subscribed batch it receives its status document (as ``GET /status/{batch_id}``) at once and on every
change, the last one when the batch is finished (with ``total_time_ms``), after which the subscription ends.
An unknown batch or a malformed message gets ``{"error": ..., "batch_id"?}``; the socket stays open.  The
store is polled, so progress made by any server process is seen.
"""
from __future__ import annotations

import json

import anyio
import anyio.to_thread
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import ApiError
from .routes import owner_of

POLL_S = 0.25
MAX_SUBSCRIPTIONS = 100
MAX_MESSAGE = 4096


def _progress_key(view: dict) -> tuple:
    return view["status"], view["completed_requests"], view["failed_requests"], view["queue_position"]


async def progress(websocket: WebSocket):
    state = websocket.app.state.astrodash
    await state.startup()
    await websocket.accept()
    try:
        engine = state.engine
        engine.ensure_running()
        store = engine.store
    except ApiError as exc:
        await websocket.send_json({"error": exc.detail})
        await websocket.close(code=1011)
        return
    owner = owner_of(websocket)
    watched: dict[str, tuple | None] = {}
    changed = anyio.Event()

    async def receive():
        nonlocal changed
        while True:
            try:
                text = await websocket.receive_text()
            except (WebSocketDisconnect, KeyError, RuntimeError):
                tg.cancel_scope.cancel()
                return
            reply = _command(text, watched)
            if reply is not None:
                await websocket.send_json(reply)
            changed.set()

    async def watch():
        nonlocal changed
        while True:
            found, missing = await anyio.to_thread.run_sync(_read, engine, store, list(watched), owner)
            for bid in missing:
                watched.pop(bid, None)
                await websocket.send_json({"error": f"batch {bid!r} not found", "batch_id": bid})
            for view in found:
                bid = view["batch_id"]
                if bid not in watched:  # unsubscribed while the store was read
                    continue
                key = _progress_key(view)
                if watched.get(bid) != key:
                    watched[bid] = key
                    await websocket.send_json(view)
                if "total_time_ms" in view:
                    watched.pop(bid, None)
            changed = anyio.Event()
            with anyio.move_on_after(POLL_S):
                await changed.wait()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            tg.start_soon(watch)
    except (WebSocketDisconnect, RuntimeError):
        pass


def _read(engine, store, ids: list[str], owner: str) -> tuple[list[dict], list[str]]:
    """(status documents of the subscribed batches this owner may see, ids of those it may not or that are gone),
    the queue read once for all of them."""
    batches = {bid: store.get_batch(bid) for bid in ids}
    missing = [bid for bid, b in batches.items() if b is None or b["owner"] != owner]
    return engine.current_views(store, [b for bid, b in batches.items() if bid not in missing]), missing


def _command(text: str, watched: dict) -> dict | None:
    """Apply one client message; the reply to send, if any."""
    if len(text) > MAX_MESSAGE:
        return {"error": f"message of {len(text)} characters; at most {MAX_MESSAGE}"}
    try:
        msg = json.loads(text)
    except ValueError:
        return {"error": "not JSON: send {\"action\": \"subscribe\", \"batch_id\": ...}"}
    if not isinstance(msg, dict) or msg.get("action") not in ("subscribe", "unsubscribe"):
        return {"error": "action must be 'subscribe' or 'unsubscribe'"}
    bid = msg.get("batch_id")
    if not isinstance(bid, str) or not bid:
        return {"error": "batch_id must be a batch id (a string)"}
    if msg["action"] == "unsubscribe":
        watched.pop(bid, None)
        return {"batch_id": bid, "unsubscribed": True}
    if bid not in watched and len(watched) >= MAX_SUBSCRIPTIONS:
        return {"error": f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection", "batch_id": bid}
    watched[bid] = None  # sends the current status at the next poll
    return None
