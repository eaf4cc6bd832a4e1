"""``POST /api/v1/batch-process``: a ``zip_file`` or repeated ``files``; results keyed by file name."""
from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request

from astrodash_core.errors import AstrodashError, ModelFileError

from .common import app_state, check_model, form_of, payload, read_upload, unavailable, unique_names
from .errors import invalid
from .negotiation import respond_large
from .params import parse_params
from .zips import ZipLimits, extract

CHUNK = 256


def classify_entries(state, entries, opts) -> dict:
    """{name: result payload or {"error"}} for [(name, bytes | None, error | None)], in order."""
    results: dict = {}
    names = unique_names([name for name, _, _ in entries])
    specs, spec_names = [], []
    for key, (name, data, error) in zip(names, entries):
        if error is not None:
            results[key] = {"error": error}
            continue
        try:
            specs.append(read_upload(data, name, opts.known_z))
        except AstrodashError as exc:
            results[key] = {"error": str(exc)}
            continue
        spec_names.append(key)
        results[key] = None  # filled below; keeps the input order
    if specs:
        clf = state.classifier_for(opts.model_id)
        stream = clf.iter_classify(specs, opts.redshift, top_n=state.settings.top_n, smoothing=opts.smoothing,
                                   min_wave=opts.min_wave, max_wave=opts.max_wave, include_spectrum=True,
                                   rlap=opts.rlap, chunk_size=CHUNK)
        for name, r in zip(spec_names, stream):
            results[name] = {"error": r.error} if r.error else payload(r, opts.model_type, opts.model_id)
    return results


async def batch_process(request: Request):
    state = await app_state(request)
    form = await form_of(request, state)
    model_id = (form.get("model_id") or "").strip() or None
    opts = parse_params(form.get("params"), model_id, state.settings.json_max_bytes, state.settings.json_max_depth)
    zips, files = form.files_named("zip_file"), form.files_named("files")
    if zips and files:
        raise invalid("zip_file", "send either zip_file or files, not both")
    if not zips and not files:
        raise invalid("files", "send a zip_file or one or more files")
    if len(zips) > 1:
        raise invalid("zip_file", "send one zip archive per request")
    await check_model(state, opts.model_id)
    if zips:
        s = state.settings
        limits = ZipLimits(s.zip_max_entries, s.zip_max_total_bytes, s.zip_max_ratio, s.max_file_bytes)
        entries = await anyio.to_thread.run_sync(extract, zips[0].data, zips[0].filename, limits)
    else:
        entries = [(f.filename, f.data, None) for f in files]
    try:
        results = await anyio.to_thread.run_sync(classify_entries, state, entries, opts)
    except ModelFileError as exc:
        raise unavailable(exc) from None
    request.state.spectra = len(entries)
    return await respond_large(request, results)
