#!/bin/bash
# One device call for issues 17 and 21, run from the repository root on a GPU machine without network:
#   bash benchmarks/gpu_session.sh [tests] [eval] [13b] [VARIANTS]
# tests: the `gpu`-marked tests (tests/integration/test_where.py; two of them want 2 GPUs);
# eval:  the full JGLUE dev sets through lm-evaluation-harness on GPU 0 (benchmarks/eval_throughput.py
#        --modes none --harness), one run per ';'-separated eval.jglue variant in VARIANTS (e.g.
#        'generation=engine;generation=harness' or 'loglikelihood=harness;loglikelihood=shared'), each timed
#        by phase, with ratios of each run against the first; HARNESS_TASKS=jcommonsenseqa,jnli times the
#        loglikelihood tasks only (default: jcommonsenseqa,jnli,jsquad); PROCESS_ENVS='A=1;B=2' runs all of
#        that once per environment, each in a fresh process (e.g. PYTORCH_ALLOC_CONF=expandable_segments:True).
# 13b:   issue 20's cells of llm-jp-13b's architecture (benchmarks/zero3_13b.py; CELLS13 names them,
#        default zero3; ARGS13 adds arguments), their cell logs copied to $OUT.
# evalplan: the runs of the plan file in EVAL_PLAN, in order, each a fresh process on GPU 0 (one line each:
#        `[ENV=VALUE ...] -- <benchmarks/eval_throughput.py arguments>`, '#' starts a comment; --jglue, --modes none
#        and --harness are given), as long as the command's time lasts; logs and JSON are $OUT/plan_<n>.*.
# decodestep: benchmarks/decode_step.py (what one decoding step costs by batch size and cache, profiled) on GPU 0,
#        with DECODE_ARGS.
# probe13b: one GPU, llm-jp-13b's architecture as a LoRA cell (benchmarks/cell_throughput.py, profiled), with
#        GPT-2's default dropout and with dropout 0 (the varlen kernel has no dropout), after the 13b cells.
# Needs .whl/site*.tar.xz and .whl/unidic.tar.xz (benchmarks/pack_site.sh builds them here) and
# .bench/jglue-v1.3 (a copy of ../shared/data/jglue-v1.3). Writes logs and JSON under $OUT.
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/site
t0=$(date +%s)
for a in .whl/*.tar.xz; do tar -xJf "$a" -C /tmp/site || exit 1; done
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 TOKENIZERS_PARALLELISM=false \
       JSWEEP_CACHE=/tmp/jsweep-cache
{
  echo "unpacked in $(( $(date +%s) - t0 )) s"; nvidia-smi; nproc
  python3 -c 'import sys, torch, transformers, lm_eval, datasets; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(), "transformers", transformers.__version__, "lm_eval", lm_eval.__version__, "datasets", datasets.__version__)'
  python3 -c 'import trl, mlflow, peft, hydra; print("trl", trl.__version__, "mlflow", mlflow.__version__, "peft", peft.__version__, "hydra", hydra.__version__)'
  python3 -c 'import fugashi, unidic_lite; print(fugashi.Tagger("-Owakati").parse("東京都に住んでいます"))'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" | grep -v "^|" | tail -6
want=" $* "
# One fresh benchmarks/eval_throughput.py process (the harness only) on GPU 0, for at most LEFT seconds:
#   eval_run LEFT JSON LOG 'ENV=VALUE ...' [eval_throughput.py arguments]
eval_run() {
  local left=$1 json=$2 log=$3 envs=$4; shift 4
  env $envs CUDA_VISIBLE_DEVICES=0 timeout "$left" python3 benchmarks/eval_throughput.py --jglue .bench/jglue-v1.3 \
      --modes none --harness "$@" --out "$json" > "$log" 2>&1
}
if [[ $want == *" tests "* ]]; then
  t=$(date +%s)
  timeout 480 python3 -m pytest -q -m gpu tests/integration/test_where.py -rA --durations=0 -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
  echo "gpu tests: exit ${PIPESTATUS[0]} in $(( $(date +%s) - t )) s" | tee -a "$OUT/gpu_tests.log"
fi
if [[ $want == *" eval "* ]]; then
  variants=${@: -1}; [[ $variants == *=* ]] || variants=""
  # PROCESS_ENVS: ';'-separated environments, one fresh process each (what a first run in a process
  # costs, e.g. 'X=0;PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True'); default: one process as set.
  IFS=';' read -r -a envs <<< "${PROCESS_ENVS:-JSWEEP_PROCESS=1}"
  n=0
  for e in "${envs[@]}"; do
    n=$((n + 1)); suffix=""; [[ ${#envs[@]} -gt 1 ]] && suffix="_p$n"
    t=$(date +%s)
    left=$(( (${BUDGET_S:-575} - (t - t0)) / (${#envs[@]} - n + 1) ))   # stay inside the device's 600 s per command
    echo "process $n: $e (up to $left s)"
    eval_run $left "$OUT/eval_throughput_full$suffix.json" "$OUT/eval_full$suffix.log" "$e" \
        --harness-tasks "${HARNESS_TASKS:-jcommonsenseqa,jnli,jsquad}" --harness-variants "$variants"
    rc=$?
    grep -v "it/s\]$" "$OUT/eval_full$suffix.log" | tail -40
    echo "eval ($e): exit $rc in $(( $(date +%s) - t )) s"
  done
fi
if [[ $want == *" 13b "* ]]; then
  t=$(date +%s)
  left=$(( ${BUDGET_S:-575} - (t - t0) ))
  { which gcc g++ nvcc; free -g; df -h /tmp; } > "$OUT/host13b.txt" 2>&1
  timeout $left python3 benchmarks/zero3_13b.py --jglue .bench/jglue-v1.3 --only "${CELLS13:-zero3}" --work /tmp/j13 \
      --timeout $(( left - 15 )) --out "$OUT/zero3_13b.json" ${ARGS13:-} > "$OUT/zero3_13b.log" 2>&1
  rc=$?
  # the cells' own logs and files, as one archive (a call brings back only a few files)
  (cd /tmp/j13 && find . -maxdepth 4 -path "*/cells/*" -type f \( -name "*.log" -o -name "*.json" \) -size -5M -print0 \
      | tar --null -czf "$OUT/cells13.tar.gz" -T -)
  for log in /tmp/j13/*/cells/*/cell.log; do  # why a cell failed, on the console
    grep -q '"FAILED"' "$(dirname "$log")/status.json" 2>/dev/null || continue
    echo "--- $log"; grep -v "it/s\]$" "$log" | grep -B2 -A2 -E "Error|error:" | tail -30
  done
  grep -v "it/s\]$" "$OUT/zero3_13b.log" | tail -60
  echo "13b: exit $rc in $(( $(date +%s) - t )) s"
fi
if [[ $want == *" probe13b "* ]]; then
  for drop in default 0; do
    t=$(date +%s); left=$(( ${BUDGET_S:-575} - (t - t0) )); (( left > 60 )) || break
    extra=""; [[ $drop == 0 ]] && extra="--extra +model.arch.attn_pdrop=0.0 +model.arch.resid_pdrop=0.0 +model.arch.embd_pdrop=0.0"
    CUDA_VISIBLE_DEVICES=0 timeout $left python3 benchmarks/cell_throughput.py --jglue .bench/jglue-v1.3 --model llm-jp-13b-v1.0 \
        --configs jsweep_new_lora --profile jsweep_new_lora --micro 2 --records 2000 --warmup 2 --seconds 10 \
        --out "$OUT/probe13b_dropout_$drop.json" $extra > "$OUT/probe13b_dropout_$drop.log" 2>&1
    echo "probe13b dropout=$drop: exit $? in $(( $(date +%s) - t )) s"; grep -v "it/s\]$" "$OUT/probe13b_dropout_$drop.log" | tail -8
  done
fi
if [[ $want == *" evalplan "* ]]; then
  n=0
  while IFS= read -r line; do
    line=${line%%#*}; [[ $line == *--* ]] || continue
    n=$((n + 1)); t=$(date +%s)
    left=$(( ${BUDGET_S:-575} - (t - t0) )); (( left > 30 )) || { echo "plan $n: no time left"; break; }
    envs=${line%%--*}; args=${line#*--}
    echo "plan $n (up to $left s): $line"
    eval_run $left "$OUT/plan_$n.json" "$OUT/plan_$n.log" "$envs" $args
    rc=$?
    grep -v "it/s\]$" "$OUT/plan_$n.log" | grep -E "harness \{|phases|requests,|context tokens|Error|error" | tail -8
    echo "plan $n: exit $rc in $(( $(date +%s) - t )) s"
  done < "${EVAL_PLAN:?EVAL_PLAN names the plan file}"
fi
if [[ $want == *" decodestep "* ]]; then
  t=$(date +%s); left=$(( ${BUDGET_S:-575} - (t - t0) ))
  CUDA_VISIBLE_DEVICES=0 timeout $left python3 benchmarks/decode_step.py --jglue .bench/jglue-v1.3 ${DECODE_ARGS:-} \
      --out "$OUT/decode_step.json" > "$OUT/decode_step.log" 2>&1
  echo "decodestep: exit $? in $(( $(date +%s) - t )) s"; grep "^{" "$OUT/decode_step.log"
fi
