#!/usr/bin/env bash
# The prepared GPU check (docs/benchmarks.md, "GPU check"): at most 10 min
# on one GPU, every part with its own time limit, output under OUT.
#   1. tools/check_env.py --device cuda (versions; a GradMix step without
#      and with AMP; a faiss search on the GPU; a distributed init)
#   2. the training-step benchmark (benchmarks/benchmark_training.py):
#      SupCon + SimCLR with and without GradMix, full width, batch 256
#   3. one training step of the reference network in fp32 vs AMP (fp16 with
#      loss scaling, as tools/train.py --amp), step time and peak memory
#   4. a faiss GPU search against the CPU one: knn_scores on a
#      1,000,000 x 128 bank, 10,000 queries, k=50, same scores
#   5. EPOCHS epochs of the reference's two-stage CIFAR-10 recipe (stage 1,
#      then one epoch of stage 2 from it) against the plugin's SupCon +
#      SimCLR baseline and its single-stage GradMix recipe, on split 0 of
#      the CIFAR-10 image folders at DATA_ROOT (skipped without them),
#      with the epoch times and the OSR metrics after the last epoch.
# Usage: bash benchmarks/gpu_check.sh [OUT] [DATA_ROOT] [EPOCHS]
# SMOKE=1 runs every part tiny on the CPU (the digits instead of CIFAR-10),
# to check the script itself.
set -u
OUT=${1:-work_dirs/gpu_check}
DATA_ROOT=${2:-data/cifar10}
EPOCHS=${3:-2}
SMOKE=${SMOKE:-0}
PY=${PYTHON:-python}
DEVICE=cuda
SCALE=1  # the limits are for one GPU; a CPU smoke run gets more time
if [ "$SMOKE" = 1 ]; then DEVICE=cpu; SCALE=4; fi
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
echo "== gpu_check $(date -u +%FT%TZ) device=$DEVICE smoke=$SMOKE"
echo "== commit $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null

part() {  # part <seconds> <name> <command...>
    local limit=$(($1 * SCALE)) name=$2
    shift 2
    echo "== $name (limit ${limit}s) $(date -u +%T)"
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - start)) s"
}

# 1. Environment.
part 60 check_env $PY tools/check_env.py --device $DEVICE

# 2. Training-step benchmark.
if [ "$SMOKE" = 1 ]; then STEP_ARGS="--quick"; else
    STEP_ARGS="--batch-size 256 --repeats 7 --warmup 3"; fi
part 90 benchmark_training $PY benchmarks/benchmark_training.py \
    --device $DEVICE --recipes supcon_simclr supcon_simclr_gradmix \
    $STEP_ARGS --out "$OUT/training.json"

# 3. fp32 vs AMP, one step of the reference network.
part 45 amp_step $PY - "$DEVICE" "$SMOKE" "$OUT/amp_step.json" <<'PYEOF'
import json, sys, time
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
import gradmix_plugin  # noqa: F401
device, smoke, out = sys.argv[1], sys.argv[2] == '1', sys.argv[3]
cfg = Config.fromfile(
    'configs/reference/ref_cifar10_stage2_supcon_simclr_gradmix_resnet18.py')
batch, size, steps = (8, 32, 2) if smoke else (256, 32, 10)
results = {}
for name in ('fp32', 'amp'):
    if name == 'amp' and device == 'cpu':
        continue  # fp16 loss scaling is CUDA-only
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, data_preprocessor=dict(
        type='OSRDataPreprocessor', num_classes=6,
        mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7]))).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    wrapper = (AmpOptimWrapper(optimizer=optim) if name == 'amp'
               else OptimWrapper(optimizer=optim))
    views = [torch.randint(0, 256, (batch, 3, size, size),
                           dtype=torch.uint8) for _ in range(2)]
    samples = [DataSample().set_gt_label(int(i % 6)) for i in range(batch)]
    data = dict(inputs=views, data_samples=samples)
    times = []
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 2):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = model.train_step(data, wrapper)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    times.sort()
    results[name] = dict(
        median_s=times[len(times) // 2],
        peak_mib=(torch.cuda.max_memory_allocated() / 2**20
                  if device.startswith('cuda') else None),
        loss=float(sum(v for k, v in losses.items() if 'loss' in k)))
    print(name, results[name], flush=True)
if 'amp' in results:
    print('amp/fp32 step time:',
          results['amp']['median_s'] / results['fp32']['median_s'])
json.dump(results, open(out, 'w'), indent=2)
PYEOF

# 4. faiss on the GPU against the CPU.
part 60 faiss_gpu $PY - "$SMOKE" "$OUT/faiss.json" <<'PYEOF'
import json, sys, time
import numpy as np
from gradmix_plugin.evaluation.functional import (faiss_gpu_available,
                                                  knn_scores)
smoke, out = sys.argv[1] == '1', sys.argv[2]
rng = np.random.default_rng(0)
n_bank, n_query = (20000, 500) if smoke else (1000000, 10000)
bank = rng.standard_normal((n_bank, 128), dtype=np.float32)
query = rng.standard_normal((n_query, 128), dtype=np.float32)
results = dict(gpu_available=faiss_gpu_available())
print('faiss GPU available:', results['gpu_available'])
scores = {}
for name, use_gpu in (('cpu', False), ('gpu', True)):
    if use_gpu and not results['gpu_available']:
        continue
    start = time.perf_counter()
    scores[name] = knn_scores(query, bank, k=50, use_gpu=use_gpu)
    results[f'{name}_s'] = time.perf_counter() - start
    print(name, f'{results[name + "_s"]:.2f} s', flush=True)
if 'gpu' in scores:
    results['max_abs_diff'] = float(np.abs(scores['gpu'] - scores['cpu']).max())
    print('max |gpu - cpu| score:', results['max_abs_diff'])
json.dump(results, open(out, 'w'), indent=2)
PYEOF

# 5. Epochs of the two-stage recipe vs the single-stage ones.
if [ "$SMOKE" = 1 ]; then
    S1=configs/reference/ref_digits_stage1_simclr_gradmix_resnet18.py
    S2=configs/reference/ref_digits_stage2_supcon_simclr_gradmix_resnet18.py
    BASE=configs/reference/ref_digits_supcon_simclr_resnet18.py
    PLUGIN=configs/gradmix_resnet18_digits.py
    DATA_OPTS=""
    EPOCHS=1
elif [ -d "$DATA_ROOT/train" ]; then
    S1=configs/reference/ref_cifar10_stage1_simclr_gradmix_resnet18.py
    S2=configs/reference/ref_cifar10_stage2_supcon_simclr_gradmix_resnet18.py
    BASE=configs/supcon_resnet18_cifar10.py
    PLUGIN=configs/gradmix_resnet18_cifar10.py
    DATA_OPTS="data_root=$DATA_ROOT train_dataloader.num_workers=8"
else
    echo "== recipes: skipped (no CIFAR-10 folders at $DATA_ROOT)"
    exit 0
fi
AMP_OPT=""
epochs_opts() {  # the schedule cut to $1 epochs, validation at the end
    echo "train_cfg.max_epochs=$1 train_cfg.val_interval=$1" \
        "param_scheduler.end=$1 param_scheduler.T_max=$1 osr_split=0"
}
for pair in "baseline:$BASE" "plugin_gradmix:$PLUGIN" "ref_stage1:$S1"; do
    name=${pair%%:*}
    config=${pair#*:}
    part 100 "recipe_$name" $PY tools/train.py "$config" \
        --work-dir "$OUT/$name" --cfg-options $(epochs_opts $EPOCHS) \
        $DATA_OPTS $AMP_OPT
done
if [ -f "$OUT/ref_stage1/last_checkpoint" ]; then
    part 60 recipe_ref_stage2 $PY tools/train.py "$S2" \
        --work-dir "$OUT/ref_stage2" --cfg-options $(epochs_opts 1) \
        load_from="$(cat "$OUT/ref_stage1/last_checkpoint")" $DATA_OPTS
fi
echo "== last logged iteration (time: s per iteration) and the metrics after the last epoch"
for name in baseline plugin_gradmix ref_stage1 ref_stage2; do
    logfile=$(ls "$OUT/$name"/*/*.log 2>/dev/null | tail -1)
    [ -n "$logfile" ] || continue
    echo "-- $name"
    grep -o "Epoch(train) *\[[0-9]*\]\[ *[0-9]*/[0-9]*\].*time: [0-9.]*" \
        "$logfile" | tail -1
    grep -o "osr/class_knn/auroc: [0-9.]*\|osr/knn/auroc: [0-9.]*" \
        "$logfile" | tail -2
done
echo "== gpu_check done $(date -u +%T)"
