#!/bin/sh
# The GPU check, on a Linux x86-64 machine with a GPU and its Vulkan driver: no Node, no npm, no network needed.
# Unpacks payload.tar.xz (beside this script) and runs, each step under its own time limit:
#   adapter  what Dawn (WebGPU) finds
#   greedy   the upstream greedy sequences of the tiny llama and gpt2 on webgpu (the conformance suite's)
#   torch    the LoRA step below in PyTorch (CUDA, eager fp32), where python3 has torch with CUDA
#   handoff  an exported run's train.py (transformers + PEFT under accelerate) against the engine on the tiny llama:
#            per-step losses and the trained adapters' logits (handoff_check.py); its result folder goes to $OUT/handoff
#   step     the LoRA training step and greedy decoding at Qwen2.5-0.5B's shape on webgpu
#   profile  where the step's and a decoded token's time goes: wall time against GPU kernel time (bench/gpu/profile.ts)
#   ops      the op checks against float64 on webgpu
#   dispatches  compute dispatches per LoRA step and per token, with the fused kernels and without
#   report   gpu.md: the results section for bench/results/ (see bench/gpu/README in the repository's README)
# Writes gpu.md, results.json (every step's JSON and status) and run.log to $OUT (default ./gpu-results).
#
#   sh run.sh                 everything (about 6 minutes on an H200; at most about 25)
#   STEPS="ops" sh run.sh     only some steps
#   BUDGET=540 sh run.sh      all within 540 s: each step is cut to the time left, one that has none is not started,
#                             and the report is written all the same (for a machine lent for a fixed time)
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/gpu-results}
work=${LORASMITH_GPU_WORK:-/tmp/lorasmith-gpu-check}
steps=${STEPS:-"adapter greedy torch handoff step profile ops dispatches"}
shape=${SHAPE:-qwen2.5-0.5b}
budget=${BUDGET:-0}
began=$(date +%s)
mkdir -p "$out" "$work"
log="$out/run.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }

if [ ! -x "$work/lorasmith-gpu/bin/node" ]; then
  say "unpacking payload.tar.xz into $work"
  if command -v xz >/dev/null 2>&1; then
    tar -C "$work" -xJf "$here/payload.tar.xz" || exit 1
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$here/payload.tar.xz" "$work" || exit 1
  fi
fi
top="$work/lorasmith-gpu"
results="$work/results"
rm -rf "$results" && mkdir -p "$results"

# Dawn opens the Vulkan loader we carry; the loader finds the GPU's driver through its ICD file.
export LD_LIBRARY_PATH="$top/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
node="$top/bin/node"
check="$top/app/bundle/gpu-check.mjs"

# The machine, as the report names it.
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
printf '{"gpu": "%s", "driver": "%s", "date": "%s", "commit": "%s"}\n' "${gpu:-no NVIDIA GPU found}" "${driver:-unknown}" \
  "$(date -u +%Y-%m-%d)" "$(cat "$top/COMMIT" 2>/dev/null)" > "$results/machine.json"
say "machine: ${gpu:-no NVIDIA GPU found} (driver ${driver:-unknown}); Vulkan driver file: ${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-loader default}}"

status="$results/status.tsv"
: > "$status"
# run NAME SECONDS COMMAND...: stdout's last line to NAME.json, stderr to the log, the exit status to status.tsv.
run() {
  name=$1; limit=$2; shift 2
  case " $steps " in *" $name "*) ;; *) return 0 ;; esac
  if [ "$budget" -gt 0 ]; then
    # 20 s kept for the report
    left=$(( budget - ($(date +%s) - began) - 20 ))
    if [ "$left" -lt 10 ]; then
      printf '%s\t%s\t%s\n' "$name" 124 "not started: BUDGET=${budget}s was spent" >> "$status"
      say "== $name not started: BUDGET=${budget}s was spent"
      return 0
    fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  say "== $name (at most ${limit}s): $*"
  started=$(date +%s)
  timeout "$limit" "$@" > "$results/$name.out" 2> "$results/$name.err"
  code=$?
  cat "$results/$name.err" >> "$log"
  tail -n 1 "$results/$name.out" > "$results/$name.line"
  last=$(tr '\r' '\n' < "$results/$name.err" | grep -v '^\s*$' | tail -n 1 | tr '\t"' '  ')
  printf '%s\t%s\t%s\n' "$name" "$code" "$last" >> "$status"
  say "   exit $code after $(( $(date +%s) - started ))s"
}

# The order puts first what only this machine can measure and what is quick (the peers, the hand-off), so a short
# BUDGET still brings the step; the op checks and the dispatch counts also run in CI on a software GPU.
run adapter 60 "$node" "$check" adapter
run greedy 120 "$node" "$check" greedy --backend webgpu --models "$top/models/tiny-random-llama,$top/models/tiny-random-gpt2"
run torch 180 python3 "$top/peer_torch.py" --device cuda --shape "$shape" --steps 5
run handoff 200 python3 "$top/handoff_check.py" --node "$node" --cli "$top/app/bundle/lorasmith.mjs" --check "$check" \
  --model "$top/models/tiny-random-llama" --work "$work/handoff"
run step 300 "$node" --max-old-space-size=16384 "$check" step --backend webgpu --shape "$shape" --steps 5 --decode 32
run profile 120 "$node" --max-old-space-size=16384 "$check" profile --backend webgpu --shape "$shape"
run ops 240 "$node" "$check" ops --backend webgpu
run dispatches 120 "$node" "$check" dispatches --shape tiny
# train.py's result folder, for `lorasmith import-run` on the machine that made the pack.
if [ -f "$work/handoff/peft/run_info.json" ]; then
  rm -rf "$out/handoff" && mkdir -p "$out/handoff/adapter"
  cp "$work/handoff/peft/run_info.json" "$work/handoff/peft/trainer_state.json" "$work/handoff/peft/run.json" "$out/handoff/"
  cp "$work/handoff/peft/adapter/adapter_config.json" "$work/handoff/peft/adapter/adapter_model.safetensors" "$out/handoff/adapter/"
fi

for name in adapter greedy torch handoff step profile ops dispatches; do
  [ -s "$results/$name.line" ] && cp "$results/$name.line" "$results/$(case $name in ops) echo ops-webgpu;; greedy) echo greedy-webgpu;; step) echo step-webgpu;; torch) echo step-torch;; *) echo $name;; esac).json"
done
python3 - "$results" <<'EOF'
import json, os, sys
d = sys.argv[1]
status = {}
for line in open(os.path.join(d, 'status.tsv'), newline='\n'):
    name, code, last = (line.rstrip('\n').split('\t') + ['', ''])[:3]
    status[name] = {'status': int(code), 'last': last[:300]}
json.dump(status, open(os.path.join(d, 'status.json'), 'w'))
everything = {'status': status}
for name in ('machine', 'adapter', 'ops-webgpu', 'greedy-webgpu', 'dispatches', 'step-webgpu', 'step-torch', 'profile', 'handoff'):
    try:
        everything[name] = json.load(open(os.path.join(d, name + '.json')))
    except Exception as error:
        everything[name] = {'missing': str(error)}
json.dump(everything, open(os.path.join(d, 'results.json'), 'w'), indent=1)
EOF
"$node" "$check" report "$results" > "$out/gpu.md" 2>> "$log"
cp "$results/results.json" "$out/results.json"
say "wrote $out/gpu.md, $out/results.json, $out/run.log"
cat "$out/gpu.md"
