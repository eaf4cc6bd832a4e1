"""Uploaded models: ``POST /api/v1/upload-model`` and ``GET/PUT/DELETE /api/v1/models[/{id}]``.

Uploads are astrodash model files (``.npz``), PyTorch state dicts of astrodash's architectures (``.pth``/``.pt``)
or ONNX graphs of any architecture (``.onnx``, run by onnxruntime), the last two converted first; all are validated
by :meth:`Model.from_bytes` (shapes, label list, finite weights, preprocessing version; never unpickled), an ONNX
graph also by a trial on test spectra, and kept in the configured storage backend.
"""
from __future__ import annotations

import hashlib
import json

import anyio
import anyio.to_thread
from starlette.requests import Request

from astrodash_core import labels
from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier
from astrodash_core.convert import ONNX_SUFFIXES, PYTORCH_SUFFIXES
from astrodash_core.errors import ModelFileError
from astrodash_core.nn import is_onnx

from .auth import require_scope
from .common import app_state, form_of
from .forms import read_small_body
from .errors import ApiError, bad_file, invalid, not_found, too_large
from .forms import size_text
from .http_cache import REVALIDATE, respond_cached
from .negotiation import respond
from .params import json_field


def _validate(data: bytes, filename: str):
    from astrodash_core.convert import probe_network
    from astrodash_core.models import Model

    try:
        model = Model.from_bytes(bytes(data), filename)
        if is_onnx(model.arch):  # an .npz holding a graph gets the checks and the trial of a converted .onnx
            probe_network(model, filename)
        if list(model.labels) != list(labels.CLASS_LABELS):
            raise ModelFileError(f"{filename}: the model's {len(model.labels)} labels are not DASH's "
                                 f"{labels.N_CLASSES} classes in their order; this service cannot interpret it")
        if model.variant == KNOWN_Z:  # checks the preprocessing version the model was trained with
            Classifier(model=model).model_for(KNOWN_Z)
        else:
            Classifier(agnostic_model=model).model_for(AGNOSTIC)
    except ModelFileError as exc:
        raise bad_file(filename, str(exc)) from None
    return model


#: Uploads converted first: PyTorch state dicts (AstroDASH 2.0's model chooser takes only these) and ONNX graphs.
CONVERTED_SUFFIXES = (*PYTORCH_SUFFIXES, *ONNX_SUFFIXES)


def _convert(data: bytes, filename: str, class_mapping, input_shape) -> bytes:
    """A PyTorch state dict or an ONNX graph as an astrodash model file (:mod:`astrodash_core.convert`: read
    without running code from the file; TorchScript and pickled whole models refused; an ONNX graph tried on test
    spectra), or 400 saying why not."""
    from astrodash_core.convert import convert_model_bytes

    try:
        return convert_model_bytes(bytes(data), filename, class_mapping, input_shape).to_bytes()
    except ModelFileError as exc:
        raise bad_file(filename, str(exc)) from None


def _json_field(state, form, name):
    s = state.settings
    return json_field(name, form.get(name), s.json_max_bytes, s.json_max_depth)


def _check_declared(model, class_mapping, input_shape) -> None:
    """AstroDASH 2.0 clients send class_mapping and input_shape; when given they must match the file."""
    nw = int(model.grid["nw"])
    if class_mapping is not None:
        expected = {name: i for i, name in enumerate(model.labels)}
        if not isinstance(class_mapping, dict) or class_mapping != expected:
            raise invalid("class_mapping", f"does not match the model file's {len(model.labels)} labels")
    if input_shape is not None:
        if not isinstance(input_shape, list) or not input_shape:
            raise invalid("input_shape", f"must be a JSON list such as [1, {nw}], got {_short(input_shape)}")
        shapes = input_shape if isinstance(input_shape[0], list) else [input_shape]
        accepted = [[nw], [1, nw], [1, 1, nw]]
        if is_onnx(model.arch):  # the graph's own input layout, with or without its batch dimension
            per = list(model.arch[0]["input_shape"])
            accepted = [per, [1, *per]]
        if any(not isinstance(s, list) or s not in accepted for s in shapes):
            raise invalid("input_shape", f"the model takes {accepted[1]} inputs, not {_short(input_shape)}")


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def describe(record: dict) -> dict:
    meta = record.get("meta") or {}
    lab = meta.get("labels") or []
    nw = meta.get("nw")
    arch = meta.get("arch") or []
    if nw and is_onnx(arch):
        shape = arch[0].get("input_shape")
        input_shape = shape if arch[0].get("batch") == "none" else [1, *shape]
    else:
        input_shape = [1, nw] if nw else None
    return {"id": record["id"], "model_id": record["id"], "name": record["name"], "owner": record["owner"],
            "description": record["description"], "model_filename": record["model_filename"],
            "created_at": record["created_at"], "updated_at": record["updated_at"], "size": record["size"],
            "sha256": record["sha256"], "variant": meta.get("variant"),
            "class_mapping": {name: i for i, name in enumerate(lab)},
            "input_shape": input_shape, "output_shape": [1, len(lab)],
            "meta": {k: v for k, v in meta.items() if k != "labels"}}


async def upload_model(request: Request):
    require_scope(request, "admin")
    state = await app_state(request)
    form = await form_of(request, state)
    upload = form.required_file("file", "a model file (.npz, .pth/.pt or .onnx) is required")
    class_mapping, input_shape = _json_field(state, form, "class_mapping"), _json_field(state, form, "input_shape")
    data = upload.data
    if upload.filename.lower().endswith(CONVERTED_SUFFIXES):
        data = await anyio.to_thread.run_sync(_convert, upload.data, upload.filename, class_mapping, input_shape)
    model = await anyio.to_thread.run_sync(_validate, data, upload.filename)
    _check_declared(model, class_mapping, input_shape)
    store = _storage(state)
    digest = hashlib.sha256(data).hexdigest()
    async with _store_lock(state):  # quota check and insert as one step within this process
        existing = await anyio.to_thread.run_sync(_find, store, digest)
        if existing is None:
            await anyio.to_thread.run_sync(_check_quota, store, state.settings, len(data))
            record = {"name": form.get("name") or model.name or upload.filename,
                      "description": form.get("description"), "owner": form.get("owner"),
                      "model_filename": upload.filename,
                      "meta": {"variant": model.variant, "labels": list(model.labels), "nw": int(model.grid["nw"]),
                               "arch": model.arch, "provenance": model.provenance}}
            stored = await anyio.to_thread.run_sync(store.put, data, record)
    if existing is not None:
        stored, message = existing, f"An identical model (same SHA-256) is already stored as {existing['id']}."
    else:
        message = "Model uploaded and validated successfully."
    info = describe(stored)
    return respond(request, {"status": "success", "message": message, "duplicate": existing is not None,
                             "model_id": stored["id"], "model_filename": stored["model_filename"],
                             "class_mapping": info["class_mapping"], "output_shape": info["output_shape"],
                             "input_shape": info["input_shape"], "model_info": info})


def _store_lock(state) -> anyio.Lock:
    lock = getattr(state, "_model_store_lock", None)
    if lock is None:
        lock = state._model_store_lock = anyio.Lock()
    return lock


def _find(store, digest: str) -> dict | None:
    if hasattr(store, "find"):
        return store.find(digest)
    return next((r for r in store.list() if r.get("sha256") == digest), None)


def _check_quota(store, settings, size: int) -> None:
    """413 when one more model of ``size`` bytes would pass ASTRODASH_MODEL_STORE_MAX_COUNT or _MAX_BYTES."""
    if hasattr(store, "usage"):
        count, used = store.usage()
    else:
        records = store.list()
        count, used = len(records), sum(int(r.get("size") or 0) for r in records)
    if count + 1 > settings.model_store_max_count:
        raise too_large(f"the model store is full: {count} models stored, at most "
                        f"{settings.model_store_max_count} (ASTRODASH_MODEL_STORE_MAX_COUNT); delete one first")
    if used + size > settings.model_store_max_bytes:
        raise too_large(f"the model store is full: {size_text(used)} stored + {size_text(size)} would pass "
                        f"{size_text(settings.model_store_max_bytes)} (ASTRODASH_MODEL_STORE_MAX_BYTES); "
                        "delete a model first")


def _storage(state):
    try:
        return state.storage
    except Exception as exc:
        raise ApiError(503, f"model storage unavailable: {exc}") from None


async def _record(state, model_id: str) -> dict:
    record = await anyio.to_thread.run_sync(_storage(state).get, model_id)
    if record is None:
        raise not_found(f"Model with ID '{model_id}' not found.")
    return record


MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise invalid(name, f"must be from {lo} to {hi}, got {value}")
    return value


def _page_params(request: Request) -> tuple[int, int]:
    return (_query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
            _query_int(request, "offset", 0, 0, 2 ** 62))


def _page(store, owner, limit: int, offset: int) -> tuple[list[dict], int]:
    if hasattr(store, "count"):
        return store.list(owner, limit=limit, offset=offset), store.count(owner)
    records = store.list(owner)
    return records[offset:offset + limit], len(records)


async def list_models(request: Request):
    """One page of models (newest first) as a JSON array; ``X-Total-Count`` and a ``Link: rel="next"``
    header tell how to get the rest."""
    state = request.app.state.astrodash
    owner = request.path_params.get("owner")
    limit, offset = _page_params(request)
    records, total = await anyio.to_thread.run_sync(_page, _storage(state), owner, limit, offset)
    headers = {"x-total-count": str(total)}
    if offset + len(records) < total:
        url = request.url.include_query_params(limit=limit, offset=offset + limit)
        headers["link"] = f'<{url}>; rel="next"'
    return respond_cached(request, [describe(r) for r in records], cache_control=REVALIDATE, headers=headers)


async def get_model(request: Request):
    state = request.app.state.astrodash
    return respond_cached(request, describe(await _record(state, request.path_params["model_id"])),
                          cache_control=REVALIDATE)


async def update_model(request: Request):
    require_scope(request, "admin")
    state = request.app.state.astrodash
    model_id = request.path_params["model_id"]
    await _record(state, model_id)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await form_of(request, state)
        fields = {k: form.get(k) for k in ("name", "description", "owner") if form.get(k) is not None}
    else:
        s = state.settings
        body = await read_small_body(request, s.max_field_bytes)
        fields = json_field("body", body, s.json_max_bytes, s.json_max_depth)
        fields = {} if fields is None else fields
        if not isinstance(fields, dict):
            raise invalid("body", "must be a JSON object")
    for k, v in fields.items():
        if k in ("name", "description", "owner") and not isinstance(v, str):
            raise invalid(k, "must be a string")
    updated = await anyio.to_thread.run_sync(_storage(state).update, model_id, fields)
    state.forget(model_id)
    return respond(request, {"status": "success", "model_id": model_id, "model": describe(updated)})


async def delete_model(request: Request):
    require_scope(request, "admin")
    state = request.app.state.astrodash
    model_id = request.path_params["model_id"]
    if not await anyio.to_thread.run_sync(_storage(state).delete, model_id):
        raise not_found(f"Model with ID '{model_id}' not found.")
    state.forget(model_id)
    return respond(request, {"status": "success", "message": f"Model {model_id} deleted successfully."})


async def model_resource(request: Request):
    """``GET``, ``PUT`` and ``DELETE /api/v1/models/{id}`` (the route answers 405 with all three in Allow)."""
    handler = {"GET": get_model, "HEAD": get_model, "PUT": update_model, "DELETE": delete_model}[request.method]
    return await handler(request)
