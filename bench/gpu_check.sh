#!/usr/bin/env bash
# One prepared run for the GPU machine (issue 7): install what is missing, the CuPy-vs-NumPy tests, the
# GPU benchmark. Run from the repository root:   bash bench/gpu_check.sh OUTDIR
#
# - Before the device run, on the development machine (the folder is git-ignored, so a new checkout needs this):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection typing-extensions
#   then the device tool's run with command `bash bench/gpu_check.sh "$OUT"`, carry [".whl"], timeout_s 540.
# - Missing Python packages come from carried wheels in .whl/ (pydantic and its needs: the GPU image has
#   numpy, cupy, pytest, pytest-timeout, hypothesis, torch, but no pydantic), installed with --target into
#   /tmp/site; the repository itself is put on PYTHONPATH (not pip-installed).
# - Every step is bounded with `timeout` and the script carries on past failures; the worst case is about
#   7 minutes (install ~0.3, tests <= 2.5, benchmark <= 4.2). The exit status is that of the first failure.
# - Files written to OUTDIR (6): env.txt, pytest_gpu.txt, gpu_bench.log, gpu_bench.json, gpu_bench.txt,
#   summary.txt.
# - Without a GPU (a dry run on a CPU machine) the tests skip and the benchmark runs --small on NumPy.
set -u
OUT="${1:?usage: bash bench/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
T0=$(date +%s)
STATUS=0
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1
export CUPY_TF32=0 # float32 matmuls in true float32 (no TF32), as the float32 tolerances assume

step() { # step NAME RC
  local name="$1" rc="$2"
  echo "$(printf '%-12s' "$name") rc=$rc  t=$(($(date +%s) - T0))s" | tee -a "$SUMMARY"
  if [ "$rc" -ne 0 ] && [ "$STATUS" -eq 0 ]; then STATUS="$rc"; fi
}

# ---- 1. install only what is missing ------------------------------------------------------------------
SITE=/tmp/site
NEED=$(timeout 60 "$PY" - <<'EOF'
import importlib.metadata as md
def ver(name):
    try:
        return tuple(int(x) for x in md.version(name).split(".")[:3] if x.isdigit())
    except md.PackageNotFoundError:
        return None
need = []
# pydantic (and pydantic-core, which must match it exactly) as a pair
try:
    import pydantic  # noqa: F401
except Exception:
    need += ["pydantic-", "pydantic_core-"]
for dist, mod, minimum in [("annotated-types", "annotated_types", (0, 6)), ("typing-inspection", "typing_inspection", (0, 4, 4)),
                           ("typing_extensions", "typing_extensions", (4, 16))]:
    v = ver(dist)
    if v is None or v < minimum:
        need.append(mod + "-")
print(" ".join(need))
EOF
)
RC=$?
WHEELS=""
for prefix in $NEED; do
  for w in .whl/"$prefix"*.whl; do [ -e "$w" ] && WHEELS="$WHEELS $w"; done
done
if [ -n "$WHEELS" ]; then
  echo "installing from carried wheels:$WHEELS"
  timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $WHEELS
  RC=$?
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "nothing to install (missing: '${NEED}')"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
step install "$RC"

# ---- 2. environment ---------------------------------------------------------------------------------
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "python: $PY ($($PY -c 'import sys; print(sys.version)' 2>&1))"
  echo "PYTHONPATH=$PYTHONPATH"
  timeout 30 nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  timeout 60 "$PY" - <<'EOF' 2>&1
import importlib
for name in ["numpy", "cupy", "pydantic", "pydantic_core", "pytest", "pytest_timeout", "hypothesis", "typing_extensions", "torch"]:
    try:
        m = importlib.import_module(name)
        print(f"{name:18s} {getattr(m, '__version__', '?')}  ({getattr(m, '__file__', '')})")
    except Exception as exc:
        print(f"{name:18s} MISSING ({type(exc).__name__}: {exc})")
from dynamics.backend import resolve_backend
be = resolve_backend("auto")
print(f"lindyn backend auto -> {be.name} ({be.device}); cupy usable={be.name == 'cupy'}")
if be.name == "cupy":
    cp = be.xp
    print(f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, driver {cp.cuda.runtime.driverGetVersion()}")
EOF
} >"$OUT/env.txt" 2>&1
RC=$?
cat "$OUT/env.txt"
step env "$RC"

HAVE_GPU=$(timeout 60 "$PY" -c 'from dynamics.backend import resolve_backend; print(int(resolve_backend("auto").name == "cupy"))' 2>/dev/null || echo 0)
echo "GPU usable by lindyn: $HAVE_GPU"

# ---- 3. CuPy vs NumPy tests -------------------------------------------------------------------------
# --noconftest: tests/conftest.py holds the service's database fixtures (sqlalchemy, models, ...), which
# tests/dynamics does not use and the GPU image lacks.
set -o pipefail
timeout 150 "$PY" -m pytest -m gpu tests/dynamics -q -p no:cacheprovider --noconftest -rfEsP 2>&1 | tee "$OUT/pytest_gpu.txt"
step pytest_gpu "$?"

# ---- 4. benchmark ----------------------------------------------------------------------------------
if [ "$HAVE_GPU" = "1" ]; then
  BENCH_ARGS=(--backend cupy --budget-s 215)
else
  echo "no GPU: benchmark dry run (--small on NumPy)"
  BENCH_ARGS=(--backend numpy --small --budget-s 60)
fi
timeout 255 "$PY" -m bench.gpu_bench --out "$OUT" "${BENCH_ARGS[@]}" 2>&1 | tee "$OUT/gpu_bench.log"
step gpu_bench "$?"

echo "total $(($(date +%s) - T0))s, status $STATUS" | tee -a "$SUMMARY"
echo "---- benchmark summary ----"
cat "$OUT/gpu_bench.txt" 2>/dev/null
exit "$STATUS"
