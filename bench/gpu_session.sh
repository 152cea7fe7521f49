#!/usr/bin/env bash
# Everything a GPU session measures, in one device call (from the repo root,
# after bench/gpu_bundle.sh here):  run(command="bash bench/gpu_session.sh",
# carry=["build-gpu"]). Writes under $OUT/bench/results/:
#   gpu-tests.txt            the GPU kernel tests and the GPU trainer tests
#   gpu-train.json, .md      sagerun's GPT-2 124M training throughput beside
#                            PyTorch's eager and torch.compile on the same
#                            model, batch and device, with the command lines
set -uo pipefail
root=$PWD
results=${OUT:-/tmp/sagerun-gpu-session}/bench/results
mkdir -p "$results"
batch=${SAGERUN_BENCH_BATCH:-8}
steps=${SAGERUN_BENCH_STEPS:-40}

# cuBLAS and NCCL from the machine's CUDA and PyTorch's wheels.
py_libs=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "*", "lib")))))' 2>/dev/null || true)
export LD_LIBRARY_PATH=$root/build-gpu/deps:/usr/local/cuda/lib64:$py_libs:${LD_LIBRARY_PATH:-}
sagerun=$root/build-gpu/launcher/sagerun

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "== build-gpu/tests/test_cuda_kernels"
  "$root/build-gpu/tests/test_cuda_kernels" 2>&1
  echo "exit $?"
  echo "== build-gpu/tests/test_gpu_train"
  "$root/build-gpu/tests/test_gpu_train" "$sagerun" 2>&1
  echo "exit $?"
} > "$results/gpu-tests.txt" 2>&1
tail -n 30 "$results/gpu-tests.txt"

# sagerun's trainer on a sample job: GPT-2 124M, batch x 1024 tokens a step.
job=$(mktemp -d)
"$sagerun" sample --out "$job" --hosts 1 --no-encryption > /dev/null
cat > "$job/algo-1/input/config/hyperparameters.json" <<JSON
{"model": "gpt2-124m", "batch_size": "$batch", "max_steps": "$steps", "log_interval": "10",
 "val_interval": "0", "checkpoint_interval": "0", "warmup_steps": "5"}
JSON
train_cmd="sagerun train --ml-root <job> (gpt2-124m, batch_size $batch, seq 1024, $steps steps, bf16, 1 GPU)"
"$sagerun" train --ml-root "$job/algo-1" > "$results/gpu-train-sagerun.log" 2>&1
echo "sagerun train: exit $?"
grep -E '^\[metrics\]|rank 0 on GPU' "$results/gpu-train-sagerun.log" | tail -n 5

torch_cmd="python3 bench/torch_gpt2.py --batch $batch --seq 1024 --steps 20 --warmup 5"
python3 bench/torch_gpt2.py --batch "$batch" --seq 1024 --steps 20 --warmup 5 > "$results/gpu-train-torch.jsonl" \
  2> "$results/gpu-train-torch.err"
echo "torch: exit $?"
cat "$results/gpu-train-torch.jsonl"

python3 - "$results" "$train_cmd" "$torch_cmd" <<'PY'
import json, re, sys
results, train_cmd, torch_cmd = sys.argv[1:]
log = open(f"{results}/gpu-train-sagerun.log").read()
lines = [l for l in log.splitlines() if l.startswith("[metrics]") and "tokens_per_sec=" in l]
# The first interval holds the warm-up; the last ones are steady state.
fields = dict(kv.split("=") for kv in lines[-1].split()[1:]) if lines else {}
sagerun = {"framework": "sagerun", "tokens_per_sec": float(fields.get("tokens_per_sec", 0)),
           "step_ms": float(fields.get("step_ms", 0)), "mfu": float(fields.get("mfu", 0)),
           "final_loss": float(fields.get("train_loss", 0)), "command": train_cmd}
torch_runs = [json.loads(l) for l in open(f"{results}/gpu-train-torch.jsonl") if l.strip()]
for t in torch_runs:
    t["command"] = torch_cmd + " (mode " + t["mode"] + ")"
compiled = next((t for t in torch_runs if t["mode"] == "compile"), None)
summary = {"sagerun": sagerun, "pytorch": torch_runs,
           "ratio_vs_torch_compile": round(sagerun["tokens_per_sec"] / compiled["tokens_per_sec"], 3)
           if compiled and compiled["tokens_per_sec"] else None}
json.dump(summary, open(f"{results}/gpu-train.json", "w"), indent=2)
with open(f"{results}/gpu-train.md", "w") as md:
    md.write("| trainer | tokens/s | ms/step | MFU |\n| --- | ---: | ---: | ---: |\n")
    md.write(f"| sagerun | {sagerun['tokens_per_sec']:.0f} | {sagerun['step_ms']:.1f} | {sagerun['mfu']:.3f} |\n")
    for t in torch_runs:
        md.write(f"| PyTorch {t['mode']} | {t['tokens_per_sec']:.0f} | {t['step_ms']:.1f} | |\n")
    md.write(f"\nsagerun / torch.compile: {summary['ratio_vs_torch_compile']}\n")
print(open(f"{results}/gpu-train.md").read())
PY
rm -rf "$job"
