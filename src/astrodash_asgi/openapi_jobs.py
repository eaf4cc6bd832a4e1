"""The batch-processor part of the OpenAPI document (``/api/batch-processor/*``)."""
from __future__ import annotations

from astrodash_core.hookspecs import BATCH_STATUSES

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
_STATUS = {"type": "string", "enum": list(BATCH_STATUSES)}
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
                "upload_id": {"type": "string", "description": "a complete resumable upload (/api/v1/uploads) "
                              "holding the zip, in place of zip_file"},
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

_WEIGHT = {"type": "number", "minimum": 0, "maximum": 1000}
_CONFIG_FIELDS = {
    "max_batch_size": {"type": "integer", "minimum": 1, "maximum": 1024,
                       "description": "spectra per forward pass (micro-batch)"},
    "max_wait_time_ms": {"type": "number", "minimum": 0, "maximum": 1000,
                         "description": "how long a forward pass waits for more spectra"},
    "enable_dynamic_batching": {"type": "boolean", "description": "false: every spectrum runs alone"},
    "priority_weights": {"type": "object", "additionalProperties": False, "description": "the scheduler's "
                         "weights (a batch's score is its weight plus its wait over ASTRODASH_JOB_AGEING_S)",
                         "properties": {p: _WEIGHT for p in ("critical", "high", "normal", "low")}}}
_SPAN = {"type": "string", "pattern": "^[1-9][0-9]{0,3}[mhd]$"}
_CONFIG_OK = _json("The configuration, its source (settings or configured), when it was stored and what the "
                   "answering worker process runs with now", "BatchConfig")
_CONFIG_OK["headers"] = {"Cache-Control": {"schema": _STR}}

PATHS.update({
    "/api/batch-processor/metrics": {"get": {
        "summary": "The batch processor's numbers: queue, throughput and latency of the last minute, totals over "
                   "the batches kept, the answering worker's CPU and memory",
        "responses": {"200": _json("Metrics", "BatchMetrics"), **_errors(503)}}},
    "/api/batch-processor/analytics": {"get": {
        "summary": "Time series of finished batch-job items over a period, bucketed (default interval: the "
                   "shortest of 1m, 5m, 15m, 1h, 6h, 1d giving at most 200 points)",
        "parameters": [
            {"name": "period", "in": "query", "required": False, "schema": _SPAN,
             "description": "how far back: 15m, 1h (default), 24h, 7d; at most 30d"},
            {"name": "interval", "in": "query", "required": False, "schema": _SPAN,
             "description": "bucket length, at most the period and at most 1440 buckets"},
            {"name": "metrics", "in": "query", "required": False, "schema": _STR,
             "description": "comma-separated: throughput, latency (default both), processing_time, error_rate, "
                            "completed, failed"}],
        "responses": {"200": _json("Series", "BatchAnalytics"), **_errors(422, 503)}}},
    "/api/batch-processor/configure": {
        "get": {"summary": "The micro-batching and scheduling configuration every worker applies",
                "responses": {"200": _CONFIG_OK, **_errors(503)}},
        "post": {"summary": "Change the configuration (admin scope with API keys): the fields given are checked "
                            "(422 naming the first bad one), stored, and applied by every worker within a second",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "additionalProperties": False, "properties": _CONFIG_FIELDS}}}},
                 "responses": {"200": _CONFIG_OK, **_errors(400, 413, 415, 422, 503)}}},
})

_POINTS = {"type": "array", "items": {"type": "object", "required": ["timestamp", "value"], "properties": {
    "timestamp": _STR, "value": {"type": ["number", "null"]}}}}

SCHEMAS = {
    "BatchConfig": {"type": "object", "required": [*_CONFIG_FIELDS, "source", "updated_at", "worker"],
                    "properties": {**_CONFIG_FIELDS, "source": {"type": "string", "enum": ["settings", "configured"]},
                                   "updated_at": _NSTR, "worker": {"type": "object", "properties": {
                                       "pid": _INT, "max_batch_size": _INT, "max_wait_time_ms": _NUM,
                                       "priority_weights": {"type": "object"}}}}},
    "BatchMetrics": {"type": "object", "required": ["current_stats", "performance_stats", "resource_usage"],
                     "properties": {
        "current_stats": {"type": "object", "required": ["active_batches", "queue_length", "average_batch_size",
                                                         "throughput_per_second", "average_latency_ms"],
                          "properties": {"active_batches": _INT, "queue_length": _INT, "average_batch_size": _NUM,
                                         "throughput_per_second": _NUM, "average_latency_ms": _NUM}},
        "performance_stats": {"type": "object", "required": ["total_processed", "success_rate", "error_rate",
                                                             "average_processing_time_ms"],
                              "properties": {"total_processed": _INT, "success_rate": _NUM, "error_rate": _NUM,
                                             "average_processing_time_ms": _NUM}},
        "resource_usage": {"type": "object", "required": ["cpu_usage_percent", "memory_usage_mb"],
                           "properties": {"cpu_usage_percent": _NUM, "memory_usage_mb": _NUM, "pid": _INT}},
        "window_s": _NUM, "timestamp": _STR}},
    "BatchAnalytics": {"type": "object", "required": ["period", "interval_s", "start", "end", "metrics", "series"],
                       "properties": {"period": _STR, "interval_s": _INT, "start": _STR, "end": _STR,
                                      "metrics": {"type": "array", "items": _STR},
                                      "series": {"type": "object", "additionalProperties": _POINTS}}},
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
