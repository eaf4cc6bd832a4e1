"""First-call cost users feel: import, then the first preprocess + forward pass, with a cold and a warm
Numba cache (each in a fresh process)."""
import json
import os
import subprocess
import sys


SCRIPT = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import astrodash_core as ad
t_import = time.perf_counter() - t0
w = np.linspace(3000, 10000, 2000)
s = ad.Spectrum(w, 1 + 0.1 * np.sin(w / 100))
t1 = time.perf_counter(); ad.preprocess([s], redshift=0.05); t_pre = time.perf_counter() - t1
t2 = time.perf_counter(); ad.preprocess([s], redshift=0.05); t_pre2 = time.perf_counter() - t2
from astrodash_core.nn import DASH1D, Network
rng = np.random.default_rng(0)
weights = {}
for i, l in enumerate(DASH1D):
    shape = (l["out"], l["in"], l["k"]) if l["type"] == "conv" else (l["out"], l["in"])
    weights[f"{i}.weight"] = rng.normal(0, 0.05, shape).astype("f4"); weights[f"{i}.bias"] = np.zeros(l["out"], "f4")
net = Network(DASH1D, weights)
t3 = time.perf_counter(); net.forward(np.zeros((1, 1024), "f4")); t_nn = time.perf_counter() - t3
print(json.dumps({"import_s": t_import, "first_preprocess_s": t_pre, "second_preprocess_s": t_pre2,
                  "first_forward_s": t_nn, "total_s": time.perf_counter() - t0}))
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_compile_time_cold_and_warm_cache(benchmark, tmp_path):
    cold = _run(tmp_path)   # empty cache: every kernel compiles
    warm = benchmark.pedantic(_run, args=(tmp_path,), rounds=1)   # the cache written by the first run
    benchmark.extra_info.update({f"cold_{k}": v for k, v in cold.items()})
    benchmark.extra_info.update({f"warm_{k}": v for k, v in warm.items()})
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"\n{name} cache: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    assert warm["first_preprocess_s"] < cold["first_preprocess_s"]
