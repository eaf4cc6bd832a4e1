"""The plugin system: a third-party reader appears through pluggy, by registration or by entry point."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core import hookimpl, plugins
from astrodash_core.readers import Reader


class FooReader(Reader):
    """A made-up format: a line 'FOO', then 'wave:flux' pairs."""

    name = "foo"
    suffixes = (".foo",)

    def sniff(self, head, filename):
        return 1.0 if head.startswith(b"FOO\n") else 0.0

    def read(self, data, filename):
        pairs = [ln.split(":") for ln in data.decode().splitlines()[1:] if ln]
        arr = np.array(pairs, dtype=float)
        return [ad.Spectrum(arr[:, 0], arr[:, 1], name="foo-spectrum")]


class FooPlugin:
    @hookimpl
    def register_readers(self, register):
        register(FooReader())


FOO = ("FOO\n" + "\n".join(f"{4000 + 10 * k}:{1 + k}" for k in range(20))).encode()


def test_builtin_readers_are_registered_as_plugins():
    names = {r.name for r in plugins.get_readers()}
    assert {"ascii", "csv", "fits", "lnw", "json"} <= names
    assert "astrodash_plugins.readers" in plugins.plugin_names()


def test_registered_reader_reads_a_new_format_by_suffix_and_by_sniffing():
    plugin = FooPlugin()
    plugins.register(plugin, name="foo-test")
    try:
        assert ad.read_spectrum(FOO, filename="x.foo").name == "foo-spectrum"
        assert ad.read_spectrum(FOO, filename="no_suffix").name == "foo-spectrum"
    finally:
        plugins.unregister(plugin)
    with pytest.raises(ad.SpectrumReadError):
        ad.read_spectrum(FOO, filename="x.foo")


PLUGIN_MODULE = '''
import numpy as np
import astrodash_core as ad
from astrodash_core import hookimpl
from astrodash_core.readers import Reader

class FooReader(Reader):
    name = "foo"
    suffixes = (".foo",)
    def sniff(self, head, filename):
        return 1.0 if head.startswith(b"FOO\\n") else 0.0
    def read(self, data, filename):
        arr = np.array([ln.split(":") for ln in data.decode().splitlines()[1:] if ln], dtype=float)
        return [ad.Spectrum(arr[:, 0], arr[:, 1], name="from-entry-point")]

@hookimpl
def register_readers(register):
    register(FooReader())
'''


@pytest.fixture
def installed_plugin(tmp_path):
    """A throw-away third-party distribution 'astrodash-foo' with an 'astrodash' entry point."""
    (tmp_path / "astrodash_foo.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "astrodash_foo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: astrodash-foo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[astrodash]\nfoo = astrodash_foo\n")
    (tmp_path / "s.foo").write_bytes(FOO)
    return tmp_path


def _read_in_subprocess(path, env_value):
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    env["PYTHONPATH"] = str(path) + os.pathsep + env.get("PYTHONPATH", "")
    if env_value is not None:
        env[plugins.ENV_VAR] = env_value
    code = textwrap.dedent(f"""
        import json, astrodash_core as ad
        try:
            print(json.dumps(ad.read_spectrum({str(path / 's.foo')!r}).name))
        except ad.SpectrumReadError as e:
            print(json.dumps("error"))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_entry_point_plugin_loads_with_no_change_to_the_core(installed_plugin):
    assert _read_in_subprocess(installed_plugin, None) == "from-entry-point"
    assert _read_in_subprocess(installed_plugin, "foo") == "from-entry-point"


def test_environment_variable_restricts_external_plugins(installed_plugin):
    assert _read_in_subprocess(installed_plugin, "") == "error"
    assert _read_in_subprocess(installed_plugin, "other") == "error"
