#!/usr/bin/env bash
# Likelihood benchmark: sdeflow nll vs scipy solve_ivp(RK45) vs torchdiffeq odeint(dopri5), in one run.
#
#   bench/run_likelihood.sh [options] [build_dir]        (build_dir defaults to build)
#
# Makes a random Gaussian-mixture problem (bench/make_problem.py) in a temporary directory, computes
# the exact log p_0 of the data, runs `BUILD/bin/sdeflow nll` with each solver and the two Python
# baselines (bench/likelihood_baselines.py) at the same tolerances, eps and prior (exact), and prints a
# markdown table (bench/summarize_likelihood.py): wall time, NFE, error against the exact density,
# failures, and each method's time relative to sdeflow dopri5. Nothing is written to docs: paste the
# table into docs/benchmarks.md by hand.
#
# Options:
#   --threads T        threads for everything (default 1): exported as OMP_NUM_THREADS (sdeflow reads it),
#                      MKL_NUM_THREADS, OPENBLAS_NUM_THREADS, and passed as --threads to the baselines
#   --tight            also run at rtol = atol = 1e-8
#   --tols "A B ..."   tolerance list (rtol = atol), overrides the default "1e-5" (and --tight)
#   --solvers "A B"    sdeflow solvers (default "dopri5 dopri5-shared cvode-adams cvode-bdf arkode-dp")
#   --dim D --components K --n N --seed S      problem (default 8, 8, 1000, 0); sdeflow gets --batch N
#   --eps E            start time of the ODE (default 1e-5)
#   --repeat R         repetitions per method, best time reported (default 3)
#   --keep DIR         keep the problem, results and summary.md in DIR (default: temp dir, removed)
#   --baselines-only   skip sdeflow (e.g. before the nll subcommand exists)
#
# Environment: SDEFLOW_VENV (default ~/.local/share/sdeflow/venv) is the Python environment with
# numpy, scipy, h5py, torch and torchdiffeq.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

die() { echo "run_likelihood.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

threads=1
tols=""
tight=0
solvers="dopri5 dopri5-shared cvode-adams cvode-bdf arkode-dp"
dim=8; components=8; n=1000; seed=0
eps=1e-5
repeat=3
keep=""
baselines_only=0
build_dir=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="${2:?--threads needs a value}"; shift 2 ;;
    --tight) tight=1; shift ;;
    --tols) tols="${2:?--tols needs a value}"; shift 2 ;;
    --solvers) solvers="${2:?--solvers needs a value}"; shift 2 ;;
    --dim) dim="${2:?}"; shift 2 ;;
    --components) components="${2:?}"; shift 2 ;;
    --n) n="${2:?}"; shift 2 ;;
    --seed) seed="${2:?}"; shift 2 ;;
    --eps) eps="${2:?}"; shift 2 ;;
    --repeat) repeat="${2:?}"; shift 2 ;;
    --keep) keep="${2:?--keep needs a directory}"; shift 2 ;;
    --baselines-only) baselines_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$build_dir" ]] || die "more than one build directory given ('$build_dir', '$1')"
       build_dir="$1"; shift ;;
  esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$repeat'"
if [[ -z "$tols" ]]; then
  tols="1e-5"
  [[ $tight -eq 1 ]] && tols="$tols 1e-8"
fi

# --- prerequisites ---------------------------------------------------------------------------------
venv="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}"
py="$venv/bin/python"
[[ -x "$py" ]] || die "Python environment not found at $venv (set SDEFLOW_VENV, or run scripts/install-deps.sh)"
"$py" -c "import numpy, scipy, h5py, torch, torchdiffeq" 2>/dev/null \
  || die "$py lacks one of numpy, scipy, h5py, torch, torchdiffeq (run scripts/install-deps.sh)"

sdeflow=""
if [[ $baselines_only -eq 0 ]]; then
  build_dir="${build_dir:-build}"
  [[ "$build_dir" = /* ]] || build_dir="$repo/$build_dir"
  [[ -d "$build_dir" ]] || die "build directory '$build_dir' does not exist (build with scripts/build.sh, or pass one, or use --baselines-only)"
  sdeflow="$build_dir/bin/sdeflow"
  [[ -x "$sdeflow" ]] || die "'$sdeflow' not found or not executable (build first: scripts/build.sh)"
  # an older build's CLI may print the top-level help for an unknown subcommand: look for it in the list
  "$sdeflow" --help 2>/dev/null | grep -Eq '^[[:space:]]+nll([[:space:]]|$)' \
    || die "'$sdeflow' has no working 'nll' subcommand (rebuild, or use --baselines-only)"
fi

export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"

if [[ -n "$keep" ]]; then
  mkdir -p "$keep"; work="$(cd "$keep" && pwd)"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/sdeflow-bench.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
model="$work/model.h5"; data="$work/data.h5"; manifest="$work/manifest.tsv"
: > "$manifest"

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

echo "== problem: D=$dim K=$components N=$n seed=$seed, eps=$eps, prior exact, threads=$threads, tols: $tols" >&2
"$py" "$here/make_problem.py" --dim "$dim" --components "$components" --n "$n" --seed "$seed" \
  --model "$model" --data "$data"
"$py" "$here/likelihood_baselines.py" --model "$model" --data "$data" --method exact \
  --json "$work/exact.json" > "$work/exact.txt"

for tol in $tols; do
  if [[ -n "$sdeflow" ]]; then
    for s in $solvers; do
      for ((rep = 1; rep <= repeat; rep++)); do
        out="$work/sdeflow-$s-$tol-$rep.h5"; log="$work/sdeflow-$s-$tol-$rep.log"
        echo "== sdeflow nll --solver $s --rtol $tol --atol $tol (run $rep/$repeat)" >&2
        t0="$(now)"; rc=0
        "$sdeflow" nll --model "$model" --data "$data" --solver "$s" --rtol "$tol" --atol "$tol" \
          --trace analytic --prior exact --eps "$eps" --batch "$n" --out "$out" --quiet \
          >"$log" 2>&1 || rc=$?
        t1="$(now)"
        if [[ $rc -ne 0 ]]; then
          echo "   exit status $rc; last lines of $log:" >&2; tail -n 5 "$log" | sed 's/^/   /' >&2
        fi
        printf 'sdeflow\t%s\t%s\t%d\t%s\t%d\t%s\n' "$s" "$tol" "$rep" "$out" "$rc" "$(elapsed "$t0" "$t1")" >> "$manifest"
      done
    done
  fi
  for m in scipy-rk45 torchdiffeq-dopri5; do
    out="$work/$m-$tol.json"; log="$work/$m-$tol.log"
    echo "== $m --rtol $tol --atol $tol (best of $repeat)" >&2
    t0="$(now)"; rc=0
    "$py" "$here/likelihood_baselines.py" --model "$model" --data "$data" --method "$m" \
      --rtol "$tol" --atol "$tol" --eps "$eps" --prior exact --threads "$threads" --repeat "$repeat" \
      --json "$out" >"$log" 2>&1 || rc=$?
    t1="$(now)"
    sed 's/^/   /' "$log" >&2
    printf 'python\t%s\t%s\t%d\t%s\t%d\t%s\n' "$m" "$tol" 1 "$out" "$rc" "$(elapsed "$t0" "$t1")" >> "$manifest"
  done
done

cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
versions="$("$py" -c 'import sys, numpy, scipy, torch, torchdiffeq as td
print("python %s, numpy %s, scipy %s, torch %s, torchdiffeq %s" % (sys.version.split()[0], numpy.__version__,
      scipy.__version__, torch.__version__, getattr(td, "__version__", "?")))')"
sdeflow_version="n/a"
[[ -n "$sdeflow" ]] && sdeflow_version="$("$sdeflow" --version 2>/dev/null | head -n 1 || echo '?')"
header="Likelihood benchmark, $(date -u +%Y-%m-%d): D=$dim, K=$components, N=$n (seed $seed), VP (beta 0.1..20), eps=$eps, T=1, prior exact, trace analytic, $threads thread(s), best of $repeat. Machine: ${cpu:-unknown CPU}, $(getconf _NPROCESSORS_ONLN) cores. sdeflow: $sdeflow_version; $versions."

"$py" "$here/summarize_likelihood.py" --manifest "$manifest" --exact "$work/exact.json" \
  --header "$header" | tee "$work/summary.md"
[[ -n "$keep" ]] && echo "(results kept in $work)" >&2
exit 0
