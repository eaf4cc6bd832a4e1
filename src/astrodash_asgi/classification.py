"""The classification work of the HTTP API: read uploads, classify them, build and encode the answers.

Each function takes a :class:`~astrodash_asgi.classifiers.Classifiers` first and plain, picklable arguments after
it, and returns plain values, so the same function runs in a worker thread of the server process or in a
classification worker process (:mod:`astrodash_asgi.workers`), whichever the server is configured with; the
answers are the same bytes either way.
"""
from __future__ import annotations

from typing import NamedTuple, cast

import msgpack

from astrodash_core.errors import AstrodashError

from .common import as_uploaded, payload, read_upload, unique_names
from .negotiation import dumps_json, encode
from .workers import limited_threads
from .zips import inflated

#: what :func:`classify_items` returns for an item: the Classification itself, its answer as a dict, or that
#: answer encoded as JSON or msgpack bytes
RESULT, PAYLOAD, JSON_BODY, MSGPACK_BODY = "result", "payload", "json", "msgpack"


class Upload(NamedTuple):
    """An uploaded file still to be read (in whichever process classifies it)."""

    data: bytes
    filename: str
    known_z: bool


class Failure(NamedTuple):
    """An item that could not be read (``stage`` "read") or classified ("classify"), and why."""

    stage: str
    message: str


def classify_items(classifiers, key: tuple, items: list, top_n: int) -> tuple[list, int]:
    """One classification pass over ``items`` sharing ``key`` (``Options.batch_key``): each item is
    ``(source, redshift)`` or ``(source, redshift, form)``, the source a Spectrum or an :class:`Upload`, the form
    one of :data:`RESULT` (the default), :data:`PAYLOAD`, :data:`JSON_BODY`, :data:`MSGPACK_BODY`.  Returns the
    outcomes in order (a :class:`Failure` for an upload that cannot be read and, unless the form is RESULT, for
    a spectrum that cannot be classified) and the number classified."""
    model_type, model_id, smoothing, min_wave, max_wave, rlap = key
    outcomes: list = [None] * len(items)
    todo, specs, zs = [], [], []
    for k, item in enumerate(items):
        source, z = item[0], item[1]
        if isinstance(source, Upload):
            try:
                source = read_upload(source.data, source.filename, source.known_z)
            except AstrodashError as exc:
                outcomes[k] = Failure("read", str(exc))
                continue
        todo.append(k)
        specs.append(source)
        zs.append(z)
    classified = 0
    if specs:
        clf = classifiers.get(model_id, model_type)
        results = clf.classify(specs, zs, top_n=top_n, smoothing=smoothing, min_wave=min_wave, max_wave=max_wave,
                               include_spectrum=True, rlap=rlap)
        for k, r in zip(todo, results):
            classified += not r.error
            form = items[k][2] if len(items[k]) > 2 else RESULT
            if form == RESULT:
                outcomes[k] = r
            elif r.error:
                outcomes[k] = Failure("classify", r.error)
            elif form == PAYLOAD:
                outcomes[k] = payload(r, model_type, model_id)
            else:
                answer = payload(r, model_type, model_id, arrays=form == JSON_BODY)
                outcomes[k] = encode(answer, form == MSGPACK_BODY)[0]
    return outcomes, classified


def classify_entries(classifiers, entries: list, opts, top_n: int, chunk: int, names=None,
                     arrays: bool = False) -> tuple[dict, int]:
    """({name: answer or {"error"}} in input order, number classified) for ``entries`` of a batch:
    [(name, bytes | Member | None, error | None)] (a zip member is inflated here), classified ``chunk`` at a
    time; ``arrays``: the answers' spectra as arrays (:func:`~astrodash_asgi.common.payload`), for JSON."""
    from astrodash_core.reader_batch import read_many

    results: dict = {}
    entries = inflated(entries)
    names = names or unique_names([name for name, _, _ in entries])
    # the files read together, on two threads (read_many), instead of one after the other
    read = iter(read_many([(bytes(cast(bytes, data)), name) for name, data, error in entries if error is None],
                          on_error="collect"))
    specs, spec_names = [], []
    for key, (name, data, error) in zip(names, entries):
        if error is not None:
            results[key] = {"error": error}
            continue
        spectra = next(read)
        if isinstance(spectra, AstrodashError):
            results[key] = {"error": str(spectra)}
            continue
        specs.append(as_uploaded(spectra[0], opts.known_z))  # the file's first spectrum, as read_upload reads
        spec_names.append(key)
        results[key] = None  # filled below; keeps the input order
    classified = 0
    if specs:
        clf = classifiers.get(opts.model_id, opts.model_type)
        stream = clf.iter_classify(specs, opts.redshift, top_n=top_n, smoothing=opts.smoothing,
                                   min_wave=opts.min_wave, max_wave=opts.max_wave, include_spectrum=True,
                                   rlap=opts.rlap, chunk_size=chunk)
        for name, r in zip(spec_names, stream):
            results[name] = {"error": r.error} if r.error else payload(r, opts.model_type, opts.model_id,
                                                                         arrays=arrays)
            classified += not r.error
    return results, classified


def encode_pairs(results: dict, first: bool, use_msgpack: bool) -> bytes:
    """``name: answer`` pairs as a part of one JSON object (comma-led unless ``first``) or msgpack map."""
    if use_msgpack:
        packer = msgpack.Packer(use_bin_type=True)
        return b"".join(packer.pack(k) + packer.pack(v) for k, v in results.items())
    text = b",".join(dumps_json(k) + b":" + dumps_json(v) for k, v in results.items())
    return text if first or not text else b"," + text


def encode_entries(classifiers, entries: list, names: list, opts, top_n: int, chunk: int, first: bool,
                   use_msgpack: bool, threads: int | None = None) -> tuple[bytes, int]:
    """A batch's part: :func:`classify_entries` encoded by :func:`encode_pairs`, and the number classified;
    ``threads``: at most that many threads for it in a worker process (:func:`~.workers.limited_threads`)."""
    with limited_threads(threads):
        results, classified = classify_entries(classifiers, entries, opts, top_n, chunk, names,
                                               arrays=not use_msgpack)
    return encode_pairs(results, first, use_msgpack), classified


def estimate(classifiers, data: bytes, filename: str, sn_type: str | None, age_bin: str | None) -> dict:
    """``/estimate-redshift``'s estimate for an uploaded file (``Estimate.to_dict()``): KeyError for a type and age
    with no templates, FileNotFoundError without a template bank, ValueError for a file that cannot be used."""
    from astrodash_core import estimate_redshift

    bank = classifiers.default.bank()
    if bank is None:
        raise FileNotFoundError("no template bank is installed")
    return estimate_redshift((bytes(data), filename), sn_type=sn_type, age_bin=age_bin, bank=bank,
                             classifier=classifiers.default).to_dict()
