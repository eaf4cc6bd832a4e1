"""Build script for the Cython extensions: the text-table parser, the batch file reader, the one-pass column
checks and the first classification's kernels (everything else is in pyproject.toml)."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        f"astrodash_core.{name}",
        [f"src/astrodash_core/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in ("_parse", "_files", "_ckernels", "_columns")
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
