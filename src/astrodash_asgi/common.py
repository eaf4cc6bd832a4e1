"""Helpers shared by the resource modules: the app state, uploads read as spectra, result payloads."""
from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.requests import Request

from astrodash_core.errors import AstrodashError, ModelFileError

from .errors import ApiError, bad_file, not_found
from .forms import Form, read_form

if TYPE_CHECKING:  # pragma: no cover
    from .state import AppState


async def app_state(request: Request) -> AppState:
    """The app's state, models loaded (normally by the lifespan; here when mounted without one)."""
    state: AppState = request.app.state.astrodash
    await state.startup()
    return state


async def form_of(request: Request, state: AppState) -> Form:
    s = state.settings
    return await read_form(request, s.max_file_bytes, s.max_field_bytes, s.max_files, s.max_form_fields,
                           s.max_form_fields_bytes)


def read_upload(data: bytes, filename: str, known_z: bool):
    """The spectrum in an uploaded file (see :func:`as_uploaded`)."""
    from astrodash_core.reading import read_spectrum

    return as_uploaded(read_spectrum(bytes(data), filename=filename), known_z)


def as_uploaded(spec, known_z: bool):
    """An uploaded file's spectrum as the API classifies it: without a known redshift any redshift in the file is
    dropped, so ``knownZ: false`` always means "estimate it"."""
    if not known_z:
        spec.redshift = None
    return spec


async def check_model(state: AppState, model_id: str | None, model_type: str = "dash") -> None:
    """404 for an unknown uploaded model, 503 naming the transformer when ``model_type`` asks for it and it is not
    installed (and load it now, so the batch does not)."""
    if not model_id and model_type == "transformer":
        try:
            await anyio.to_thread.run_sync(state.classifier_for, None, model_type)
        except ModelFileError as exc:
            raise unavailable(f"modelType 'transformer': {exc}") from None
        return
    if not model_id:
        return
    try:
        await anyio.to_thread.run_sync(state.classifier_for, model_id)
    except KeyError:
        raise not_found(f"Model with ID '{model_id}' not found.") from None
    except ModelFileError as exc:
        raise ApiError(500, f"stored model '{model_id}' cannot be used: {exc}") from None


def unavailable(exc: Exception | str) -> ApiError:
    """503 when a model or the template bank is not installed on this server."""
    return ApiError(503, f"service not ready: {exc}")


#: rlap in HTTP answers is rounded as AstroDASH 2.0 rounds it (the library keeps full precision).
RLAP_DECIMALS = 2


#: AstroDASH 2.0's transformer answers: its top matches, and the probability above which a match is reliable.
TRANSFORMER_MATCHES = 3
TRANSFORMER_RELIABLE = 0.5


def transformer_classification(result) -> dict:
    """AstroDASH 2.0's ``classification`` for its transformer: the top three classes, each ``{type, probability,
    redshift, rlap: null, reliable: probability > 0.5}``, the first as ``best_match``, and its ``reliable`` as
    ``reliable_matches`` (no ages, no rlap)."""
    matches = [{"type": m.type, "probability": float(m.probability),
                "redshift": None if result.redshift is None else float(result.redshift), "rlap": None,
                "reliable": bool(m.probability > TRANSFORMER_RELIABLE)} for m in result.matches[:TRANSFORMER_MATCHES]]
    best = matches[0] if matches else None
    return {"best_matches": matches, "best_match": best, "reliable_matches": bool(best and best["reliable"])}


def payload(result, model_type: str, model_id: str | None, include_spectrum: bool = True,
            arrays: bool = False) -> dict:
    """AstroDASH 2.0's result shape (``spectrum``, ``classification``, ``model_type``) plus astrodash's keys; for
    ``model_type`` "transformer" the classification in AstroDASH 2.0's transformer shape.  ``arrays``: the
    spectrum's values as arrays, for :func:`~astrodash_asgi.negotiation.dumps_json` only (the same JSON)."""
    d = result.to_dict(include_spectrum=include_spectrum, spectrum_arrays=arrays)
    best = getattr(result, "best_match", None)
    if model_type == "transformer" and best is not None and best.age is None:  # the transformer's own answer
        d["classification"] = transformer_classification(result)
    classification = d.get("classification") or {}
    for match in [classification.get("best_match"), *classification.get("best_matches", ())]:
        if match and match.get("rlap") is not None:
            match["rlap"] = round(match["rlap"], RLAP_DECIMALS)
    d["model_type"] = model_type
    d["model_id"] = model_id
    return d


def unique_names(names: list[str]) -> list[str]:
    """Names made unique in order: a second "a.dat" becomes "a.dat (2)"."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 1
        while candidate in seen:
            k += 1
            candidate = f"{name} ({k})"
        seen.add(candidate)
        out.append(candidate)
    return out
