"""The shipped models, registered as a plugin exactly as a third-party model package would be."""
from __future__ import annotations

from pathlib import Path

from astrodash_core.hookspecs import hookimpl

DATA = Path(__file__).resolve().parents[2] / "astrodash_core" / "data"

#: registry name -> (file in astrodash_core/data, variant it is the default for)
SHIPPED = {
    "dash1d-known-z": ("model_known_z.npz", "known-z"),
    "dash1d-agnostic": ("model_agnostic.npz", "agnostic"),
    "dash1d-redshift": ("model_redshift.npz", "redshift"),
}


def _loader(name: str, filename: str):
    def load():
        from astrodash_core.models import Model

        model = Model.load(DATA / filename)
        model.name = name
        return model

    return load


@hookimpl
def register_models(register):
    for name, (filename, variant) in SHIPPED.items():
        if (DATA / filename).exists():
            register(name, _loader(name, filename), default_for=variant)
