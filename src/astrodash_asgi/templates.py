"""``GET /api/v1/analysis-options`` and ``GET /api/v1/template-spectrum`` from the template bank."""
from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request

from .common import app_state, unavailable
from .errors import invalid, not_found
from .http_cache import respond_cached


def _bank(state):
    bank = state.classifier.bank()
    if bank is None:
        raise unavailable("no template bank is installed")
    return bank


async def _options(state) -> dict:
    """The bank's {subtype: age bins with templates}, computed once per app."""
    if state.analysis_options is None:
        from astrodash_core.templates import analysis_options as options

        state.analysis_options = await anyio.to_thread.run_sync(options, _bank(state))
    return state.analysis_options


async def analysis_options(request: Request):
    by_type = await _options(await app_state(request))
    return respond_cached(request, {"sn_types": list(by_type), "age_bins_by_type": by_type})


def _template(bank, sn_type, age_bin):
    from astrodash_core.templates import template_spectrum

    return template_spectrum(sn_type, age_bin, bank=bank)


async def template_spectrum(request: Request):
    state = await app_state(request)
    sn_type = request.query_params.get("sn_type", "Ia").strip()
    age_bin = request.query_params.get("age_bin", "2 to 6").strip()
    from astrodash_core.labels import age_bin_index

    try:
        age_bin_index(age_bin)
    except ValueError as exc:
        raise invalid("age_bin", str(exc)) from None
    from astrodash_core.templates import nearest_template_age

    bank = _bank(state)
    try:
        found = nearest_template_age(sn_type, age_bin, bank, await _options(state))
    except KeyError as exc:
        raise not_found(f"Template not found for SN type {sn_type!r}: {exc.args[0]}") from None
    wave, flux = await anyio.to_thread.run_sync(_template, bank, sn_type, found)
    body = {"x": [float(v) for v in wave], "y": [float(v) for v in flux], "sn_type": sn_type, "age_bin": found}
    if age_bin_index(found) != age_bin_index(age_bin):
        body["requested_age_bin"] = age_bin  # none at the age asked for: the nearest age bin with templates
    return respond_cached(request, body)
