#!/usr/bin/env bash
# The CPU experiment of docs/benchmarks.md ("Reference two-stage recipe vs
# single-stage recipes on the digits"): on the embedded scikit-learn digits,
# for every split (and seed), split by split so that the per-split pairs
# complete together:
#   A  SupCon + SimCLR baseline, 10 epochs
#        (configs/reference/ref_digits_supcon_simclr_resnet18.py)
#   B  the plugin's single-stage GradMix, 10 epochs
#        (configs/gradmix_resnet18_digits.py)
#   C  the reference's two-stage recipe: SimCLR + GradMix 10 epochs, then
#        SupCon + SimCLR + GradMix 3 epochs from its weights
#   D  as C, stage 1 without GradMix
# A, B and the stages 1 run through tools/run_protocol.py. The stages 2 run
# through tools/run_protocol.py too when it chains stages (STAGES=protocol);
# by default (STAGES=hand) through tools/train.py + tools/test.py with
# --cfg-options load_from=<stage 1 last checkpoint>, in the run_protocol
# layout, and every method is summarised by tools/summarize_osr.py.
# Usage: benchmarks/digits_recipes_experiment.sh ROOT "0 1 2 3 4" "0"
set -u
ROOT=${1:-work_dirs/digits_recipes}
SPLITS=${2-"0 1 2 3 4"}  # "" only summarises
SEEDS=${3-"0"}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
REF=configs/reference
S1_GM=ref_digits_stage1_simclr_gradmix_resnet18
S1_NOGM=ref_digits_stage1_simclr_resnet18
S2=ref_digits_stage2_supcon_simclr_gradmix_resnet18

stage2() {  # stage2 <method root> <stage 1 config name> <split> <seed>
    local root=$1 s1=$2 split=$3 seed=$4
    local s1dir=$root/$s1/split${split}_seed${seed}
    local wd=$root/$S2/split${split}_seed${seed}
    if [ -f "$wd/osr_metrics.json" ]; then return 0; fi
    local ckpt
    ckpt=$(cat "$s1dir/last_checkpoint") || return 1
    mkdir -p "$wd"
    $PY tools/train.py $REF/$S2.py --work-dir "$wd" --cfg-options \
        load_from="$ckpt" osr_split=$split randomness.seed=$seed \
        >> "$wd/protocol.log" 2>&1 || return 1
    $PY tools/test.py $REF/$S2.py "$(cat "$wd/last_checkpoint")" \
        --work-dir "$wd" --cfg-options osr_split=$split \
        randomness.seed=$seed >> "$wd/protocol.log" 2>&1
}

for split in $SPLITS; do
    for seed in $SEEDS; do
        echo "== split $split seed $seed $(date -u +%H:%M:%S)"
        $PY tools/run_protocol.py $REF/ref_digits_supcon_simclr_resnet18.py \
            --splits "$split" --seeds "$seed" --work-root "$ROOT/A_baseline"
        $PY tools/run_protocol.py configs/gradmix_resnet18_digits.py \
            --splits "$split" --seeds "$seed" --work-root "$ROOT/B_plugin"
        $PY tools/run_protocol.py $REF/$S1_GM.py \
            --splits "$split" --seeds "$seed" --work-root "$ROOT/C_two_stage"
        stage2 "$ROOT/C_two_stage" $S1_GM "$split" "$seed"
        $PY tools/run_protocol.py $REF/$S1_NOGM.py \
            --splits "$split" --seeds "$seed" \
            --work-root "$ROOT/D_two_stage_s1_nogm"
        stage2 "$ROOT/D_two_stage_s1_nogm" $S1_NOGM "$split" "$seed"
    done
done
echo "== done $(date -u +%H:%M:%S)"
for m in A_baseline/ref_digits_supcon_simclr_resnet18 \
         B_plugin/gradmix_resnet18_digits \
         C_two_stage/$S2 D_two_stage_s1_nogm/$S2; do
    echo "## $m"
    $PY tools/summarize_osr.py "$ROOT"/$m/split*_seed* 2>/dev/null
done
# Per-split pairs: class_knn / knn AUROC, OSCR and accuracy of every method.
$PY - "$ROOT" <<'PYEOF'
import glob, json, os.path as osp, sys
root = sys.argv[1]
methods = [('A SupCon+SimCLR', 'A_baseline/ref_digits_supcon_simclr_resnet18'),
           ('B plugin GradMix', 'B_plugin/gradmix_resnet18_digits'),
           ('C two-stage', 'C_two_stage/ref_digits_stage2_supcon_simclr_gradmix_resnet18'),
           ('D two-stage, s1 no GradMix',
            'D_two_stage_s1_nogm/ref_digits_stage2_supcon_simclr_gradmix_resnet18')]
keys = ['osr/class_knn/auroc', 'osr/knn/auroc', 'osr/class_knn/oscr',
        'osr/class_knn/accuracy']
print('| split | method | ' + ' | '.join(k[4:] for k in keys) + ' |')
print('|---|---|' + '---|' * len(keys))
for path in sorted(glob.glob(osp.join(root, methods[0][1], 'split*_seed*'))):
    run = osp.basename(path)
    for name, sub in methods:
        f = osp.join(root, sub, run, 'osr_metrics.json')
        if not osp.exists(f):
            print(f'| {run} | {name} | ' + ' | '.join('-' for _ in keys) + ' |')
            continue
        m = json.load(open(f))
        m = m.get('metrics', m)
        print(f'| {run} | {name} | ' + ' | '.join(
            f'{m[k]:.2f}' if k in m else '-' for k in keys) + ' |')
PYEOF

