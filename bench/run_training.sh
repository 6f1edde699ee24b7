#!/usr/bin/env bash
# Training throughput: `sdeflow train` vs the same step in a plain PyTorch loop (bench/train_pytorch.py), in one run.
#
#   bench/run_training.sh [options] [build_dir]        (build_dir defaults to build)
#
# For every thread count and batch size, runs sdeflow's default network (mlp, width 128, depth 3, sinusoidal
# embedding 64, silu), process (vp) and loss (noise prediction, variance weighting) on the built-in checkerboard,
# and its PyTorch twin, with the same number of steps, on the CPU and, when both torch and sdeflow see a CUDA
# device, on the GPU. Prints a markdown table: steps/s of each, ratio = sdeflow / PyTorch, peak memory of each.
# Nothing is written to docs: paste the table into docs/benchmarks.md by hand.
#
# What is timed (the same for both, startup and file writing excluded):
#   steps/s      the N steps after W warm-up steps. PyTorch times them in-process; sdeflow runs
#                `sdeflow train --iters W+N` and `--iters W` and divides N by the difference of their
#                wall_time_s (/training attribute: the training loop alone, from the first step to the last,
#                without the process start, the network setup and the final checkpoint write).
#   all steps/s  W+N over the time of all W+N steps (sdeflow: wall_time_s of the W+N run).
#   steps per CPU second  N over the CPU time (user + system, all threads) of the N steps: PyTorch in-process
#                (time.process_time); sdeflow the difference of the two runs' process CPU times (/usr/bin/time: the
#                startup cancels). Robust to other jobs on the machine with 1 thread; with 2 it counts spinning.
#   max RSS      the whole process's peak resident memory (/usr/bin/time -f %M; includes loading LibTorch, or
#                importing torch), of the W+N run.
#   GPU memory   CUDA rows: the peak device memory in use while the process ran, minus the value before it
#                started (nvidia-smi polled every 0.1 s; includes the CUDA context), for both; PyTorch also
#                reports torch.cuda.max_memory_allocated (tensors only).
# Best of --repeat runs for every number (sdeflow: best of each of the two runs); runs alternate between the two.
#
# Options:
#   --threads "T ..."     thread counts (default "1 2"): OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS
#                         for both, and torch.set_num_threads(T) in Python
#   --batches "B ..."     batch sizes (default "256 4096")
#   --steps "N ..."       timed CPU steps per batch size, one per batch (default "1000 150")
#   --cuda-steps "N ..."  timed CUDA steps per batch size (default "3000 3000")
#   --warmup W            warm-up steps (default 50)
#   --repeat R            runs per number, best kept (default 3)
#   --cpu-only            skip the CUDA rows even when a GPU is there
#   --cuda-only           skip the CPU rows
#   --keep DIR            keep all result files and summary.md in DIR (default: temp dir, removed)
#
# Environment: SDEFLOW_VENV (default ~/.local/share/sdeflow/venv): the Python environment with torch and h5py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

die() { echo "run_training.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

threads_list="1 2"
batches="256 4096"
steps_list="1000 150"
cuda_steps_list="3000 3000"
warmup=50
repeat=3
cpu=1; cuda=1
keep=""
build_dir=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads_list="${2:?--threads needs a value}"; shift 2 ;;
    --batches) batches="${2:?--batches needs a value}"; shift 2 ;;
    --steps) steps_list="${2:?--steps needs a value}"; shift 2 ;;
    --cuda-steps) cuda_steps_list="${2:?--cuda-steps needs a value}"; shift 2 ;;
    --warmup) warmup="${2:?--warmup needs a value}"; shift 2 ;;
    --repeat) repeat="${2:?--repeat needs a value}"; shift 2 ;;
    --cpu-only) cuda=0; shift ;;
    --cuda-only) cpu=0; shift ;;
    --keep) keep="${2:?--keep needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$build_dir" ]] || die "more than one build directory given ('$build_dir', '$1')"
       build_dir="$1"; shift ;;
  esac
done
read -r -a batch_arr <<< "$batches"
read -r -a steps_arr <<< "$steps_list"
read -r -a cuda_steps_arr <<< "$cuda_steps_list"
[[ ${#steps_arr[@]} -eq ${#batch_arr[@]} ]] || die "--steps needs one value per batch size (${#batch_arr[@]})"
[[ ${#cuda_steps_arr[@]} -eq ${#batch_arr[@]} ]] || die "--cuda-steps needs one value per batch size (${#batch_arr[@]})"
for v in $threads_list "${batch_arr[@]}" "${steps_arr[@]}" "${cuda_steps_arr[@]}" "$repeat"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: '$v'"
done
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer, got '$warmup'"

# --- prerequisites ---------------------------------------------------------------------------------
venv="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}"
py="$venv/bin/python"
[[ -x "$py" ]] || die "Python environment not found at $venv (set SDEFLOW_VENV, or run scripts/install-deps.sh)"
"$py" -c "import torch, h5py" 2>/dev/null || die "$py lacks torch or h5py (run scripts/install-deps.sh)"
build_dir="${build_dir:-$repo/build}"
sdeflow="$build_dir/bin/sdeflow"
[[ -x "$sdeflow" ]] || die "$sdeflow not found (build first: scripts/build.sh)"

if [[ -n "$keep" ]]; then
  mkdir -p "$keep"; work="$(cd "$keep" && pwd)"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/sdeflow-train-bench.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi

# Peak RSS (KiB), user and system CPU seconds of a command into $1 ("KiB user sys"): /usr/bin/time when present,
# else Python's RUSAGE_CHILDREN.
measure() {
  local rss_file="$1"; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "%M %U %S" -o "$rss_file" "$@"
  else
    "$py" -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%d %.3f %.3f\n" % (u.ru_maxrss, u.ru_utime, u.ru_stime))
sys.exit(r)' "$rss_file" "$@"
  fi
}

# Peak GPU memory in use (MiB, device-wide, minus the level before) while "$@" runs, into $1 (CUDA rows only).
have_smi=0; command -v nvidia-smi >/dev/null 2>&1 && have_smi=1
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -1 | tr -d ' '; }
with_gpu_poll() {
  local out="$1"; shift
  if [[ $have_smi -eq 0 || "$device" != cuda ]]; then "$@"; return; fi
  local base; base="$(gpu_used)"; base="${base:-0}"
  ( peak=0; while :; do u="$(gpu_used)"; [[ "${u:-0}" -gt $peak ]] && peak="$u"; echo $((peak - base)) > "$out"; sleep 0.1; done ) &
  local poller=$!
  local rc=0; "$@" || rc=$?
  sleep 0.2; kill "$poller" 2>/dev/null; wait "$poller" 2>/dev/null || true
  return $rc
}

sdeflow_run() {   # device threads batch iters tag
  local dev="$1" t="$2" b="$3" iters="$4" tag="$5"
  OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" \
    with_gpu_poll "$work/$tag.gpu" measure "$work/$tag.rss" \
    "$sdeflow" train --data checkerboard --iters "$iters" --batch "$b" --device "$dev" --quiet \
    --checkpoint-every "$iters" --out "$work/$tag.h5" > "$work/$tag.log" 2>&1 \
    || { cat "$work/$tag.log" >&2; die "sdeflow train failed ($tag)"; }
  "$py" - "$work/$tag.h5" "$work/$tag.rss" "$work/$tag.gpu" "$iters" > "$work/$tag.json" <<'EOF'
import json, os, sys
import h5py
path, rss, gpu, iters = sys.argv[1:5]
with h5py.File(path, "r") as f:
    attrs = f["training"].attrs
    out = {"wall_time_s": float(attrs["wall_time_s"]), "steps": int(attrs["steps"]), "final_loss": float(attrs["final_loss"])}
kib, user, system = open(rss).read().split()[-3:]
out["max_rss_mib"] = int(kib) / 1024.0
out["process_cpu_s"] = float(user) + float(system)   # the whole process, startup included
if os.path.exists(gpu):
    out["gpu_mib"] = float(open(gpu).read().split()[0])
print(json.dumps(out))
EOF
}

pytorch_run() {   # device threads batch warmup steps tag
  local dev="$1" t="$2" b="$3" w="$4" n="$5" tag="$6"
  OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" \
    with_gpu_poll "$work/$tag.gpu" measure "$work/$tag.rss" \
    "$py" "$here/train_pytorch.py" --device "$dev" --batch "$b" --steps "$n" --warmup-steps "$w" \
    --threads "$t" --json "$work/$tag.json" > "$work/$tag.log" 2>&1 \
    || { cat "$work/$tag.log" >&2; die "train_pytorch.py failed ($tag)"; }
  if [[ -f "$work/$tag.gpu" ]]; then
    "$py" - "$work/$tag.json" "$work/$tag.gpu" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); r["gpu_mib"] = float(open(sys.argv[2]).read().split()[0])
json.dump(r, open(sys.argv[1], "w"))
EOF
  fi
}

# --- which devices ---------------------------------------------------------------------------------
devices=()
[[ $cpu -eq 1 ]] && devices+=(cpu)
cuda_note=""
if [[ $cuda -eq 1 ]]; then
  torch_cuda="$("$py" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
  sdeflow_cuda=0
  if "$sdeflow" train --data checkerboard --iters 1 --batch 8 --device cuda --quiet --checkpoint-every 1 \
       --out "$work/cuda-probe.h5" > "$work/cuda-probe.log" 2>&1; then sdeflow_cuda=1; fi
  if [[ "$torch_cuda" == 1 && $sdeflow_cuda -eq 1 ]]; then
    devices+=(cuda)
  else
    cuda_note="CUDA rows: NOT RUN (torch.cuda.is_available() = $torch_cuda, sdeflow --device cuda works = $sdeflow_cuda):"
    cuda_note+=" the GPU rows are still to be run, on a machine with an NVIDIA GPU: bench/run_training.sh --cuda-only"
  fi
fi
[[ ${#devices[@]} -gt 0 ]] || die "nothing to run (no CPU rows asked for and no CUDA device)"

echo "run_training.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "  sdeflow: $sdeflow; python: $py (torch $("$py" -c 'import torch; print(torch.__version__)'))" >&2
echo "  warm-up $warmup steps, repeat $repeat, results in $work" >&2
[[ -n "$cuda_note" ]] && echo "  $cuda_note" >&2

# The memory of loading the libraries alone (no training), for reading the max RSS columns.
measure "$work/base-sdeflow.rss" "$sdeflow" --version > /dev/null
measure "$work/base-pytorch.rss" "$py" -c "import torch" > /dev/null

rows="$work/rows.txt"; : > "$rows"
for dev in "${devices[@]}"; do
  device="$dev"
  tlist="$threads_list"; [[ "$dev" == cuda ]] && tlist="${threads_list%% *}"   # CUDA: the first thread count only
  for t in $tlist; do
    for i in "${!batch_arr[@]}"; do
      b="${batch_arr[$i]}"
      n="${steps_arr[$i]}"; [[ "$dev" == cuda ]] && n="${cuda_steps_arr[$i]}"
      for r in $(seq 1 "$repeat"); do
        tag="$dev-t$t-b$b-r$r"
        echo "  $tag: sdeflow $((warmup + n)) + $warmup steps, pytorch $warmup + $n steps" >&2
        sdeflow_run "$dev" "$t" "$b" "$((warmup + n))" "sdeflow-full-$tag"
        [[ $warmup -gt 0 ]] && sdeflow_run "$dev" "$t" "$b" "$warmup" "sdeflow-warm-$tag"
        pytorch_run "$dev" "$t" "$b" "$warmup" "$n" "pytorch-$tag"
      done
      echo "$dev $t $b $warmup $n" >> "$rows"
    done
  done
done
echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$py" - "$work" "$rows" "$repeat" > "$work/summary.md" <<'EOF'
import json, os, sys
work, rows, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = {k: int(open(os.path.join(work, f"base-{k}.rss")).read().split()[-3]) / 1024.0 for k in ("sdeflow", "pytorch")}
def load(name):
    p = os.path.join(work, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}g}"
print("| device | threads | batch | timed steps | sdeflow steps/s | PyTorch steps/s | ratio sdeflow / PyTorch "
      "| steps per CPU second: sdeflow / PyTorch (ratio) | all steps: sdeflow / PyTorch steps/s (ratio) | max RSS sdeflow / PyTorch (MiB) | GPU memory sdeflow / PyTorch (MiB) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(rows):
    dev, t, b, w, n = line.split()
    w, n = int(w), int(n)
    full = [load(f"sdeflow-full-{dev}-t{t}-b{b}-r{r}") for r in range(1, repeat + 1)]
    warm = [load(f"sdeflow-warm-{dev}-t{t}-b{b}-r{r}") for r in range(1, repeat + 1)] if w > 0 else []
    pt = [load(f"pytorch-{dev}-t{t}-b{b}-r{r}") for r in range(1, repeat + 1)]
    full_s = min(x["wall_time_s"] for x in full)
    warm_s = min(x["wall_time_s"] for x in warm) if warm else 0.0
    # A difference of two runs: a busy machine can make it meaningless (<= 0); such rows say so.
    rate = lambda steps, seconds: steps / seconds if seconds > 0 else float("nan")
    s_rate = rate(n, full_s - warm_s)
    s_all = (w + n) / full_s
    p_rate = max(x["steps_per_s"] for x in pt)
    p_all = max(x["all_steps_per_s"] for x in pt)
    s_cpu = rate(n, min(x["process_cpu_s"] for x in full) - (min(x["process_cpu_s"] for x in warm) if warm else 0.0))
    p_cpu = n / min(x["timed_cpu_s"] for x in pt)
    s_rss = max(x["max_rss_mib"] for x in full)
    p_rss = max(x["max_rss_mib"] for x in pt)
    gpu = "—"
    if dev == "cuda":
        sg = max((x.get("gpu_mib") for x in full if x.get("gpu_mib") is not None), default=None)
        pg = max((x.get("gpu_mib") for x in pt if x.get("gpu_mib") is not None), default=None)
        pa = max(x["cuda_max_allocated_mib"] for x in pt)
        gpu = f"{fmt(sg, 4)} / {fmt(pg, 4)} (PyTorch max_memory_allocated {pa:.1f})"
    print(f"| {dev} | {t} | {b} | {n} | {s_rate:.1f} | {p_rate:.1f} | **{s_rate / p_rate:.2f}** "
          f"| {s_cpu:.1f} / {p_cpu:.1f} ({s_cpu / p_cpu:.2f}) | {s_all:.1f} / {p_all:.1f} ({s_all / p_all:.2f}) | {s_rss:.0f} / {p_rss:.0f} | {gpu} |")
print()
print(f"Max RSS of loading the libraries alone, no training: sdeflow --version {base['sdeflow']:.0f} MiB, "
      f"python -c 'import torch' {base['pytorch']:.0f} MiB.")
EOF
cat "$work/summary.md"
[[ -n "$cuda_note" ]] && echo && echo "$cuda_note"
exit 0
