#!/usr/bin/env bash
# What a GPU session measures, one phase per device call (each well inside
# the tool's 10 minutes and 8 returned files). After bench/gpu_bundle.sh
# here:  run(command="bash bench/gpu_session.sh PHASE", carry=["build-gpu-bundle"])
# Each phase writes under $OUT/bench/results/ (commit them there):
#   tests     gpu-tests.txt: the GPU kernel, trainer and benchmark tests
#   train     gpu-train.json, .md: sagerun's GPT-2 124M training throughput
#             (fused attention, and materialized) beside PyTorch eager and
#             torch.compile on the same model, batch and device, with the
#             command lines; gpu-attention.jsonl: fused against materialized
#             attention alone (sagerun-attention-bench); gpu-train-logs.tar.gz
#   capacity  gpu-bench.{txt,json}, gpu-validate.{txt,json,svg}: `sagerun
#             bench` and `sagerun validate` on this machine, and the ratio of
#             sagerun's cuBLASLt GEMM rate to PyTorch's torch.matmul measured
#             in the same call (gpu-gemm-vs-torch.json)
set -uo pipefail
phase=${1:?usage: gpu_session.sh tests|train|capacity}
root=$PWD
bundle=$root/build-gpu-bundle
results=${OUT:-/tmp/sagerun-gpu-session}/bench/results
work=$(mktemp -d)
mkdir -p "$results"
trap 'rm -rf "$work"' EXIT

# cuBLAS and NCCL from the machine's CUDA and PyTorch's wheels.
py_libs=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "*", "lib")))))' 2>/dev/null || true)
export LD_LIBRARY_PATH=$bundle/deps:/usr/local/cuda/lib64:$py_libs:${LD_LIBRARY_PATH:-}
sagerun=$bundle/bin/sagerun
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
header() { echo "# $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"; }

# The SageMaker instance type whose GPUs this machine has, for the baselines.
instance_type() {
  case "$gpu_name" in
    *H200*) echo ml.p5e.48xlarge ;;
    *H100*) echo ml.p5.48xlarge ;;
    *A100*80GB*) echo ml.p4de.24xlarge ;;
    *A100*) echo ml.p4d.24xlarge ;;
    *) echo ml.g5.xlarge ;;
  esac
}

phase_tests() {
  {
    header
    for t in test_cuda_kernels test_gpu_train test_gpu_bench; do
      echo "== $t"
      if [ "$t" = test_cuda_kernels ]; then "$bundle/bin/$t"; else "$bundle/bin/$t" "$sagerun"; fi
      echo "exit $?"
    done
  } > "$results/gpu-tests.txt" 2>&1
  grep -E '^(==|exit|\[  (PASSED|FAILED)|SKIPPED)' "$results/gpu-tests.txt"
}

# A one-host sample job at $1 training GPT-2 124M with attention $2.
gpt2_job() {
  "$sagerun" sample --out "$1" --hosts 1 --no-encryption --instance-type "$(instance_type)" > /dev/null
  cat > "$1/algo-1/input/config/hyperparameters.json" <<JSON
{"model": "gpt2-124m", "batch_size": "$batch", "max_steps": "$steps", "log_interval": "10",
 "val_interval": "0", "checkpoint_interval": "0", "warmup_steps": "5", "attention": "$2"}
JSON
}

phase_train() {
  local batch=${SAGERUN_BENCH_BATCH:-8} steps=${SAGERUN_BENCH_STEPS:-40} logs=$work/logs
  mkdir -p "$logs"
  local train_cmd="sagerun train --ml-root <job> (gpt2-124m, batch_size $batch, seq 1024, $steps steps, bf16, 1 GPU)"
  gpt2_job "$work/job" auto
  "$sagerun" train --ml-root "$work/job/algo-1" > "$logs/sagerun-train.log" 2>&1
  echo "sagerun train: exit $?"
  grep -E '^\[metrics\]|GPU' "$logs/sagerun-train.log" | tail -n 5
  # The same run with the scores materialized: the fused kernel's peer.
  gpt2_job "$work/job-materialized" materialized
  "$sagerun" train --ml-root "$work/job-materialized/algo-1" > "$logs/sagerun-train-materialized.log" 2>&1
  echo "sagerun train (materialized attention): exit $?"
  "$bundle/bin/sagerun-attention-bench" --batch "$batch" --seq 1024 --seq 2048 --seq 4096 \
    > "$results/gpu-attention.jsonl" 2> "$logs/attention-bench.err"
  echo "sagerun-attention-bench --batch $batch --seq 1024 --seq 2048 --seq 4096: exit $?"
  cat "$results/gpu-attention.jsonl"
  local torch_cmd="python3 bench/torch_gpt2.py --batch $batch --seq 1024 --steps 20 --warmup 5"
  python3 bench/torch_gpt2.py --batch "$batch" --seq 1024 --steps 20 --warmup 5 > "$logs/torch.jsonl" \
    2> "$logs/torch.err"
  echo "torch: exit $?"
  cat "$logs/torch.jsonl"
  python3 - "$logs" "$results" "$train_cmd" "$torch_cmd" "$(header)" <<'PY'
import json, sys
logs, results, train_cmd, torch_cmd, header = sys.argv[1:]
def sagerun_run(log, attention):
    lines = [l for l in open(log) if l.startswith("[metrics]") and "tokens_per_sec=" in l]
    # The first interval holds the warm-up; the last is steady state.
    fields = dict(kv.split("=", 1) for kv in lines[-1].split()[1:]) if lines else {}
    return {"framework": "sagerun", "attention": attention, "tokens_per_sec": float(fields.get("tokens_per_sec", 0)),
            "step_ms": float(fields.get("step_ms", 0)), "mfu": float(fields.get("mfu", 0)),
            "final_loss": float(fields.get("train_loss", 0)), "command": f"{train_cmd}, attention {attention}"}
sagerun = sagerun_run(f"{logs}/sagerun-train.log", "auto (flash)")
materialized = sagerun_run(f"{logs}/sagerun-train-materialized.log", "materialized")
torch_runs = [json.loads(l) for l in open(f"{logs}/torch.jsonl") if l.strip()]
for t in torch_runs:
    t["command"] = torch_cmd + " (mode " + t["mode"] + ")"
compiled = next((t for t in torch_runs if t["mode"] == "compile"), None)
ratio = (round(sagerun["tokens_per_sec"] / compiled["tokens_per_sec"], 3)
         if compiled and compiled["tokens_per_sec"] else None)
flash_ratio = (round(sagerun["tokens_per_sec"] / materialized["tokens_per_sec"], 3)
               if materialized["tokens_per_sec"] else None)
summary = {"machine": header, "sagerun": sagerun, "sagerun_materialized": materialized, "pytorch": torch_runs,
           "ratio_vs_torch_compile": ratio, "ratio_flash_vs_materialized": flash_ratio}
json.dump(summary, open(f"{results}/gpu-train.json", "w"), indent=2)
with open(f"{results}/gpu-train.md", "w") as md:
    md.write(f"{header}\n\n| trainer | tokens/s | ms/step | MFU |\n| --- | ---: | ---: | ---: |\n")
    for run in (sagerun, materialized):
        md.write(f"| sagerun, {run['attention']} attention | {run['tokens_per_sec']:.0f} | {run['step_ms']:.1f} "
                 f"| {run['mfu']:.3f} |\n")
    for t in torch_runs:
        md.write(f"| PyTorch {t['mode']} | {t['tokens_per_sec']:.0f} | {t['step_ms']:.1f} | |\n")
    md.write(f"\nsagerun / torch.compile: {ratio}; flash / materialized attention: {flash_ratio}\n")
print(open(f"{results}/gpu-train.md").read())
PY
  tar -C "$logs" -czf "$results/gpu-train-logs.tar.gz" .
}

phase_capacity() {
  local job=$work/job
  "$sagerun" sample --out "$job" --hosts 1 --no-encryption --instance-type "$(instance_type)" > /dev/null
  "$sagerun" bench --ml-root "$job/algo-1" --train-preset gpt2-124m --train-batch 8 > "$work/bench.log" 2>&1
  echo "sagerun bench: exit $?"
  cp "$job/algo-1/output/data/sagerun-bench.txt" "$results/gpu-bench.txt"
  cp "$job/algo-1/output/data/sagerun-bench.json" "$results/gpu-bench.json"
  "$sagerun" validate --ml-root "$job/algo-1" --train-preset gpt2-124m --train-batch 8 > "$work/validate.log" 2>&1
  echo "sagerun validate: exit $?"
  for f in txt json svg; do cp "$job/algo-1/output/data/sagerun-validate.$f" "$results/gpu-validate.$f"; done
  cat "$results/gpu-validate.txt"
  python3 bench/torch_gemm.py --size 8192 --repeats 10 --warmup 2 > "$work/torch-gemm.json"
  echo "torch gemm: exit $?"
  python3 - "$results" "$work/torch-gemm.json" "$(header)" <<'PY'
import json, sys
results, torch_path, header = sys.argv[1:]
bench = json.load(open(f"{results}/gpu-bench.json"))["results"]["ranks"][0]["metrics"]
torch = json.load(open(torch_path))
out = {"machine": header, "commands": {
           "sagerun": "sagerun bench --ml-root <job> (gemm 8192^3, 10 timed runs after 2, median)",
           "torch": "python3 bench/torch_gemm.py --size 8192 --repeats 10 --warmup 2"},
       "sagerun_tflops": {t: bench[f"gemm_{t}_tflops"] for t in ("bf16", "fp16", "tf32")},
       "torch_tflops": torch["tflops"], "torch": torch["torch"]}
out["ratio"] = {t: round(out["sagerun_tflops"][t] / out["torch_tflops"][t], 3) for t in out["torch_tflops"]}
json.dump(out, open(f"{results}/gpu-gemm-vs-torch.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
}

"phase_$phase"
