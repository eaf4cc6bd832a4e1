"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from .negotiation import respond
from .openapi_jobs import PATHS as JOB_PATHS
from .openapi_jobs import SCHEMAS as JOB_SCHEMAS

_ERR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PARAMS_DOC = ("JSON object: smoothing (int >= 0), knownZ (bool; false = estimate the redshift), zValue (number, "
               "required with knownZ), minWave, maxWave (Å), calculateRlap (bool, default false as in AstroDASH "
               "2.0; the CLI and library compute rlap unless told not to), modelType ('dash'; 'transformer': "
               "AstroDASH 2.0's five classes in its answer shape; 'user_uploaded'); "
               "/process only: oscRef (a supernova name whose catalogue spectrum is classified instead of a file: "
               "an Open Supernova Catalog style source or the Transient Name Server, whichever is configured; 429 "
               "with Retry-After while the TNS rate limit holds) and spectrum_index (which of its spectra, default 0)")


def _ok(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}},
                                                    "application/msgpack": {}}}


def _op(summary: str, ok: dict, errors=(), form: dict | None = None, required=(), params=(), body=None) -> dict:
    op = {"summary": summary, "responses": {"200": ok, "429": _ERR, "500": _ERR,
                                            **{str(c): _ERR for c in errors}}}
    if form is not None:
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": form, "required": list(required)}}}}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = list(params)
    return op


def _q(name, schema, required=False, where="query", doc=""):
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": doc}


_FILE = {"type": "string", "format": "binary"}
_STR = {"type": "string"}
_NUM = {"type": "number"}
_NSTR = {"type": ["string", "null"]}
_NNUM = {"type": ["number", "null"]}
_NBOOL = {"type": ["boolean", "null"]}
_NAMES = _q("names", {"type": "string", "enum": ["astrodash", "species"], "default": "astrodash"},
            doc="group lines by AstroDASH 2.0's element keys (H_Balmer, SiII, CaII [H&K], ...; our species name "
                "for a line it has no key for) or by our species names (H I, Si II, Ca II, ...)")
_MODELS = {"type": "array", "items": {"$ref": "#/components/schemas/ModelInfo"}}
_PAGE = (_q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, doc="models per page (default 100)"),
         _q("offset", {"type": "integer", "minimum": 0, "maximum": 2 ** 62}, doc="models to skip (default 0)"))
_PAGED = {"description": "One page of models, newest first; X-Total-Count gives the total and Link (rel=next) "
                         "the next page",
          "headers": {"X-Total-Count": {"schema": {"type": "integer"}}, "Link": {"schema": _STR}},
          "content": {"application/json": {"schema": _MODELS}, "application/msgpack": {}}}
_MODEL_ID = _q("model_id", _STR, where="path")
_IF_NONE_MATCH = _q("If-None-Match", _STR, where="header",
                    doc="an ETag of an earlier answer: 304 without a body when it is still current")


def _cached(op: dict) -> dict:
    """A read-only GET: ETag and Cache-Control on 200, 304 for a matching If-None-Match."""
    ok = op["responses"]["200"] = dict(op["responses"]["200"])
    ok["headers"] = {**ok.get("headers", {}),
                     "ETag": {"schema": _STR, "description": "SHA-256 of this representation's body"},
                     "Cache-Control": {"schema": _STR, "description": "public (private when API keys are required), "
                                       "max-age=3600 for data of the installed version, no-cache for the models"}}
    op["responses"]["304"] = {"description": "Not modified: the If-None-Match tag is current",
                              "headers": {"ETag": {"schema": _STR}}}
    op["parameters"] = [*op.get("parameters", ()), _IF_NONE_MATCH]
    return op
_RESULT = {"$ref": "#/components/schemas/Result"}
_RESULT_CACHED = {**_ok("Result", _RESULT), "headers": {"X-Cache": {
    "schema": {"type": "string", "enum": ["hit", "miss"]},
    "description": "hit: the byte-identical answer to an earlier request with the same file, name, params and "
                   "model; miss: computed now (absent for oscRef and when the cache is off)"}}}

PATHS = {
    "/": {"get": _op("Service information", _ok("Service information"))},
    "/health": {"get": _op("Liveness: 200 while the process answers, with its state, problems and load (never "
                           "blocks, never rate limited, never needs an API key)", _ok("Health"))},
    "/ready": {"get": _op("Readiness: 200 when the models and template bank are loaded, the model store is "
                          "writable and the queue is within ASTRODASH_READY_MAX_QUEUE; else 503 (never rate limited)",
                          _ok("ready, checks {models, template_bank, storage, queue: {ok, state, ...}}, problems",
                              {"$ref": "#/components/schemas/Ready"}), (503,))},
    "/openapi.json": {"get": _op("This document", _ok("OpenAPI document"))},
    "/metrics": {"get": {"summary": "Prometheus metrics in the text format, summed over every worker process: "
                                    "requests by route template and status, latency histograms, spectra "
                                    "classified, micro-batch sizes, queue length, active batches, model load "
                                    "times, rate-limited requests (with API keys: the admin scope, unless "
                                    "ASTRODASH_METRICS_PUBLIC)",
                         "responses": {"200": {"description": "The metrics", "content": {"text/plain": {}}},
                                       "429": _ERR, "500": _ERR}}},
    "/docs": {"get": {"summary": "This document in Swagger UI (served from the package, no CDN)",
                      "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}}}},
    "/docs/{name}": {"get": {"summary": "The Swagger UI page's script and style sheet",
                             "parameters": [_q("name", {"type": "string", "enum": ["swagger-ui-bundle.js",
                                                                                  "swagger-ui.css"]}, where="path")],
                             "responses": {"200": {"description": "The file", "content": {
                                 "application/javascript": {}, "text/css": {}}},
                                 "404": {"description": "No such file", "content": {"text/plain": {}}}}}},
    "/api/v1/process": {"post": _op(
        "Classify one spectrum (concurrent requests share batched forward passes; repeated requests are answered "
        "from a result cache)", _RESULT_CACHED,
        (400, 404, 408, 413, 422, 502, 503, 504),
        {"file": {**_FILE, "description": "the spectrum (required unless params.oscRef names a supernova)"},
         "params": {"type": "string", "description": _PARAMS_DOC},
         "model_id": {"type": "string", "description": "an uploaded model's id"}})},
    "/api/v1/batch-process": {"post": _op(
        "Classify many spectra: a zip_file or repeated files; results keyed by file name",
        _ok("{file name: Result or {error}}", {"type": "object", "additionalProperties": _RESULT}),
        (400, 404, 408, 413, 422, 503),
        {"zip_file": _FILE, "files": {"type": "array", "items": _FILE},
         "params": {"type": "string", "description": _PARAMS_DOC}, "model_id": _STR})},
    "/api/v1/batch-process-multiple": {"post": _op(
        "AstroDASH 2.0's name for batch-process with repeated files (the same endpoint)",
        _ok("{file name: Result or {error}}", {"type": "object", "additionalProperties": _RESULT}),
        (400, 404, 408, 413, 422, 503),
        {"zip_file": _FILE, "files": {"type": "array", "items": _FILE},
         "params": {"type": "string", "description": _PARAMS_DOC}, "model_id": _STR})},
    "/api/v1/estimate-redshift": {"post": _op(
        "Redshift by cross-correlation with the templates of a type/age (or the likely classes)",
        _ok("estimated_redshift, estimated_redshift_error, rlap, template, method (network or templates)"), (400, 404, 408, 413, 422, 503),
        {"file": _FILE, "sn_type": _STR, "age_bin": _STR}, ("file",))},
    "/api/v1/analysis-options": {"get": _cached(_op("Supernova types and their age bins with templates",
                                            _ok("sn_types, age_bins_by_type"), (503,)))},
    "/api/v1/template-spectrum": {"get": _cached(_op(
        "Mean template spectrum of a type and age bin", _ok("x, y"), (404, 422, 503),
        params=(_q("sn_type", _STR, doc="default Ia"), _q("age_bin", _STR, doc="default '2 to 6'"))))},
    "/api/v1/line-list": {"get": _cached(_op("Every line: {element: [rest wavelengths]}", _ok("Line list"), (422,),
                                             params=(_NAMES,)))},
    "/api/v1/line-list/elements": {"get": _cached(_op("Elements in the line list", _ok("elements"), (422,),
                                                      params=(_NAMES,)))},
    "/api/v1/line-list/element/{element}": {"get": _cached(_op(
        "Lines of one element, by our species name or AstroDASH 2.0's key", _ok("element, wavelengths, count, lines"),
        (404,), params=(_q("element", _STR, where="path"),)))},
    "/api/v1/line-list/filter": {"get": _cached(_op(
        "Lines in a wavelength range (observed frame when redshift is given)", _ok("elements, count"), (422,),
        params=(_q("min_wavelength", _NUM, True), _q("max_wavelength", _NUM, True),
                _q("redshift", {"type": "number", "exclusiveMinimum": -1},
                   doc="observed-frame redshift; omit it for rest wavelengths (an empty value is refused)"),
                _NAMES)))},
    "/api/v1/models": {"get": _cached(_op("Uploaded models", _PAGED, (422, 503), params=_PAGE))},
    "/api/v1/models/owner/{owner}": {"get": _cached(_op(
        "Uploaded models of one owner", _PAGED, (422, 503), params=(_q("owner", _STR, where="path"), *_PAGE)))},
    "/api/v1/models/{model_id}": {
        "get": _cached(_op("One uploaded model", _ok("Model", {"$ref": "#/components/schemas/ModelInfo"}),
                           (404, 405), params=(_MODEL_ID,))),
        "put": _op("Change name, description or owner", _ok("Updated"), (404, 405, 413, 422), params=(_MODEL_ID,),
                   body={"content": {"application/json": {"schema": {"type": "object", "properties": {
                       "name": _STR, "description": _STR, "owner": _STR}}}}}),
        "delete": _op("Delete an uploaded model", _ok("Deleted"), (404, 405), params=(_MODEL_ID,))},
    "/api/v1/upload-model": {"post": _op(
        "Upload a model: an astrodash model file (.npz; validated before it is unpacked, never unpickled), a "
        "PyTorch state dict of an astrodash architecture (.pth/.pt, train extra) or an ONNX model of any "
        "architecture (.onnx, onnx extra; run by onnxruntime, tried on test spectra at upload); an identical "
        "file already stored is not stored again (duplicate: true, its id)", _ok("Stored model"),
        (400, 408, 413, 422, 503),
        {"file": _FILE, "name": _STR, "description": _STR, "owner": _STR,
         "class_mapping": {"type": "string", "description": "optional JSON {label: index}, checked"},
         "input_shape": {"type": "string", "description": "optional JSON shape, batch dimension first (e.g. "
                                                          "[1, 1024]; [1, 1, 32, 32] for an ONNX graph taking "
                                                          "DASH's 32x32 image), checked"}}, ("file",))},
}

_UPLOAD_ID = _q("upload_id", _STR, where="path")
_UPLOAD_HEADERS = {"Upload-Offset": {"schema": {"type": "integer"}, "description": "bytes received so far"},
                   "Upload-Length": {"schema": {"type": "integer"}, "description": "the declared total_size"}}
_UPLOAD = {"$ref": "#/components/schemas/Upload"}
_UPLOAD_OK = {**_ok("The upload: offset (bytes received), complete, expires_at", _UPLOAD), "headers": _UPLOAD_HEADERS}
PATHS.update({
    "/api/v1/uploads": {"post": {
        "summary": "Start a resumable upload of an archive larger than one request may carry: reserve "
                   "total_size bytes; the answer's upload_id takes the chunks",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["total_size"], "additionalProperties": False, "properties": {
                "total_size": {"type": "integer", "minimum": 1, "description": "bytes of the whole file "
                               "(at most ASTRODASH_UPLOAD_MAX_BYTES)"},
                "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{64}$",
                           "description": "the whole file's SHA-256, checked when the last byte is in"},
                "filename": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^/\\\\\u0000]+$"}}}}}},
        "responses": {"201": {**_UPLOAD_OK, "description": "Created; Location is the upload's URL",
                              "headers": {**_UPLOAD_HEADERS, "Location": {"schema": _STR}}},
                      **{str(c): _ERR for c in (413, 415, 422, 429, 500, 503, 507)}}}},
    "/api/v1/uploads/{upload_id}": {
        "get": _op("The upload's state; Upload-Offset tells where to resume (HEAD gives the headers only)",
                   _UPLOAD_OK, (404, 503), params=(_UPLOAD_ID,)),
        "patch": {"summary": "Append one chunk: Content-Range: bytes START-END/TOTAL (END inclusive), START = the "
                             "offset received so far; kept whole or not at all",
                  "parameters": [_UPLOAD_ID, _q("Content-Range", {"type": "string"}, True, where="header",
                                                doc="bytes START-END/TOTAL")],
                  "requestBody": {"required": True, "content": {"application/offset+octet-stream": {"schema": _FILE},
                                                                "application/octet-stream": {"schema": _FILE}}},
                  "responses": {"200": _UPLOAD_OK,
                                **{str(c): _ERR for c in (400, 404, 408, 409, 413, 416, 422, 429, 500, 503)}}},
        "delete": _op("Abandon an upload: its bytes are deleted", _ok("Deleted"), (404, 503),
                      params=(_UPLOAD_ID,))},
})

_CHECK: dict[str, Any] = {"type": "object", "required": ["ok", "state"],
                          "properties": {"ok": {"type": "boolean"}, "state": _STR, "detail": _STR}}
COMPONENTS = {"schemas": {
    "Ready": {"type": "object", "required": ["ready", "checks", "problems"], "properties": {
        "ready": {"type": "boolean"}, "problems": {"type": "object", "additionalProperties": _STR},
        "checks": {"type": "object", "properties": {
            "models": {**_CHECK, "description": "state loading, loaded or failed"},
            "template_bank": {**_CHECK, "description": "state loading, loaded or missing"},
            "storage": {**_CHECK, "description": "state writable or unavailable"},
            "queue": {**_CHECK, "description": "state ok or over bound, with length and max",
                      "properties": {**_CHECK["properties"], "length": {"type": "integer"},
                                     "max": {"type": "integer"}}}}}}},
    "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {}, "field": _STR}},
    "Upload": {"type": "object", "required": ["upload_id", "total_size", "offset", "complete", "status"],
               "properties": {"upload_id": _STR, "filename": _STR, "total_size": {"type": "integer"},
                              "offset": {"type": "integer"}, "complete": {"type": "boolean"},
                              "status": {"type": "string", "enum": ["open", "complete", "submitted"]},
                              "sha256": _NSTR, "batch_id": _NSTR, "created_at": _STR, "expires_at": _STR,
                              "location": _STR}},
    "ModelInfo": {"type": "object", "required": ["id", "model_id", "name", "owner"], "properties": {
        "id": _STR, "model_id": _STR, "name": _STR, "owner": _STR, "description": _STR, "model_filename": _STR,
        "created_at": _STR, "updated_at": _STR, "size": {"type": "integer"}, "sha256": _STR, "variant": _NSTR,
        "class_mapping": {"type": "object", "additionalProperties": {"type": "integer"}},
        "input_shape": {"type": ["array", "null"], "items": {"type": "integer"}},
        "output_shape": {"type": "array", "items": {"type": "integer"}}, "meta": {"type": "object"}}},
    "Match": {"type": "object", "properties": {"type": _STR, "age": _STR, "probability": _NNUM, "redshift": _NNUM,
                                               "rlap": _NNUM}},
    "Result": {"type": "object", "properties": {
        "name": _STR, "redshift": _NNUM, "redshift_source": _NSTR, "redshift_error": _NNUM, "model": _NSTR,
        "error": {"type": "string", "description": "why this file could not be classified (batches only)"},
        "file": {"type": "string", "description": "the uploaded file's name, or osc:NAME for a catalogue spectrum"},
        "index": {"type": "integer", "description": "with oscRef: which of the object's spectra"},
        "observation": {"type": "object", "description": "with oscRef: the spectrum's time (MJD) and instrument"},
        "redshift_alternatives": {"type": "array", "description": "estimated redshifts only: other peaks of the "
                                  "redshift posterior, each weight the peak's share of the posterior; the class "
                                  "probabilities are averaged over them and the estimate",
                                  "items": {"type": "object", "properties": {"redshift": _NUM, "weight": _NUM}}},
        "redshift_mass": {"type": ["number", "null"], "description": "with redshift_alternatives: the estimate's own peak's "
                          "share of the redshift posterior (it and the weights sum to at most 1)"},
        "warnings": {"type": "array", "items": _STR, "description": "present when reading changed the file's "
                     "data: invalid rows dropped (e.g. \"dropped 6 of 1,024 rows: negative or zero wavelength\"), "
                     "unusable error values ignored"},
        "model_type": _STR, "model_id": _NSTR,
        "spectrum": {"type": "object", "properties": {"x": {"type": "array", "items": _NUM},
                                                      "y": {"type": "array", "items": _NUM}, "redshift": _NNUM}},
        "classification": {"type": "object", "properties": {
            "best_matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
            "best_match": {"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/components/schemas/Match"}],
                                                         "properties": {"broad_type": _STR,
                                                                        "reliable": {"type": "boolean"},
                                                                        "rlap_warning": _NBOOL}}]},
            "reliable_matches": {"type": "boolean"}}}}},
    **JOB_SCHEMAS,
}}
PATHS.update(JOB_PATHS)


#: operations that need an API key with the admin scope when keys are required
ADMIN_OPERATIONS = (("/api/v1/upload-model", "post"), ("/api/v1/models/{model_id}", "put"),
                    ("/api/v1/models/{model_id}", "delete"), ("/api/batch-processor/configure", "post"),
                    ("/metrics", "get"))
_KEYS_DOC = ("With ASTRODASH_REQUIRE_API_KEY every /api/ request (and WebSocket) needs X-API-Key: 401 without a "
             "valid key (the same answer for a wrong and an unknown key), 403 for a key without the admin scope on model "
             "upload, change and delete, /api/batch-processor/configure (POST) and /metrics. Off by default.")


def _with_keys(paths: dict) -> dict:
    """401 on every /api/ operation and 403 on the admin ones (the API-key responses)."""
    out: dict[str, dict] = {}
    for path, ops in paths.items():
        out[path] = {}
        for method, op in ops.items():
            if path.startswith("/api/") or path == "/metrics":
                extra = {"401": {**_ERR, "description": "No valid API key (only when keys are required)",
                                 "headers": {"WWW-Authenticate": {"schema": _STR}}}}
                if (path, method) in ADMIN_OPERATIONS:
                    extra["403"] = {**_ERR, "description": "The API key lacks the admin scope"}
                op = {**op, "responses": {**op["responses"], **extra}}
            else:
                op = {**op, "security": [{}]}  # the probes and this description need no key
            out[path][method] = op
    return out


def document(root_path: str = "") -> dict:
    from .health import _version

    return {"openapi": "3.1.0",
            "info": {"title": "astrodash", "version": _version(),
                     "description": "Supernova spectrum classification; AstroDASH 2.0 compatible. Every response "
                                    "carries X-Request-ID and X-RateLimit-Limit/Remaining/Reset; send "
                                    "Accept: application/msgpack for msgpack. " + _KEYS_DOC},
            "servers": [{"url": root_path or "/"}], "paths": _with_keys(PATHS),
            "components": {**COMPONENTS, "securitySchemes": {"ApiKey": {
                "type": "apiKey", "in": "header", "name": "X-API-Key", "description": _KEYS_DOC}}},
            "security": [{"ApiKey": []}, {}]}


async def openapi(request: Request):
    return respond(request, document(request.scope.get("root_path", "")))
