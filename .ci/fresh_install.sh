#!/usr/bin/env bash
# README's first command in a fresh virtualenv (nothing from the warm machine's site-packages), and the wheel
# installed without a C compiler: a missing install step cannot hide behind an environment that has it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== README's first command in a fresh venv"
python -m venv "$WORK/editable"
(
  source "$WORK/editable/bin/activate"
  # the command as README gives it (the first console block's first command line)
  cmd=$(python "$ROOT/.ci/readme_blocks.py" first-command)
  echo "\$ $cmd"
  PIP_QUIET=1 bash -c "$cmd" > "$WORK/first.out" 2> "$WORK/first.err" || { cat "$WORK/first.err"; exit 1; }
  python "$ROOT/.ci/readme_blocks.py" check-output "$WORK/first.out"
)

echo "== the wheel, installed where no C compiler is"
python -m venv "$WORK/build"
"$WORK/build/bin/pip" install -q build
"$WORK/build/bin/python" -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; exit 1; }
ls "$WORK/dist"
python -m venv "$WORK/wheel"
CC=/bin/false CXX=/bin/false "$WORK/wheel/bin/pip" install -q "$WORK"/dist/*.whl
cp -r examples "$WORK/examples"
(
  cd "$WORK"
  ! "$WORK/wheel/bin/python" -c "import Cython" 2>/dev/null || { echo "Cython installed at run time"; exit 1; }
  "$WORK/wheel/bin/astrodash" classify examples/ --format csv > wheel.csv
  "$WORK/wheel/bin/python" - <<'PY'
import csv
rows = {r["file"]: r for r in csv.DictReader(open("wheel.csv"))}
assert rows["examples/sn1994D_p02.dat"]["broad_type"] == "Ia", rows
assert rows["examples/sn1990aa_z0.03.fits"]["redshift"] == "0.03", rows
import astrodash_asgi, astrodash_core
app = astrodash_asgi.create_app()
assert "site-packages" in astrodash_core.__file__
print("wheel smoke test passed:", len(rows), "spectra classified")
PY
)
