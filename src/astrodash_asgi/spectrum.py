"""``POST /api/v1/process`` (one spectrum, micro-batched) and ``POST /api/v1/estimate-redshift``."""
from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from astrodash_core.errors import ModelFileError

from . import result_cache
from .classification import JSON_BODY, MSGPACK_BODY, PAYLOAD, Failure, Upload, estimate
from .common import app_state, check_model, form_of, unavailable
from .errors import bad_file, invalid, not_found
from .negotiation import JSON, MSGPACK, respond, wants_msgpack
from .params import parse_params


async def process(request: Request):
    state = await app_state(request)
    with state.admit("process"):
        return await _process(request, state)


async def _process(request: Request, state):
    form = await form_of(request, state)
    model_id = (form.get("model_id") or "").strip() or None
    opts = parse_params(form.get("params"), model_id, state.settings.json_max_bytes, state.settings.json_max_depth)
    if opts.osc_ref and form.files_named("file"):
        raise invalid("oscRef", "send either a spectrum file or oscRef (a supernova name), not both")
    if opts.osc_ref:
        spec, source = await catalogue_spectrum(opts.osc_ref, opts.spectrum_index, opts.known_z)
        await check_model(state, opts.model_id, opts.model_type)
        item = (spec, opts.redshift, PAYLOAD)  # the answer gains the catalogue's fields below
    else:
        upload = form.required_file("file", "a spectrum file is required (or params.oscRef, a supernova name)")
        cache_key, hit = await result_cache.lookup(request, state, upload.data, upload.filename, opts)
        if hit is not None:
            return hit
        await check_model(state, opts.model_id, opts.model_type)
        use_msgpack = wants_msgpack(request.headers.get("accept", ""))
        # read, classified and encoded where classification runs (a worker process, unless configured otherwise)
        item = (Upload(bytes(upload.data), upload.filename, opts.known_z), opts.redshift,
                MSGPACK_BODY if use_msgpack else JSON_BODY)
        source = upload.filename
    try:
        outcome = await state.batcher.submit(opts.batch_key, item)
    except ModelFileError as exc:
        raise unavailable(exc) from None
    if isinstance(outcome, Failure):  # unreadable (400 naming the file), or not classifiable (400 too)
        raise bad_file(source, outcome.message)
    request.state.spectra = 1
    if opts.osc_ref:
        outcome["file"], outcome["index"] = source, opts.spectrum_index
        outcome["observation"] = {k: spec.meta.get(k) for k in ("time", "instrument") if spec.meta.get(k)}
        return respond(request, outcome)  # a catalogue's spectra can change: not cached
    response = Response(outcome, media_type=MSGPACK if use_msgpack else JSON, headers={"vary": "Accept"})
    return result_cache.remember(state, cache_key, response, opts.model_id)


def _catalogue_spectrum(name, index, known_z):
    from astrodash_core.catalogue import catalogue_spectrum as from_catalogue

    spec = from_catalogue(name, index)
    if not known_z:
        spec.redshift = None
    return spec, spec.meta.get("source", name)


async def catalogue_spectrum(name, index, known_z):
    """(spectrum, source label) of a supernova's ``index``-th catalogue spectrum; catalogue failures keep their
    status (404 unknown, 422 not a name or an index beyond its spectra, 429 the catalogue's rate limit, with
    Retry-After, 502 down or junk, 503 none configured, 504 too slow)."""
    from astrodash_core.catalogue import CatalogueError

    from .errors import ApiError

    try:
        return await anyio.to_thread.run_sync(_catalogue_spectrum, name, index, known_z)
    except CatalogueError as exc:
        headers = {"retry-after": str(int(exc.retry_after))} if exc.retry_after is not None else None
        raise ApiError(exc.status, str(exc), headers=headers, field=exc.field or "oscRef") from None


async def estimate_redshift(request: Request):
    state = await app_state(request)
    form = await form_of(request, state)
    upload = form.required_file("file", "File upload is required for redshift estimation.")
    sn_type = (form.get("sn_type") or "").strip() or None
    age_bin = (form.get("age_bin") or "").strip() or None
    if age_bin is not None:
        from astrodash_core.labels import age_bin_index

        try:
            age_bin_index(age_bin)
        except ValueError as exc:
            raise invalid("age_bin", str(exc)) from None
    try:
        d = await anyio.to_thread.run_sync(state.classify, estimate, bytes(upload.data), upload.filename, sn_type,
                                           age_bin)
    except KeyError:
        raise not_found(f"Template not found for SN type {sn_type!r} and age bin {age_bin!r}.") from None
    except (FileNotFoundError, ModelFileError) as exc:
        raise unavailable(exc) from None
    except ValueError as exc:  # unreadable file, too little coverage, no usable templates
        raise bad_file(upload.filename, str(exc)) from None
    request.state.spectra = 1
    return respond(request, {"estimated_redshift": d["redshift"], "estimated_redshift_error": d["redshift_error"],
                             **d, "sn_type": sn_type, "age_bin": age_bin})
