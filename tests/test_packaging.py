"""Every module imported at run time is declared in pyproject.toml, in the right place; no runtime module imports
a test-only package."""
import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OURS = {"astrodash_core", "astrodash_plugins", "astrodash_asgi"}
#: import name -> distribution name, where they differ
DIST = {"python_multipart": "python-multipart", "yaml": "pyyaml"}
#: optional imports and the only modules allowed to make them (each under its extra)
OPTIONAL = {"torch": ("astrodash_core/training/", "astrodash_core/convert.py"), "matplotlib": ("astrodash_core/plot.py",),
            "uvicorn": ("astrodash_asgi/serve.py", "astrodash_asgi/protocol.py"),
            # uvicorn's HTTP/1.1 library, which astrodash_asgi.protocol extends (installed with uvicorn)
            "h11": ("astrodash_asgi/protocol.py",),
            # ONNX models of any architecture (the onnx extra): only their own runtime module
            "onnxruntime": ("astrodash_core/nn/onnx_runtime.py",), "onnx": ("astrodash_core/nn/onnx_runtime.py",)}
TEST_ONLY = {"pytest", "hypothesis", "httpx", "schemathesis", "mutmut"}


def imports():
    for path in SRC.rglob("*.py"):
        if "egg-info" in str(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                yield path.relative_to(SRC).as_posix(), name.split(".")[0]


def declared(group):
    reqs = PYPROJECT["project"]["dependencies"] if group is None else \
        PYPROJECT["project"]["optional-dependencies"][group]
    return {r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for r in reqs}


def test_runtime_imports_are_declared():
    base = declared(None)
    missing = set()
    for where, top in imports():
        if top in OURS or top in sys.stdlib_module_names or top in OPTIONAL or top in ("numba", "llvmlite"):
            continue
        if DIST.get(top, top).lower() not in base:
            missing.add((where, top))
    assert not missing, f"imported but not in [project] dependencies: {sorted(missing)}"
    assert "numba" in base and "cython" not in base  # Cython builds the extension; it is not needed at run time
    assert "cython" in str(PYPROJECT["build-system"]["requires"]).lower()


def test_optional_imports_stay_in_their_modules_and_extras():
    for where, top in imports():
        assert top not in TEST_ONLY, f"{where} imports the test-only package {top}"
        if top in OPTIONAL:
            assert where.startswith(OPTIONAL[top]), f"{where} imports {top}"
    assert "torch" in declared("train") and "torch" not in declared("dev")
    assert "matplotlib" in declared("plot") and "uvicorn" in declared("serve")
    assert {"onnxruntime", "onnx"} <= declared("onnx")
