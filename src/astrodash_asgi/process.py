"""A real ``astrodash serve`` process on a free loopback port, for end-to-end tests and benchmarks.

>>> with ServerProcess(workdir, {"ASTRODASH_RATE_LIMIT_ENABLED": "0"}) as server:
...     httpx.get(server.base + "/health")

Settings are ``ASTRODASH_*`` environment variables (the model store defaults to ``workdir/models.db``); the
server's output goes to ``server.log_path``.  Entering the block waits until ``/health`` answers and its
classification worker processes have loaded their models.  Leaving it stops the server (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _classifying(health: bytes) -> bool:
    """Whether a /health answer says the server can classify now (its worker processes are not starting)."""
    import json

    try:
        return json.loads(health).get("classification", {}).get("status") != "starting"
    except (ValueError, AttributeError):
        return True


class ServerProcess:
    def __init__(self, workdir, env: dict[str, str] | None = None, *, host: str = HOST, timeout: float = 120,
                 workers: int = 1, port: int | None = None):
        self.workdir = Path(workdir)
        self.workers = workers
        self.host, self.port = host, port or free_port(host)
        self.base = f"http://{host}:{self.port}"
        self.log_path = self.workdir / f"server-{self.port}.log"
        self.env = {**os.environ, "ASTRODASH_STORAGE_URL": f"sqlite:///{self.workdir}/models.db", **(env or {})}
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        import urllib.error
        import urllib.request

        exe = shutil.which("astrodash")
        cmd = ([exe] if exe else [sys.executable, "-m", "astrodash_core.cli"]) + [
            "serve", "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as response:
                    # answering, and its classification worker processes have loaded their models
                    if response.status == 200 and _classifying(response.read()):
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer /health within {self.timeout:g} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (one worker: the server is that one process)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc is None or self._log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
