"""Pictures of classifications: the preprocessed spectrum, the best-match template and key lines.

Needs matplotlib (``pip install "astrodash[plot]"``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import labels

#: Lines marked on the plots (names in data/lines.json).
KEY_LINES = ("Ca II K", "Si II 4130", "Mg II 4481", "Fe II 5169", "S II 5454", "Si II 5972", "Na I D",
             "He I 5876", "Si II 6355", "H-alpha", "H-beta", "O I 7774", "Ca II 8542")


def _template_for(result, bank):
    """(label, wave, flux) of the mean template of the best match's most probable class, or None."""
    from .templates import template_spectrum

    best = result.best_match
    if best.age is None:  # a type-only model (the transformer): no age to take a template at
        return None
    for m in result.matches:
        if m.type == best.type or labels.BROAD_TYPE.get(m.type) == best.type:
            try:
                w, f = template_spectrum(m.type, m.age, bank=bank)
                return f"{m.type} {m.age} d (mean template)", w, f
            except KeyError:
                continue
    return None


def plot_classification(result, path, bank=None) -> Path:
    """Write a PNG of one classification (computed with ``include_spectrum=True``) to ``path``.

    The figure is a bare ``matplotlib.figure.Figure`` rendered by Agg: pyplot is not used, so the caller's
    backend, current figure and open windows are left as they were."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError('plots need matplotlib: pip install "astrodash[plot]"') from exc
    from .lines import all_lines
    from .templates import default_bank

    if result.error or result.spectrum is None:
        raise ValueError(f"{result.name}: nothing to plot ({result.error or 'no spectrum kept'})")
    if bank is None:
        try:
            bank = default_bank()
        except FileNotFoundError:
            bank = None
    wave, flux = result.spectrum
    best = result.best_match
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(wave, flux, color="black", lw=1, label="input (preprocessed, rest frame)")
    tmpl = _template_for(result, bank) if bank is not None else None
    if tmpl:
        name, tw, tf = tmpl
        sel = (tw >= wave[0]) & (tw <= wave[-1]) & (tf != 0)
        ax.plot(tw[sel], tf[sel], color="tab:red", lw=1, alpha=0.8, label=name)
    top = np.nanmax(np.abs(flux)) if flux.size else 1.0
    shown = sorted((l for l in all_lines() if l["name"] in KEY_LINES and wave[0] <= l["wavelength"] <= wave[-1]),
                   key=lambda l: l["wavelength"])
    # labels at least one label width apart, moved right where lines crowd (He I 5876, Na I 5890, Si II 5972);
    # each dotted line stays at its own wavelength
    label_gap = 0.013 * (wave[-1] - wave[0])
    label_at = -np.inf
    for line in shown:
        label_at = max(line["wavelength"], label_at + label_gap)
        ax.axvline(line["wavelength"], color="tab:blue", lw=0.6, ls=":")
        ax.text(label_at, 1.05 * top, line["name"], rotation=90, fontsize=7, ha="center", va="bottom",
                color="tab:blue")
    z = "unknown" if result.redshift is None else f"{result.redshift:.4f}" + (
        " (estimated)" if result.redshift_source == "estimated" else "")
    rlap = "n/a" if best.rlap is None else f"{best.rlap:.1f}"
    age = "" if best.age is None else f", {best.age} d"
    ax.set_title(f"{result.name}: {best.type}{age}, p = {best.probability:.2f}, z = {z}, rlap = {rlap}"
                 + ("" if best.reliable else " (not reliable)"), fontsize=10)
    ax.set_xlabel("rest wavelength (Å)")
    ax.set_ylabel("continuum-removed flux (normalised)")
    ax.set_ylim(-1.15 * top, 1.45 * top)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_filename(name: str) -> str:
    """A safe PNG file name for a spectrum name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(name).name).strip("_") + ".png"


def matplotlib_missing() -> str | None:
    """None when plots can be drawn, else what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return 'plots need matplotlib: pip install "astrodash[plot]"'
    return None
