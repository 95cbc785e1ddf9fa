#!/usr/bin/env bash
# One prepared run for the GPU machine (issues 7 and 18): install what is missing, the CuPy-vs-NumPy tests,
# the Figure 2 sweep through the service on a GPU worker, the GPU benchmark. From the repository root:
#     bash bench/gpu_check.sh OUTDIR            (on the GPU machine)
#     DRY_RUN=1 bash bench/gpu_check.sh OUTDIR  (anywhere: NumPy, small sizes, no pytest -m gpu; ~2 minutes)
#
# - Before the device run, on the development machine (.whl/ is git-ignored, so a new checkout needs this):
#     .venv/bin/python -m bench.gpu_wheels download --dest .whl
#   (lindyn's run-time requirements at the versions installed here, CPython 3.12 x86-64 wheels; ~25 MB), then
#   the device tool's run with command `bash bench/gpu_check.sh "$OUT"`, carry [".whl"], timeout_s 540.
# - Only the carried wheels whose package the machine lacks are installed (`python -m bench.gpu_wheels
#   missing`: pydantic, FastAPI, Celery, SQLAlchemy, ... ; the image has NumPy, CuPy, pandas, pyarrow,
#   matplotlib, httpx, typer, pytest), with --target into /tmp/site; the repository itself is put on
#   PYTHONPATH (not pip-installed).
# - Every step is bounded with `timeout`, capped by what is left of 470 s from the start (so the whole
#   script ends within 8 minutes), and the script carries on past failures (tests <= 100 s, service <= 160 s,
#   benchmark <= 195 s; install and environment take seconds). The exit status is that of the first failure.
# - Files written to OUTDIR (8, the device tool's limit): summary.txt (step status, environment, benchmark
#   summary), pytest_gpu.txt, gpu_bench.log, gpu_bench.json, service.json, service.log, figure2.png,
#   figure2.csv.
set -u -o pipefail
OUT="${1:?usage: [DRY_RUN=1] bash bench/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DRY_RUN="${DRY_RUN:-0}"
T0=$(date +%s)
DEADLINE=$((T0 + ${TOTAL_S:-470}))
STATUS=0
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1
export CUPY_TF32=0 # float32 matmuls in true float32 (no TF32), as the float32 tolerances assume

cap() { # cap SECONDS: SECONDS, or what is left before the deadline (less a 5 s margin) if that is less
  local left=$((DEADLINE - $(date +%s) - 5))
  [ "$left" -lt 1 ] && left=1
  if [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}

step() { # step NAME RC
  local name="$1" rc="$2"
  echo "$(printf '%-12s' "$name") rc=$rc  t=$(($(date +%s) - T0))s" | tee -a "$SUMMARY"
  if [ "$rc" -ne 0 ] && [ "$STATUS" -eq 0 ]; then STATUS="$rc"; fi
}

# ---- 1. install only what is missing ------------------------------------------------------------------
SITE=/tmp/site
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WHEELS=""
RC=0
if [ -d .whl ]; then
  WHEELS=$(timeout 30 "$PY" -m bench.gpu_wheels missing --dest .whl | tr '\n' ' ')
  RC=$?
else
  echo "no .whl/ here: the service step needs lindyn's requirements (python -m bench.gpu_wheels download)"
fi
if [ -n "${WHEELS// /}" ]; then
  echo "installing from carried wheels: $WHEELS"
  # shellcheck disable=SC2086 # one path a word
  timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $WHEELS
  RC=$?
  export PYTHONPATH="$SITE:$PYTHONPATH"
  export PATH="$SITE/bin:$PATH"
else
  echo "nothing to install from .whl/"
fi
step install "$RC"

# ---- 2. environment ---------------------------------------------------------------------------------
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "python: $PY ($($PY -c 'import sys; print(sys.version)' 2>&1))"
  echo "PYTHONPATH=$PYTHONPATH"
  echo "DRY_RUN=$DRY_RUN"
  echo "carried wheels installed: ${WHEELS:-none}"
  timeout 10 nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  timeout 30 "$PY" - <<'EOF' 2>&1
import importlib
for name in ["numpy", "cupy", "pydantic", "pydantic_core", "fastapi", "uvicorn", "celery", "sqlalchemy", "pytest",
             "hypothesis", "torch"]:
    try:
        m = importlib.import_module(name)
        print(f"{name:14s} {getattr(m, '__version__', '?')}  ({getattr(m, '__file__', '')})")
    except Exception as exc:
        print(f"{name:14s} MISSING ({type(exc).__name__}: {exc})")
from dynamics.backend import resolve_backend
be = resolve_backend("auto")
print(f"lindyn backend auto -> {be.name} ({be.device}); cupy usable={be.name == 'cupy'}")
if be.name == "cupy":
    cp = be.xp
    print(f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, driver {cp.cuda.runtime.driverGetVersion()}")
EOF
} >>"$SUMMARY" 2>&1
step env "$?"
tail -n +2 "$SUMMARY"

HAVE_GPU=$(timeout 30 "$PY" -c 'from dynamics.backend import resolve_backend; print(int(resolve_backend("auto").name == "cupy"))' 2>/dev/null || echo 0)
echo "GPU usable by lindyn: $HAVE_GPU"
if [ "$DRY_RUN" != "1" ] && [ "$HAVE_GPU" != "1" ]; then
  echo "no GPU usable here: set DRY_RUN=1 for the CPU dry run" | tee -a "$SUMMARY"
  STATUS=3
fi

# ---- 3. CuPy vs NumPy tests -------------------------------------------------------------------------
# --noconftest: tests/conftest.py holds the service's database fixtures (sqlalchemy, models, ...), which
# tests/dynamics does not use.
if [ "$DRY_RUN" = "1" ]; then
  echo "dry run: pytest -m gpu skipped" | tee "$OUT/pytest_gpu.txt"
else
  timeout "$(cap 100)" "$PY" -m pytest -m gpu tests/dynamics -q -p no:cacheprovider --noconftest -rfEsP 2>&1 | tee "$OUT/pytest_gpu.txt"
  step pytest_gpu "$?"
fi

# ---- 4. Figure 2 through the service: API + `lindyn worker --queues gpu`, "backend": "cupy" --------------
CAP=$(cap 160)
WAIT=$((CAP - 40)) # the sweep's wait; starting the processes and fetching the figure and table take the rest
[ "$WAIT" -lt 10 ] && WAIT=10
if [ "$DRY_RUN" = "1" ]; then
  SERVICE_ARGS=(--backend numpy --d 12 --grid 3 --steps 60 --timeout-s "$WAIT")
else
  SERVICE_ARGS=(--backend cupy --timeout-s "$WAIT")
fi
timeout "$CAP" "$PY" -m bench.gpu_service --out "$OUT" "${SERVICE_ARGS[@]}" 2>&1 | tail -40
step service "$?"

# ---- 5. benchmark ----------------------------------------------------------------------------------
if [ "$DRY_RUN" = "1" ]; then
  BENCH_ARGS=(--backend numpy --small --budget-s 60)
else
  BENCH_ARGS=(--backend cupy --budget-s "$(($(cap 195) - 15))")
fi
timeout "$(cap 195)" "$PY" -m bench.gpu_bench --out "$OUT" "${BENCH_ARGS[@]}" 2>&1 | tee "$OUT/gpu_bench.log"
step gpu_bench "$?"
{
  echo "---- benchmark summary ----"
  cat "$OUT/gpu_bench.txt" 2>/dev/null
} >>"$SUMMARY"
rm -f "$OUT/gpu_bench.txt" # in summary.txt (8 files at most come back from the device)

echo "total $(($(date +%s) - T0))s, status $STATUS" | tee -a "$SUMMARY"
exit "$STATUS"
