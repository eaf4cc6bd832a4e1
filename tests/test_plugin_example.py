"""docs/plugins.md's complete reader plugin works as printed: registered, it reads its format everywhere."""
import re
import types
from pathlib import Path

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core import plugins
from astrodash_core.errors import SpectrumReadError

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
EXAMPLE = DOC.split("## A complete reader plugin", 1)[1]


@pytest.fixture
def spx_plugin():
    code = re.search(r"```python\n(.*?)```", EXAMPLE, flags=re.S).group(1)
    module = types.ModuleType("astrodash_spx")
    exec(compile(code, "docs/plugins.md:astrodash_spx", "exec"), module.__dict__)
    plugins.register(module, name="spx-example")
    yield module
    plugins.unregister(name="spx-example")


def spx_file(tmp_path, rows=None):
    sn = ad.read_spectrum(Path(__file__).resolve().parents[1] / "examples" / "sn1994D_p02.dat")
    rows = rows or "\n".join(f"{w / 10:.4f} {f:.6g}" for w, f in zip(sn.wave, sn.flux))
    path = tmp_path / "night.spx"
    path.write_text(f"# SPX 1\nobject = SN 1994D\nredshift = 0.0\n{rows}\n")
    return path, sn


def test_the_documented_reader_reads_and_classifies_its_format(spx_plugin, tmp_path):
    path, sn = spx_file(tmp_path)
    spec = ad.read_spectrum(path)
    assert spec.name == "SN 1994D" and spec.redshift == 0.0 and spec.meta["format"] == "spx"
    np.testing.assert_allclose(spec.wave, sn.wave, rtol=1e-6)  # nm -> Å
    (r,) = ad.classify([path])
    assert r.error is None and r.best_match.broad_type == "Ia" and r.redshift_source == "given"


def test_the_documented_reader_names_the_bad_line(spx_plugin, tmp_path):
    path, _ = spx_file(tmp_path, rows="400.0 1.0\n401.0 oops\n")
    with pytest.raises(SpectrumReadError, match=r"night.spx: line 5 is not two numbers"):
        ad.read_spectrum(path)


def test_the_documented_entry_point_names_the_module():
    assert 'spx = "astrodash_spx"' in EXAMPLE and "[project.entry-points.astrodash]" in EXAMPLE
