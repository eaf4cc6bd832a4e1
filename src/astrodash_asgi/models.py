"""Uploaded models: ``POST /api/v1/upload-model`` and ``GET/PUT/DELETE /api/v1/models[/{id}]``.

Uploads are astrodash model files (``.npz``), validated by :meth:`Model.from_bytes` (shapes, label list,
finite weights, preprocessing version; never unpickled) and kept in the configured storage backend.
"""
from __future__ import annotations

import json

import anyio.to_thread
from starlette.requests import Request

from astrodash_core import labels
from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier
from astrodash_core.errors import ModelFileError

from .common import app_state, form_of
from .forms import read_small_body
from .errors import ApiError, bad_file, invalid, not_found
from .negotiation import respond
from .params import json_field


def _validate(data: bytes, filename: str):
    from astrodash_core.models import Model

    try:
        model = Model.from_bytes(bytes(data), filename)
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
        if any(not isinstance(s, list) or s not in ([nw], [1, nw], [1, 1, nw]) for s in shapes):
            raise invalid("input_shape", f"the model takes [1, {nw}] inputs, not {_short(input_shape)}")


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def describe(record: dict) -> dict:
    meta = record.get("meta") or {}
    lab = meta.get("labels") or []
    nw = meta.get("nw")
    return {"id": record["id"], "model_id": record["id"], "name": record["name"], "owner": record["owner"],
            "description": record["description"], "model_filename": record["model_filename"],
            "created_at": record["created_at"], "updated_at": record["updated_at"], "size": record["size"],
            "sha256": record["sha256"], "variant": meta.get("variant"),
            "class_mapping": {name: i for i, name in enumerate(lab)},
            "input_shape": [1, nw] if nw else None, "output_shape": [1, len(lab)],
            "meta": {k: v for k, v in meta.items() if k != "labels"}}


async def upload_model(request: Request):
    state = await app_state(request)
    form = await form_of(request, state)
    upload = form.required_file("file", "a model file (.npz) is required")
    class_mapping, input_shape = _json_field(state, form, "class_mapping"), _json_field(state, form, "input_shape")
    model = await anyio.to_thread.run_sync(_validate, upload.data, upload.filename)
    _check_declared(model, class_mapping, input_shape)
    record = {"name": form.get("name") or model.name or upload.filename, "description": form.get("description"),
              "owner": form.get("owner"), "model_filename": upload.filename,
              "meta": {"variant": model.variant, "labels": list(model.labels), "nw": int(model.grid["nw"]),
                       "arch": model.arch, "provenance": model.provenance}}
    stored = await anyio.to_thread.run_sync(_storage(state).put, upload.data, record)
    info = describe(stored)
    return respond(request, {"status": "success", "message": "Model uploaded and validated successfully.",
                             "model_id": stored["id"], "model_filename": upload.filename,
                             "class_mapping": info["class_mapping"], "output_shape": info["output_shape"],
                             "input_shape": info["input_shape"], "model_info": info})


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


async def list_models(request: Request):
    state = request.app.state.astrodash
    owner = request.path_params.get("owner")
    records = await anyio.to_thread.run_sync(_storage(state).list, owner)
    return respond(request, [describe(r) for r in records])


async def get_model(request: Request):
    state = request.app.state.astrodash
    return respond(request, describe(await _record(state, request.path_params["model_id"])))


async def update_model(request: Request):
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
    return respond(request, {"status": "success", "model_id": model_id, "model": describe(updated)})


async def delete_model(request: Request):
    state = request.app.state.astrodash
    model_id = request.path_params["model_id"]
    if not await anyio.to_thread.run_sync(_storage(state).delete, model_id):
        raise not_found(f"Model with ID '{model_id}' not found.")
    state.forget(model_id)
    return respond(request, {"status": "success", "message": f"Model {model_id} deleted successfully."})
