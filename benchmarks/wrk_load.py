"""Load from ``wrk`` (a load generator written in C, Debian package ``wrk``), for the HTTP benchmarks.

On a 2-core machine the Python load generator (:mod:`load_gen`) spends about as much CPU per request as the
server's event loop, on the same cores, so the server's rate it reports is partly the client's.  wrk spends a
few microseconds per request.  :func:`run` sends the bytes of :func:`load_gen.multipart_request` as they are over
``connections`` keep-alive connections for ``seconds``, each request with its own number in place of
:data:`load_gen.MARK` (a thread digit and a count from a random start: the server's result cache never answers,
in this run or a later one), and returns wrk's counts and latency
percentiles.  Without ``wrk`` on the PATH, :func:`available` is False and the benchmarks use :mod:`load_gen`.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from load_gen import MARK

#: the Lua script: the request is read from a file and split at the mark; each thread numbers its requests
#: ``<thread><7 digits>`` (8 digits, as the mark), and wrk's summary is printed as one JSON line
SCRIPT = r"""
local parts = {}
local n = 0
local id = 0
local template = os.getenv("ASTRODASH_WRK_REQUEST")

function setup(thread)
  n = n + 1
  thread:set("id", n)
end

function init(args)
  local f = assert(io.open(template, "rb"))
  local data = f:read("*a")
  f:close()
  local mark = "@@NUMBER"
  local at = 1
  parts = {}
  while true do
    local i, j = string.find(data, mark, at, true)
    if not i then break end
    table.insert(parts, string.sub(data, at, i - 1))
    at = j + 1
  end
  table.insert(parts, string.sub(data, at))
  counter = tonumber(os.getenv("ASTRODASH_WRK_START"))
end

function request()
  counter = counter + 1
  local number = string.format("%d%07d", id % 10, counter % 10000000)
  return table.concat(parts, number)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(base: str, request: bytes, connections: int, seconds: float, threads: int = 1) -> dict:
    """wrk's summary of ``seconds`` of ``request`` over ``connections`` keep-alive connections (``threads`` wrk
    threads): ``requests``, ``rps``, ``p50_ms``/``p90_ms``/``p99_ms``/``max_ms``, and the error counts
    (``status_errors``: answers with a status of 400 or more)."""
    if MARK not in request:
        raise ValueError("the request has no mark to number")
    with tempfile.TemporaryDirectory() as tmp:
        template, script = Path(tmp) / "request.bin", Path(tmp) / "numbered.lua"
        template.write_bytes(request)
        script.write_text(SCRIPT)
        cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "60s",
               "-s", str(script), base]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True,
                             env={"PATH": "/usr/bin:/bin", "ASTRODASH_WRK_REQUEST": str(template),
                                  "ASTRODASH_WRK_START": str(random.randrange(10_000_000))})
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{"))
    r = json.loads(line)
    r["seconds"] = r.pop("duration_us") / 1e6
    r["rps"] = r["requests"] / r["seconds"]
    for q in ("p50", "p90", "p99", "max"):
        r[f"{q}_ms"] = r.pop(f"{q}_us") / 1000
    r["connections"], r["threads"] = connections, threads
    return r
