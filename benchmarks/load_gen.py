"""A load generator that is cheap per request, for the HTTP benchmarks.

A client written with an HTTP library in one process (``httpx`` with 200 coroutines) spends more CPU per request
than the server's admission check and cannot send more than a few dozen requests per second on a small machine,
so its latencies measure the client.  Here:

- each request's bytes (request line, headers and the whole multipart body) are built once
  (:func:`multipart_request`) and written as they are on raw asyncio streams;
- an answer is read by its ``Content-Length`` (or chunked encoding), its status and headers parsed by hand;
- the concurrency is spread over several client processes (:func:`run`), each opening its share of keep-alive
  connections before a common start signal, each connection sending its requests one after another.

Requests can differ: every occurrence of :data:`MARK` (eight bytes, e.g. in a file name) is replaced by the
request's number, zero-padded to the same width, so a server's result cache sees a new file each time.

A connection the server closes (``Connection: close``, a reset) is reopened, and the reconnection counts in the
next request's latency.  Each answer is recorded as ``(start, seconds, status, retry_after)``: the start on the
machine-wide monotonic clock (``time.perf_counter``), ``status`` 0 for a request with no answer, ``retry_after``
the header's value (or None).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from typing import NamedTuple
from urllib.parse import urlsplit


#: replaced by each request's number (``%08d``) in the request bytes
MARK = b"@@NUMBER"


class Answer(NamedTuple):
    start: float
    seconds: float
    status: int
    retry_after: str | None


def multipart_request(host: str, port: int, path: str, fields: dict[str, str] | None = None,
                      files: dict[str, tuple[str, bytes]] | None = None, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``POST path`` (HTTP/1.1, keep-alive) with a ``multipart/form-data`` body of ``fields`` (name ->
    text) and ``files`` (name -> (filename, content)), as bytes to write on a socket."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, content) in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    head = {"Host": f"{host}:{port}", "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body)), **(headers or {})}
    return f"POST {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() \
        + b"\r\n" + body


def get_request(host: str, port: int, path: str) -> bytes:
    """A ``GET path`` (HTTP/1.1, keep-alive) as bytes."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class ResponseHead(NamedTuple):
    status: int
    headers: dict[str, str]


async def read_response(reader: asyncio.StreamReader) -> tuple[ResponseHead, bytes]:
    """One HTTP/1.1 response from ``reader``: its status and headers (names lower-case) and its body, read by
    ``Content-Length`` or chunked transfer encoding.  ``asyncio.IncompleteReadError`` when the connection ends
    first."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
        body = b"".join(c[:-2] for c in chunks)
    else:
        body = await reader.read()
    return ResponseHead(status, headers), body


def numbered(request: bytes, number: int) -> bytes:
    """``request`` with :data:`MARK` replaced by ``number`` (eight digits); ``request`` itself without a mark."""
    return request.replace(MARK, b"%08d" % number) if MARK in request else request


async def _connection(host: str, port: int, request: bytes, todo: list, answers: list, start: asyncio.Event,
                      timeout: float) -> None:
    """One connection sending ``request`` while ``todo`` (a shared countdown; ``todo[1]`` the next request's
    number) is positive."""
    reader = writer = None
    marked = MARK in request
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        pass
    await start.wait()
    while todo[0] > 0:
        todo[0] -= 1
        todo[1] += 1
        data = numbered(request, todo[1] - 1) if marked else request
        t0 = time.perf_counter()
        status, retry_after = 0, None
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(data)
            response, _ = await asyncio.wait_for(read_response(reader), timeout)
            status, retry_after = response.status, response.headers.get("retry-after")
            if response.headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
            if writer is not None:
                writer.close()
            reader = writer = None
        answers.append(Answer(t0, time.perf_counter() - t0, status, retry_after))
    if writer is not None:
        writer.close()


async def _client(host: str, port: int, request: bytes, requests: int, first: int, connections: int, ready, go,
                  timeout: float) -> list[Answer]:
    todo, answers, start = [requests, first], [], asyncio.Event()
    tasks = [asyncio.ensure_future(_connection(host, port, request, todo, answers, start, timeout))
             for _ in range(connections)]
    await asyncio.sleep(0)  # let them connect
    await asyncio.sleep(0.2)
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    start.set()
    await asyncio.gather(*tasks)
    return answers


def _client_process(host, port, request, requests, first, connections, ready, go, timeout, out) -> None:
    try:
        answers = asyncio.run(_client(host, port, request, requests, first, connections, ready, go, timeout))
        out.put(([tuple(a) for a in answers], time.process_time()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never hangs it
        ready.set()
        out.put(exc)


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole shares differing by at most one (larger shares first)."""
    q, r = divmod(total, parts)
    return [q + (i < r) for i in range(parts)]


def run(base: str, request: bytes, total: int, concurrency: int, processes: int = 4,
        timeout: float = 600) -> tuple[list[Answer], float]:
    """Send ``request`` ``total`` times over ``concurrency`` keep-alive connections spread over ``processes``
    client processes (each with its share of the connections and the requests); the answers and the wall time
    from the common start to the last answer.  ``run.cpu_seconds`` is then the CPU time the client processes
    used (start-up included)."""
    parts = urlsplit(base)
    processes = max(1, min(processes, concurrency))
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs, readies, first = [], [], 0
    for requests, connections in zip(shares(total, processes), shares(concurrency, processes)):
        ready = ctx.Event()
        p = ctx.Process(target=_client_process, daemon=True, args=(parts.hostname, parts.port, request, requests,
                                                                   first, connections, ready, go, timeout, out))
        first += requests
        p.start()
        procs.append(p)
        readies.append(ready)
    for ready in readies:
        ready.wait(120)
    t0 = time.perf_counter()
    go.set()
    answers: list[Answer] = []
    errors = []
    run.cpu_seconds = 0.0
    for _ in procs:
        got = out.get(timeout=timeout + 120)
        if isinstance(got, BaseException):
            errors.append(got)
        else:
            answers.extend(Answer(*a) for a in got[0])
            run.cpu_seconds += got[1]
    for p in procs:
        p.join(30)
    if errors:
        raise RuntimeError(f"a client process failed: {errors[0]!r}")
    end = max((a.start + a.seconds for a in answers), default=t0)
    return answers, end - t0


def summary(answers: list[Answer], seconds: float) -> dict:
    """Requests/s, p50/p99/max latency (ms) of all answers, of the 200s and of the 503s, the status counts and
    how many 503s carried ``Retry-After``."""
    import numpy as np

    def pct(values, q):
        return float(np.percentile(values, q)) if len(values) else float("nan")

    every = [a.seconds * 1000 for a in answers]
    ok = [a.seconds * 1000 for a in answers if a.status == 200]
    busy = [a.seconds * 1000 for a in answers if a.status == 503]
    codes: dict[int, int] = {}
    for a in answers:
        codes[a.status] = codes.get(a.status, 0) + 1
    return {"requests": len(answers), "seconds": seconds, "rps": len(answers) / seconds if seconds else float("nan"),
            "ok_rps": len(ok) / seconds if seconds else float("nan"), "status_counts": codes,
            "p50_ms": pct(every, 50), "p99_ms": pct(every, 99), "max_ms": max(every, default=float("nan")),
            "ok_p50_ms": pct(ok, 50), "ok_p99_ms": pct(ok, 99), "busy_503": len(busy),
            "busy_p50_ms": pct(busy, 50), "busy_p99_ms": pct(busy, 99),
            "busy_with_retry_after": sum(1 for a in answers if a.status == 503 and a.retry_after)}
