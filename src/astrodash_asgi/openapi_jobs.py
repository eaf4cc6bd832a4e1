"""The batch-processor part of the OpenAPI document (``/api/batch-processor/*``)."""
from __future__ import annotations

_ERR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_NNUM = {"type": ["number", "null"]}
_ID = {"name": "batch_id", "in": "path", "required": True, "schema": _STR}
_LIMIT = {"name": "limit", "in": "query", "required": False, "description": "per page (default 100)",
          "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
_CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": _STR,
           "description": "the cursor of the previous page (opaque)"}
_STATUS = {"type": "string", "enum": ["queued", "processing", "completed", "failed", "cancelled"]}
_PRIORITY = {"type": "string", "enum": ["critical", "high", "normal", "low"]}
_PARAMS = {"type": "object", "description": "as /process's params (smoothing, knownZ, zValue, minWave, maxWave, "
           "calculateRlap, modelType, model_id), plus includeSpectrum (bool, default false: results carry the "
           "preprocessed spectrum only when asked)"}
_ITEM_INPUT = {"description": "{wave, flux, error?, redshift?, name?} or rows [[wave, flux(, error)], ...]; an "
               "input that is not a readable spectrum is that item's error, not the request's"}


def _json(description: str, ref: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{ref}"}}, "application/msgpack": {}}}


def _errors(*codes) -> dict:
    return {str(c): _ERR for c in (429, 500, *codes)}


PATHS = {
    "/api/batch-processor/submit": {"post": {
        "summary": "Queue a batch (JSON arrays, or multipart files and/or a zip_file); 202 once it is stored. "
                   "Idempotency-Key (or X-Idempotency-Key): the same key and body return the first batch",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "required": ["data"], "properties": {
                "data": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["input"],
                                                                   "properties": {"input": _ITEM_INPUT,
                                                                                  "request_id": _NSTR,
                                                                                  "name": _NSTR}}},
                "priority": {"anyOf": [_PRIORITY, {"type": "null"}]}, "batch_id": _NSTR,
                "timeout_ms": {"type": ["integer", "null"], "minimum": 1, "maximum": 3600000},
                "metadata": {"type": ["object", "null"]}, "params": {**_PARAMS, "type": ["object", "null"]}}}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "zip_file": {"type": "string", "format": "binary"},
                "params": {"type": "string", "description": "JSON: " + _PARAMS["description"]},
                "priority": _PRIORITY, "batch_id": _STR, "timeout_ms": _STR, "metadata": _STR,
                "model_id": _STR}}}}},
        "responses": {"202": {**_json("Queued; Location gives the status URL", "BatchSubmitted"),
                              "headers": {"Location": {"schema": _STR}}},
                      **_errors(400, 404, 408, 409, 413, 415, 422, 503)}}},
    "/api/batch-processor/status/{batch_id}": {"get": {
        "summary": "A batch's status and progress", "parameters": [_ID],
        "responses": {"200": _json("Status", "BatchStatus"), **_errors(404, 503)}}},
    "/api/batch-processor/results/{batch_id}": {"get": {
        "summary": "Results so far, one page (cursor or offset); Accept: application/x-ndjson, text/csv or "
                   "application/msgpack streams every result instead",
        "parameters": [_ID, _LIMIT, _CURSOR, {"name": "offset", "in": "query", "required": False,
                                              "schema": {"type": "integer", "minimum": 0, "maximum": 2 ** 62}}],
        "responses": {"200": {"description": "A page of results, or the stream", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchResults"}},
            "application/x-ndjson": {}, "text/csv": {}, "application/msgpack": {}}}, **_errors(404, 422, 503)}}},
    "/api/batch-processor/batches": {"get": {
        "summary": "Batches, newest first",
        "parameters": [{"name": "status", "in": "query", "required": False, "schema": _STR,
                        "description": "comma-separated: active, queued, processing, completed, failed, cancelled"},
                       _LIMIT, _CURSOR],
        "responses": {"200": {"description": "One page of batches", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"batches": {"type": "array", "items": {
                "$ref": "#/components/schemas/BatchStatus"}}, "cursor": _NSTR, "has_more": {"type": "boolean"}}}},
            "application/msgpack": {}}}, **_errors(422, 503)}}},
    "/api/batch-processor/cancel/{batch_id}": {"delete": {
        "summary": "Cancel a batch: queued items never run, results so far are kept", "parameters": [_ID],
        "responses": {"200": _json("Status after cancelling", "BatchStatus"), **_errors(404, 409, 503)}}},
}

SCHEMAS = {
    "BatchSubmitted": {"type": "object", "required": ["batch_id", "status", "request_count"], "properties": {
        "batch_id": _STR, "status": _STATUS, "estimated_completion_time": _NSTR, "queue_position": _INT,
        "request_count": _INT}},
    "BatchStatus": {"type": "object", "required": ["batch_id", "status", "progress", "completed_requests",
                                                   "failed_requests", "total_requests"], "properties": {
        "batch_id": _STR, "status": _STATUS, "progress": {"type": "number", "description": "percent finished"},
        "completed_requests": _INT, "failed_requests": _INT, "total_requests": _INT,
        "estimated_completion_time": _NSTR, "processing_time_ms": _NUM, "queue_position": _INT,
        "priority": _PRIORITY, "created_at": _STR, "started_at": _NSTR, "finished_at": _NSTR,
        "metadata": {"type": "object"}, "error": _STR, "total_time_ms": _NUM}},
    "BatchResults": {"type": "object", "required": ["batch_id", "status", "results", "has_more"], "properties": {
        "batch_id": _STR, "status": _STATUS, "cursor": _NSTR, "has_more": {"type": "boolean"},
        "total_count": _INT,
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "request_id": _STR, "name": _STR,
            "output": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/Result"}]},
            "confidence": _NNUM, "error": _STR, "processing_time_ms": _NNUM}}},
        "metadata": {"type": "object", "properties": {"total_processing_time_ms": _NUM,
                                                      "average_per_request_ms": _NNUM, "batch_size": _INT}}}},
}
