"""Model files: network weights + label list + grid + preprocessing settings + provenance, in one safe file.

The format is a NumPy ``.npz`` read with ``allow_pickle=False``: one array per weight (``w:{name}``) and one
``meta`` array holding UTF-8 JSON (``format``, ``arch``, ``labels``, ``grid``, ``preprocessing``,
``variant``, ``provenance``).  Nothing in a model file is ever executed, so an uploaded model cannot run code.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._npz import BYTES_SUFFIX, MAX_META_BYTES, MAX_META_DEPTH, MAX_UNPACKED_BYTES  # noqa: F401 - the archive's bounds
from .errors import ModelFileError
from .variants import VARIANTS, Variant  # noqa: F401 - VARIANTS was defined here

if TYPE_CHECKING:
    from .nn import Ensemble, Network, TransformerNetwork
    from .nn.onnx_runtime import OnnxNetwork

FORMAT = "astrodash-model/1"
#: Most networks in one ensemble model.
MAX_MEMBERS = 16
#: Largest model file accepted (bytes).
MAX_MODEL_BYTES = 64 * 1024 * 1024
#: Most labels (classes or redshift bins) a model may have.
MAX_LABELS = 10_000


def _check_meta(meta, name: str) -> None:
    """ModelFileError naming the metadata key whose value is missing or of the wrong type or range."""
    from .preprocess import PreprocessSettings

    def bad(key, why):
        return ModelFileError(f"{name}: model metadata {key!r} {why}")

    if not isinstance(meta, dict):
        raise ModelFileError(f"{name}: model metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        fmt = meta.get("format")
        raise ModelFileError(f"{name}: unsupported model format {fmt if isinstance(fmt, str) else None!r}")
    for key in ("arch", "labels", "grid", "preprocessing"):
        if key not in meta:
            raise ModelFileError(f"{name}: model metadata lacks {key!r}")
    if not isinstance(meta["arch"], list) or not all(isinstance(layer, dict) for layer in meta["arch"]):
        raise bad("arch", "must be a list of layer objects")
    labels = meta["labels"]
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS or \
            not all(isinstance(x, str) for x in labels):
        raise bad("labels", f"must be a list of 1 to {MAX_LABELS} strings")
    if not isinstance(meta["grid"], dict):
        raise bad("grid", "must be an object {w0, w1, nw}")
    try:
        grid = _grid_from(meta["grid"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise bad("grid", f"is not a valid grid ({exc})") from None
    if grid.nw > 1 << 20:
        raise bad("grid", f"nw={grid.nw} is too large")
    pre = meta["preprocessing"]
    if not isinstance(pre, dict) or not isinstance(pre.get("grid"), dict):
        raise bad("preprocessing", "must be an object with a 'grid' object")
    try:
        for k, v in pre.items():
            if k != "grid" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) <= 1e9):
                raise TypeError(f"{k!r} must be a finite number, got {v!r}")
        _grid_from(pre["grid"])
        PreprocessSettings.from_dict(pre)
    except (KeyError, TypeError, ValueError, OverflowError, ModelFileError) as exc:
        raise bad("preprocessing", f"is not valid ({exc})") from None
    if not isinstance(meta.get("variant", "known-z"), str):
        raise bad("variant", f"must be one of {', '.join(VARIANTS)}")
    if not isinstance(meta.get("provenance") or {}, dict):
        raise bad("provenance", "must be an object")
    if not isinstance(meta.get("name") or "", str):
        raise bad("name", "must be a string")
    members = meta.get("members", 1)
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= MAX_MEMBERS:
        raise bad("members", f"must be an integer from 1 to {MAX_MEMBERS}")


def _grid_from(d: dict):
    """A Grid from a metadata object, refusing non-numbers (``Grid.from_dict`` would coerce strings)."""
    from .grid import Grid

    for key in ("w0", "w1", "nw"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{key} must be a number, got {v!r}")
    if d["nw"] != int(d["nw"]):
        raise ValueError(f"nw must be a whole number, got {d['nw']!r}")
    return Grid.from_dict(d)


@dataclass
class Model:
    """A loaded model; ``predict`` runs the Numba forward pass."""

    arch: list[dict]
    weights: dict[str, np.ndarray]
    labels: list[str]
    grid: dict
    preprocessing: dict
    variant: Variant = Variant.KNOWN_Z
    provenance: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    members: int = 1  # an ensemble of networks of one architecture: weights "m{j}.{name}", probabilities averaged

    def __post_init__(self) -> None:
        from .nn import check_weights

        if not self.name:
            self.name = str(self.provenance.get("name") or f"model-{self.variant}")
        try:
            self.variant = Variant(self.variant)
        except ValueError:
            raise ModelFileError(f"model variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}") from None
        if len(set(self.labels)) != len(self.labels):
            raise ModelFileError("model labels are not unique")
        if self.variant is Variant.REDSHIFT:
            from .labels import redshift_bins

            try:
                redshift_bins(self.labels)
            except ValueError as exc:
                raise ModelFileError(f"model {self.name!r}: {exc}") from None
        if not isinstance(self.members, int) or not 1 <= self.members <= MAX_MEMBERS:
            raise ModelFileError(f"model {self.name!r}: members must be 1..{MAX_MEMBERS}, got {self.members!r}")
        try:
            for member in self.member_weights():
                check_weights(self.arch, member, int(self.grid["nw"]), len(self.labels))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"model {self.name!r}: {exc}") from None
        if int(self.preprocessing.get("grid", {}).get("nw", -1)) != int(self.grid["nw"]):
            raise ModelFileError(f"model {self.name!r}: grid and preprocessing settings disagree")
        self._net: Network | TransformerNetwork | Ensemble | None = None

    def member_weights(self) -> list[dict[str, np.ndarray]]:
        """The weights of each network of the model (one unless it is an ensemble)."""
        if self.members == 1:
            return [self.weights]
        out: list[dict[str, np.ndarray]] = [{} for _ in range(self.members)]
        for k, v in self.weights.items():
            prefix, _, rest = k.partition(".")
            j = int(prefix[1:]) if prefix[:1] == "m" and prefix[1:].isdigit() else -1
            if not 0 <= j < self.members:
                raise ValueError(f"weight {k!r} belongs to no member of a {self.members}-network ensemble")
            out[j][rest] = v
        return out

    @property
    def network(self) -> Network | TransformerNetwork | Ensemble | OnnxNetwork:
        if self._net is None:
            from .nn import Ensemble, build_network

            nets = [build_network(self.arch, w, self.name) for w in self.member_weights()]
            self._net = nets[0] if len(nets) == 1 else Ensemble(nets)
        return self._net

    @property
    def redshift_bins(self) -> np.ndarray:
        """Bin centres of a redshift model's outputs."""
        from .labels import redshift_bins

        return redshift_bins(self.labels)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities float32 [n, len(labels)] for preprocessed spectra float32 [n, nw]."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != int(self.grid["nw"]):
            raise ValueError(f"model {self.name!r} takes [n, {self.grid['nw']}] inputs, got {x.shape}")
        return self.network.forward(x)

    def meta(self) -> dict:
        return {"format": FORMAT, "name": self.name, "arch": self.arch, "labels": list(self.labels),
                "grid": self.grid, "preprocessing": self.preprocessing, "variant": self.variant,
                "members": self.members, "provenance": self.provenance}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        # Any: numpy's stub lets **arrays match savez_compressed's allow_pickle: bool too
        arrays: dict[str, Any] = {f"w:{k}": np.asarray(v, dtype=np.uint8 if k.endswith(BYTES_SUFFIX) else np.float32)
                                  for k, v in self.weights.items()}
        arrays["meta"] = np.frombuffer(json.dumps(self.meta()).encode(), dtype=np.uint8)
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(self.to_bytes())
        os.replace(tmp, path)
        return path

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "model") -> "Model":
        """Load and validate a model file's bytes; ModelFileError names what is wrong.

        Nothing is inflated before it is checked: the archive's directory (member names, uncompressed sizes),
        then the metadata (at most :data:`MAX_META_BYTES`, JSON depth bounded, every key's type), then each
        weight's ``.npy`` header (dtype, shape) against the shapes the declared architecture needs; only then
        are the weights read, each exactly as large as its checked header says."""
        if len(data) > MAX_MODEL_BYTES:
            raise ModelFileError(f"{name}: model file is {len(data)} bytes; at most {MAX_MODEL_BYTES} are accepted")
        if not bytes(data[:2]) == b"PK":
            raise ModelFileError(f"{name}: not an astrodash model file (expected an .npz archive)")
        from ._npz import read_checked

        meta, weights = read_checked(data, name, cls._expected_weights)
        return cls._from_meta(meta, weights, name)

    @staticmethod
    def _expected_weights(meta: dict, name: str) -> dict[str, tuple[int, ...]]:
        """``{"w:{weight}": shape}`` the metadata's architecture, grid, labels and members call for."""
        from .nn import weight_shapes

        _check_meta(meta, name)
        members = meta.get("members", 1)
        try:
            per = weight_shapes(meta["arch"], int(meta["grid"]["nw"]), len(meta["labels"]))
        except ValueError as exc:
            raise ModelFileError(f"{name}: model metadata 'arch': {exc}") from None
        if members == 1:
            return {f"w:{k}": v for k, v in per.items()}
        return {f"w:m{j}.{k}": v for j in range(members) for k, v in per.items()}

    @classmethod
    def _from_meta(cls, meta: dict, weights: dict[str, np.ndarray], name: str) -> "Model":
        return cls(arch=meta["arch"], weights=weights, labels=list(meta["labels"]), grid=dict(meta["grid"]),
                   preprocessing=dict(meta["preprocessing"]), variant=meta.get("variant", "known-z"),
                   provenance=dict(meta.get("provenance") or {}), name=str(meta.get("name") or ""),
                   members=meta.get("members", 1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
        return cls.from_bytes(data, str(path))


#: Provenance entries an ensemble keeps at its top level when all its members agree on them.
ENSEMBLE_SHARED = ("architecture", "data", "seed", "fit_on", "loss", "split")


def ensemble_models(models: list[Model], name: str = "") -> Model:
    """One model holding the networks of ``models`` (probabilities averaged), e.g. two redshift recipes.

    They must agree on architecture, labels, grid, preprocessing, variant, training loss and held-out test
    objects.  The provenance keeps each member's; a classifier's reliable threshold is not carried over (an
    ensemble's probabilities need calibrating again)."""
    if len(models) < 2:
        raise ModelFileError("an ensemble needs at least two models")
    first = models[0]
    for m in models[1:]:
        for what in ("variant", "labels", "arch", "grid", "preprocessing"):
            if getattr(m, what) != getattr(first, what):
                raise ModelFileError(f"models {first.name!r} and {m.name!r} differ in {what}")
        for what in ("loss", "split"):
            if m.provenance.get(what) != first.provenance.get(what):
                raise ModelFileError(f"models {first.name!r} and {m.name!r} differ in their training {what}")
    weights, j = {}, 0
    for m in models:
        for member in m.member_weights():
            weights.update({f"m{j}.{k}": v for k, v in member.items()})
            j += 1
    name = name or " + ".join(m.name for m in models)
    provenance = {"name": name, "ensemble_of": [m.provenance for m in models]}
    # what all members share stays at the top, where evaluation and inference read it (the split's seed draws
    # the evaluation sets)
    provenance.update({k: first.provenance[k] for k in ENSEMBLE_SHARED
                       if k in first.provenance and all(m.provenance.get(k) == first.provenance[k] for m in models)})
    return Model(arch=first.arch, weights=weights, labels=list(first.labels), grid=first.grid,
                 preprocessing=first.preprocessing, variant=first.variant, provenance=provenance, name=name, members=j)


def available_models() -> dict[str, dict]:
    """Registered models (built-in and plugins): ``{name: {"loader", "default_for"}}``."""
    from .plugins import get_model_providers

    return get_model_providers()


_loaded: dict[str, Model] = {}

#: The registered name of the shipped transformer (``classify(..., model="transformer")``, HTTP
#: ``modelType: "transformer"``) and its file in ``astrodash_core/data``.  It is optional: without the file the
#: name is not registered and asking for it says so (:func:`load_model`).
TRANSFORMER = "transformer"
TRANSFORMER_FILE = "model_transformer.npz"


def load_model(spec) -> Model:
    """A model by registered name, by file path, or a Model itself; loaded once per name."""
    if isinstance(spec, Model):
        return spec
    spec = os.fspath(spec)
    providers = available_models()
    if spec in providers:
        if spec not in _loaded:
            _loaded[spec] = providers[spec]["loader"]()
        return _loaded[spec]
    if os.path.exists(spec):
        return Model.load(spec)
    if spec == TRANSFORMER:
        raise ModelFileError(f"the transformer model is not installed: no {TRANSFORMER_FILE} in astrodash_core/data "
                             "(train one with `astrodash train --variant known-z --arch transformer ...` and put it "
                             "there, or give a model file's path)")
    raise ModelFileError(f"unknown model {spec!r}: not a registered model ({', '.join(sorted(providers)) or 'none'}) "
                         "nor a model file")


def default_model(variant: str) -> Model:
    """The default model for ``variant`` ('known-z', 'agnostic' or 'redshift')."""
    for name, p in available_models().items():
        if p["default_for"] == variant:
            return load_model(name)
    raise ModelFileError(f"no {variant} model is installed")
