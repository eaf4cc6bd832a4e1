"""The plugin system: a third-party reader appears through pluggy, by registration or by entry point."""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core import hookimpl, plugins
from astrodash_core.reader_base import Reader


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


def test_builtin_readers_are_registered_as_plugins_once():
    names = [r.name for r in plugins.get_readers()]
    assert {"ascii", "csv", "fits", "lnw", "json"} <= set(names)
    assert len(names) == len(set(names))
    assert {"readers", "models", "storage"} <= set(plugins.plugin_names())
    modules = [p.__name__ for _, p in plugins.pm.list_name_plugin() if p is not None and hasattr(p, "__name__")]
    for module in plugins.BUILTIN_PLUGINS.values():
        assert modules.count(module) == 1
    plugins.pm.check_pending()  # every hook implemented has a spec


def test_builtin_plugin_names_are_the_entry_points_declared_in_pyproject():
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["astrodash"] == plugins.BUILTIN_PLUGINS


def test_plugins_command_lists_the_builtins_with_the_package_version(capsys):
    from astrodash_core.cli import main

    main(["plugins", "--json"])  # its exit status depends on what else is installed here: see the tests below
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {r["name"]: r for r in rows}
    for name in ("readers", "models", "storage"):
        assert by_name[name]["version"] == ad.__version__ and by_name[name]["builtin"]
        assert by_name[name]["status"] == "loaded"
    assert by_name["readers"]["hooks"] == ["register_readers"]


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
from astrodash_core.reader_base import Reader

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


BROKEN = {
    # import fails
    "astrodash_broken_import": "raise ImportError('needs libfoo 9')\n",
    # a hook that matches no spec (check_pending)
    "astrodash_broken_spec": "from astrodash_core import hookimpl\n@hookimpl\ndef register_readerz(register):\n"
                             "    pass\n",
    # a hook that raises when called
    "astrodash_broken_call": "from astrodash_core import hookimpl\n@hookimpl\ndef register_readers(register):\n"
                             "    raise RuntimeError('boom')\n",
}


def _install(tmp_path, dist_name, version, module, entry_name, source):
    (tmp_path / f"{module}.py").write_text(source)
    dist = tmp_path / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[astrodash]\n{entry_name} = {module}\n")


#: The external plugins the tests install; others in the environment (a shared development install) stay out.
TEST_PLUGINS = "foo,bad0,bad1,bad2"


def _run(path, code_or_args, env_value=TEST_PLUGINS):
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    env["PYTHONPATH"] = str(path) + os.pathsep + env.get("PYTHONPATH", "")
    if env_value is not None:
        env[plugins.ENV_VAR] = env_value
    cmd = [sys.executable, "-m", "astrodash_core.cli", *code_or_args] if isinstance(code_or_args, list) else \
        [sys.executable, "-c", code_or_args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def test_plugins_command_shows_an_installed_plugin_with_its_distribution_version(installed_plugin):
    out = _run(installed_plugin, ["plugins", "--json"])
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows["foo"]["distribution"] == "astrodash-foo" and rows["foo"]["version"] == "0.1"
    assert rows["foo"]["status"] == "loaded" and not rows["foo"]["builtin"]
    table = _run(installed_plugin, ["plugins"]).stdout
    assert re.search(r"^foo\s+0\.1\s+astrodash-foo\s+external\s+readers\s+loaded$", table, re.M), table


def test_broken_plugins_are_reported_by_name_and_skipped(installed_plugin):
    for k, (module, source) in enumerate(BROKEN.items()):
        _install(installed_plugin, f"astrodash-bad{k}", "1.0", module, f"bad{k}", source)
    out = _run(installed_plugin, ["plugins", "--json"])
    assert out.returncode == 1  # a plugin failed: the listing says so in its exit status
    rows = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows["foo"]["status"] == "loaded"
    assert "ImportError: needs libfoo 9" in rows["bad0"]["status"]
    assert "register_readerz" in rows["bad1"]["status"] and rows["bad1"]["status"].startswith("failed")
    assert "RuntimeError: boom" in rows["bad2"]["status"]
    for name in ("bad0", "bad1", "bad2"):
        assert f"'{name}'" in out.stderr  # reported by name
    # the library still works, the good third-party reader included
    assert _read_in_subprocess(installed_plugin) == "from-entry-point"
    code = "import astrodash_core as ad; print(ad.read_spectrum('examples/sn1994D_p02.dat').meta['format'])"
    done = _run(installed_plugin, code)
    assert done.returncode == 0 and done.stdout.strip() == "ascii", done.stderr


def test_disabled_plugins_are_listed_as_such(installed_plugin):
    rows = {r["name"]: r for r in map(json.loads, _run(installed_plugin, ["plugins", "--json"], "").stdout.splitlines())}
    assert rows["foo"]["status"] == "disabled by ASTRODASH_PLUGINS"


def _read_in_subprocess(path, env_value=TEST_PLUGINS):
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


def test_builtin_plugins_meet_the_protocols_next_to_the_hookspecs(tmp_path):
    from astrodash_core.hookspecs import ModelStore, SpectrumReader

    assert all(isinstance(r, SpectrumReader) for r in plugins.get_readers())
    store = plugins.get_storage_backends()["sqlite"](f"sqlite:///{tmp_path / 'm.db'}")
    assert isinstance(store, ModelStore)


def test_a_registration_that_breaks_the_reader_contract_is_skipped_by_name():
    class NotAReader:
        name = "nope"

    class Sloppy:
        @hookimpl
        def register_readers(self, register):
            register(NotAReader())
            register(FooReader())

    plugin = Sloppy()
    plugins.register(plugin, name="sloppy-test")
    try:
        names = [r.name for r in plugins.get_readers()]
        assert "foo" in names and "nope" not in names
        row = next(r for r in plugins.plugin_info() if r["name"] == "sloppy-test")
        assert "not a reader" in row["status"]
    finally:
        plugins.unregister(plugin)
        plugins._not_loaded.pop("sloppy-test", None)


def test_package_is_marked_typed():
    from pathlib import Path

    import astrodash_asgi
    import astrodash_plugins

    for package in (ad, astrodash_plugins, astrodash_asgi):
        assert (Path(package.__file__).parent / "py.typed").is_file()


def test_old_module_names_still_give_the_public_names():
    from astrodash_core import reader_base, reader_dispatch, readers, reading

    assert readers.Reader is reader_base.Reader and readers.make_spectrum is reader_base.make_spectrum
    assert reading.read_spectrum is reader_dispatch.read_spectrum is ad.read_spectrum
