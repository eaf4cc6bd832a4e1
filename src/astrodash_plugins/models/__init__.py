"""The shipped models, registered as a plugin exactly as a third-party model package would be.

The transformer (``model_transformer.npz``) is optional: it is registered as ``transformer`` when its file is in
``astrodash_core/data``, or from the file ``ASTRODASH_TRANSFORMER_MODEL`` names (which wins; a path that does
not exist registers a loader that says so, so asking for the model names the file).
"""
from __future__ import annotations

import os
from importlib import resources

from astrodash_core.hookspecs import hookimpl
from astrodash_core.models import TRANSFORMER, TRANSFORMER_FILE

#: The shipped models' folder, wherever the package is installed.
DATA = resources.files("astrodash_core").joinpath("data")

#: Environment variable naming the transformer's model file (instead of the one in astrodash_core/data).
TRANSFORMER_ENV = "ASTRODASH_TRANSFORMER_MODEL"

#: registry name -> (file in astrodash_core/data, variant it is the default for)
SHIPPED = {
    "dash1d-known-z": ("model_known_z.npz", "known-z"),
    "dash1d-agnostic": ("model_agnostic.npz", "agnostic"),
    "dash1d-redshift": ("model_redshift.npz", "redshift"),
    # AstroDASH 2.0's five classes, no ages: reached by name (model="transformer"), the default for nothing
    TRANSFORMER: (TRANSFORMER_FILE, None),
}


def _loader(name: str, filename: str):
    def load():
        from astrodash_core.models import Model

        with resources.as_file(DATA.joinpath(filename)) as path:
            model = Model.load(path)
        model.name = name
        return model

    return load


def _file_loader(name: str, path: str):
    def load():
        from astrodash_core.models import Model

        model = Model.load(path)  # a missing or broken file: ModelFileError naming it
        model.name = name
        return model

    return load


@hookimpl
def register_models(register):
    override = os.environ.get(TRANSFORMER_ENV, "").strip()
    for name, (filename, variant) in SHIPPED.items():
        if name == TRANSFORMER and override:
            register(name, _file_loader(name, override), default_for=variant)
        elif DATA.joinpath(filename).is_file():
            register(name, _loader(name, filename), default_for=variant)
