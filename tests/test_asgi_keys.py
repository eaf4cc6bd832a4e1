"""API keys: off by default; X-API-Key, 401/403, admin scope, hashed storage, revocation, per-key rate limits,
constant-time checks, WebSockets — through the library, the ``astrodash keys`` command and a real server."""
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys

import httpx
import pytest

from asgi_support import anyio_backend, client, make_app, spectrum_bytes  # noqa: F401
from test_models import make_model

from astrodash_asgi.auth import ApiKeyMiddleware
from astrodash_asgi.process import ServerProcess
from astrodash_asgi.settings import SettingsError
from astrodash_core import apikeys
from astrodash_core.apikeys import KeyRing, generate_key, hash_key, parse_keys_file
from astrodash_plugins.storage.sqlite import SQLiteModelStore

FILE_KEY = "file-key-0123456789abcdef"


def _keys(store_url, *args):
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASTRODASH_")}
    exe = shutil.which("astrodash")
    cmd = ([exe] if exe else [sys.executable, "-m", "astrodash_core.cli"]) + ["keys", *args]
    p = subprocess.run(cmd, env={**base, "ASTRODASH_STORAGE_URL": store_url}, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def _keys_here(monkeypatch, capsys, url, *args):
    """``astrodash keys ARGS`` in this process: (exit code, stdout, stderr)."""
    from astrodash_core.cli import main

    monkeypatch.setenv("ASTRODASH_STORAGE_URL", url)
    code = main(["keys", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keys_are_stored_hashed_and_shown_once(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/models.db"

    def _keys(_, *args):
        return _keys_here(monkeypatch, capsys, url, *args)

    code, key, err = _keys(url, "add", "alice")
    assert code == 0 and key.strip().startswith("adk_") and "shown only this once" in err
    key = key.strip()
    assert _keys(url, "add", "alice")[0] == 1                       # a name is taken once
    assert _keys(url, "add", "root", "--scope", "admin")[0] == 0
    assert _keys(url, "add", "bad name")[0] == 2
    code, listed, _ = _keys(url, "list")
    assert code == 0 and key not in listed
    assert [l.split()[:2] for l in listed.splitlines()] == [["NAME", "SCOPES"], ["alice", "-"], ["root", "admin"]]
    store = SQLiteModelStore.from_url(url)
    assert {r["name"]: r["key_hash"] for r in store.key_hashes()}["alice"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.encode() not in (tmp_path / "models.db").read_bytes()  # never the key itself
    assert _keys(url, "revoke", "alice")[0] == 0 and _keys(url, "revoke", "alice")[0] == 1
    assert [k["name"] for k in store.list_keys()] == ["root"]


def test_keys_file_format():
    entries = parse_keys_file(f"# operators\n{FILE_KEY}\n\n{FILE_KEY}x  ops admin  # the admin\n")
    assert [(e.name, e.scopes) for e in entries] == [("file:2", ()), ("ops", ("admin",))]
    assert entries[0].key_hash == hash_key(FILE_KEY)
    for bad, why in [("short", "line 1: a key must be at least 16"), (f"{FILE_KEY} a root", "unknown scope 'root'"),
                     (f"{FILE_KEY} a\n{FILE_KEY}y a", "line 2: the name 'a' is used twice"),
                     (f"{FILE_KEY} a admin extra", "expected KEY [NAME [SCOPES]]")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_keys_file(bad)


def _wrong(key: str) -> str:
    """``key`` with its last character changed (a key may end in "A" already)."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_every_key_is_compared_whatever_matches(monkeypatch):
    keys = [generate_key() for _ in range(5)]
    ring = KeyRing()
    ring.entries = [apikeys.KeyEntry(f"k{i}", hash_key(k)) for i, k in enumerate(keys)]
    calls, real = [], hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", counting)
    counts = {}
    for label, presented in [("first", keys[0]), ("last", keys[-1]), ("wrong", _wrong(keys[2])),
                             ("unknown", generate_key())]:
        calls.clear()
        found = ring.authenticate(presented)
        counts[label] = (found.name if found else None, len(calls))
    assert counts == {"first": ("k0", 5), "last": ("k4", 5), "wrong": (None, 5), "unknown": (None, 5)}


@pytest.mark.anyio
async def test_keys_off_by_default_and_a_broken_keys_file_stops_the_app(tmp_path):
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/upload-model", files={"file": ("m.npz", make_model().to_bytes())})
    assert r.status_code == 200  # AstroDASH 2.0 clients: no key, everything allowed
    (tmp_path / "keys").write_text("tooshort\n")
    with pytest.raises(SettingsError, match="ASTRODASH_API_KEYS_FILE: .*keys line 1"):
        make_app(tmp_path, require_api_key=True, api_keys_file=str(tmp_path / "keys"))


async def _handshake(app, query=b"", headers=()):
    """The messages an ASGI app sends for a WebSocket handshake."""
    inbox, sent = [{"type": "websocket.connect"}], []

    async def receive():
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "root_path": "", "query_string": query, "headers": list(headers)}
    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_websockets_authenticate_before_the_handshake_is_accepted():
    key = generate_key()
    ring = KeyRing(refresh_s=float("inf"))
    ring.entries, ring._loaded_at = [apikeys.KeyEntry("alice", hash_key(key))], 0.0

    async def endpoint(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["state"]["api_key"]})

    app = ApiKeyMiddleware(endpoint, ring)
    refused = [await _handshake(app), await _handshake(app, headers=[(b"x-api-key", _wrong(key).encode())]),
               await _handshake(app, query=b"api_key=nope")]
    assert [m[0]["type"] for m in refused] == ["websocket.close"] * 3 and all(len(m) == 1 for m in refused)
    assert [m[0]["code"] for m in refused] == [4401] * 3
    assert refused[0][0]["reason"].startswith("missing API key") and refused[1][0]["reason"] == "invalid API key"
    for accepted in (await _handshake(app, headers=[(b"x-api-key", key.encode())]),
                     await _handshake(app, query=f"api_key={key}".encode())):
        assert accepted == [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "alice"}]


@pytest.mark.slow
def test_keys_through_a_real_server(tmp_path):
    url = f"sqlite:///{tmp_path}/models.db"
    alice = _keys(url, "add", "alice")[1].strip()
    root = _keys(url, "add", "root", "--scope", "admin")[1].strip()
    (tmp_path / "keys").write_text(f"{FILE_KEY} ops admin\n")
    env = {"ASTRODASH_REQUIRE_API_KEY": "true", "ASTRODASH_API_KEYS_FILE": str(tmp_path / "keys"),
           "ASTRODASH_API_KEYS_REFRESH_S": "0", "ASTRODASH_RATE_LIMIT_PER_KEY": "6", "ASTRODASH_WARMUP": "0"}
    model = make_model().to_bytes()
    with ServerProcess(tmp_path, env, timeout=60) as server, httpx.Client(base_url=server.base, timeout=60) as c:
        def get(key=None, path="/api/v1/line-list/elements"):
            return c.get(path, headers={"x-api-key": key} if key is not None else {})

        none, empty, wrong, unknown = get(), get(""), get(alice[:-1] + ("A" if alice[-1] != "A" else "B")), \
            get(generate_key())
        probes = [c.get(p).status_code for p in ("/health", "/ready", "/openapi.json")]
        preflight = c.options("/api/v1/process", headers={"origin": "https://a.org",
                                                           "access-control-request-method": "POST"})
        ok = get(alice)
        upload_as_alice = c.post("/api/v1/upload-model", files={"file": ("m.npz", model)},
                                 headers={"x-api-key": alice})
        upload_as_root = c.post("/api/v1/upload-model", files={"file": ("m.npz", model)}, headers={"x-api-key": root})
        mid = upload_as_root.json()["model_id"]
        delete_as_alice = c.delete(f"/api/v1/models/{mid}", headers={"x-api-key": alice})
        put_as_file_key = c.put(f"/api/v1/models/{mid}", json={"name": "n"}, headers={"x-api-key": FILE_KEY})
        # alice's own bucket: 6 a minute (bursts of 6); she has used 3, root's bucket is untouched
        alice_rest = [get(alice).status_code for _ in range(4)]
        root_after = get(root)
        assert _keys(url, "revoke", "alice")[0] == 0
        revoked = get(alice)
        root_still = get(root)
    assert [r.status_code for r in (none, empty, wrong, unknown)] == [401] * 4
    assert none.json()["detail"] == empty.json()["detail"] == "missing API key: send it in the X-API-Key header"
    assert wrong.json() == unknown.json() == {"detail": "invalid API key"}  # wrong and unknown look the same
    assert wrong.headers["www-authenticate"] == 'ApiKey header="X-API-Key"' and "x-request-id" in wrong.headers
    assert probes == [200, 200, 200] and preflight.status_code == 200
    assert ok.status_code == 200 and ok.headers["cache-control"].startswith("private")
    assert upload_as_alice.status_code == 403 and "'admin' scope" in upload_as_alice.json()["detail"]
    assert upload_as_root.status_code == 200 and delete_as_alice.status_code == 403
    assert put_as_file_key.status_code == 200 and put_as_file_key.json()["model"]["name"] == "n"
    assert alice_rest == [200, 200, 200, 429]
    assert root_after.status_code == 200 and root_after.headers["x-ratelimit-limit"] == "6"
    assert revoked.status_code == 401 and root_still.status_code == 200
    log = server.log_path.read_text()
    assert '"api_key": "root"' in log and alice not in log and root not in log  # names logged, never keys


def test_the_api_description_tells_of_keys():
    from astrodash_asgi.openapi import document

    doc = document()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {**doc["components"]["securitySchemes"]["ApiKey"],
                                                              "type": "apiKey", "in": "header", "name": "X-API-Key"}
    ops = [(p, m, op) for p, methods in doc["paths"].items() for m, op in methods.items()]
    assert all("401" in op["responses"] for p, m, op in ops if p.startswith("/api/") or p == "/metrics")
    admin = {(p, m) for p, m, op in ops if "403" in op["responses"]}
    assert admin == {("/api/v1/upload-model", "post"), ("/api/v1/models/{model_id}", "put"),
                     ("/api/v1/models/{model_id}", "delete"), ("/api/batch-processor/configure", "post"),
                     ("/metrics", "get")}
    assert doc["paths"]["/health"]["get"]["security"] == [{}]


def test_a_keys_file_broken_while_serving_keeps_the_keys_read_before(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"{FILE_KEY} ops\n")
    clock = [0.0]
    ring = KeyRing(str(path), refresh_s=1.0, clock=lambda: clock[0])
    ring.load()
    path.write_text("short\n")
    clock[0] = 2.0
    assert ring.due()
    ring.refresh()
    assert "line 1" in ring.file_error and ring.authenticate(FILE_KEY).name == "ops" and not ring.due()
    path.write_text(f"{FILE_KEY}x ops2\n")
    clock[0] = 4.0
    ring.refresh()
    assert ring.file_error is None and ring.authenticate(FILE_KEY) is None
    assert ring.authenticate(FILE_KEY + "x").name == "ops2"
