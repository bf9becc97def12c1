"""One process vs two (gloo on CPU, ``torchrun`` via ``tools/dist_*.sh``).

Training: 1 process with batch 8 vs 2 processes with batch 4 each see the
same 8 images per step (``DefaultSampler`` without shuffling interleaves
the indices over the ranks). The pipeline is deterministic (two fixed
views: the image and its mirror) and the BatchNorm layers use their
running statistics (``norm_eval=True``), so the only differences left are
the order of floating-point sums. What makes the runs equal is that
SupConLoss gathers the embeddings of all ranks (with their gradients) as
negatives and DDP averages the gradients: the mean of the two ranks'
losses must equal the 1-process loss at every step, and the weights must
agree after the last step.

With BatchNorm in training mode the statistics are per process (4 images
instead of 8), which changes the losses by a few percent; that is a
property of data-parallel BatchNorm, not of the plugin, and is not
compared here (see docs/troubleshooting.md).

Testing: ``tools/test.py`` on 1 and 2 processes writes the same
``osr_metrics.json`` for one checkpoint (odd dataset sizes, so the
distributed sampler pads and the collection must drop the padding).
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from reliability_helpers import (
    TINY_BACKBONE,
    contrastive_model,
    digits,
    load_checkpoint,
    loader,
    osr_digits,
    run_subprocess,
    run_tool,
    runtime,
    write_config,
)

FIXED_VIEWS = [
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[[],
                    [dict(type='RandomFlip', prob=1.0,
                          direction='horizontal')]]),
    dict(type='PackInputs'),
]
TEST_PIPELINE = [dict(type='PackInputs')]
NUM_STEPS = 4  # 2 epochs of 16 images, 8 per step


def config(tmp_path, batch_size):
    return write_config(
        tmp_path / f'dist_batch{batch_size}.py',
        custom_imports=dict(
            imports=['gradmix_plugin', 'recording_hooks'],
            allow_failed_imports=False),
        model=contrastive_model(
            backbone=dict(TINY_BACKBONE, norm_eval=True)),
        train_dataloader=loader(
            digits('train', 16, FIXED_VIEWS), batch_size, shuffle=False),
        test_dataloader=loader(
            osr_digits('open', 'test', 25, TEST_PIPELINE), 4,
            shuffle=False),
        test_evaluator=dict(
            type='OSRMetric',
            scores=('class_knn', 'knn'),
            feature='embeds',
            class_knn_k=2,
            knn_k=5),
        test_cfg=dict(),
        **runtime(
            2,
            custom_hooks=[
                dict(type='LossRecorderHook'),
                dict(
                    type='OSRBankHook',
                    dataloader=loader(
                        osr_digits('known', 'train', 21, TEST_PIPELINE),
                        4,
                        shuffle=False))
            ]))


def losses(work_dir, rank):
    with open(osp.join(work_dir, f'losses_rank{rank}.json')) as file:
        return np.array([record['loss'] for record in json.load(file)])


@pytest.mark.slow
def test_two_processes_follow_one_process(tmp_path):
    single_dir = str(tmp_path / 'single')
    dist_dir = str(tmp_path / 'dist')
    run_tool('train', config(tmp_path, 8), '--work-dir', single_dir)
    out = run_subprocess([
        'bash', 'tools/dist_train.sh',
        config(tmp_path, 4), '2', '--work-dir', dist_dir
    ], port=True)
    assert 'rank 0 of 2' in out.stdout + out.stderr

    single = losses(single_dir, 0)
    dist_mean = (losses(dist_dir, 0) + losses(dist_dir, 1)) / 2
    assert single.shape == dist_mean.shape == (NUM_STEPS, )
    # The loss moves over the steps, so equal curves are not trivial.
    assert np.ptp(single) > 1e-2
    np.testing.assert_allclose(dist_mean, single, rtol=1e-4, atol=1e-5)

    single_ckpt = load_checkpoint(osp.join(single_dir, 'epoch_2.pth'))
    dist_ckpt = load_checkpoint(osp.join(dist_dir, 'epoch_2.pth'))
    assert single_ckpt['meta']['iter'] == dist_ckpt['meta']['iter'] == 4
    for key, value in single_ckpt['state_dict'].items():
        torch.testing.assert_close(
            dist_ckpt['state_dict'][key], value, rtol=1e-3, atol=1e-5,
            msg=key)

    # tools/test.py: the same OSR metrics on 1 and 2 processes.
    checkpoint = osp.join(single_dir, 'epoch_2.pth')
    run_tool('test', config(tmp_path, 8), checkpoint, '--work-dir',
             str(tmp_path / 'test1'))
    run_subprocess([
        'bash', 'tools/dist_test.sh',
        config(tmp_path, 8), checkpoint, '2', '--work-dir',
        str(tmp_path / 'test2')
    ], port=True)
    metrics = []
    for name in ('test1', 'test2'):
        with open(tmp_path / name / 'osr_metrics.json') as file:
            report = json.load(file)
        assert report.pop('provenance')['world_size'] == int(name[-1])
        metrics.append(report)
    assert metrics[0] and metrics[0] == metrics[1]


EVALUATOR = dict(
    type='OSRMetric',
    scores=('class_knn', 'knn'),
    feature='embeds',
    class_knn_k=2,
    knn_k=5)


def bn_config(tmp_path):
    """Train-mode BatchNorm (per-rank statistics), validation after every
    epoch, and a test set equal to the validation set."""
    open_set = loader(
        osr_digits('open', 'test', 25, TEST_PIPELINE), 4, shuffle=False)
    return write_config(
        tmp_path / 'dist_bn.py',
        custom_imports=dict(
            imports=['gradmix_plugin', 'recording_hooks'],
            allow_failed_imports=False),
        model=contrastive_model(),
        train_dataloader=loader(
            digits('train', 16, FIXED_VIEWS), 4, shuffle=False),
        **runtime(
            2,
            train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
            val_dataloader=open_set,
            val_evaluator=EVALUATOR,
            val_cfg=dict(),
            test_dataloader=open_set,
            test_evaluator=EVALUATOR,
            test_cfg=dict(),
            custom_hooks=[
                dict(type='ValMetricsRecorderHook'),
                dict(
                    type='OSRBankHook',
                    dataloader=loader(
                        osr_digits('known', 'train', 21, TEST_PIPELINE),
                        4,
                        shuffle=False))
            ]))


@pytest.mark.slow
def test_distributed_validation_equals_test_of_the_checkpoint(tmp_path):
    """Each rank's BatchNorm statistics differ (DDP does not broadcast
    buffers here): the tools average them before validation and saving,
    so the validation of a 2-process run, its checkpoint and
    ``tools/test.py`` on 1 and 2 processes all give the same metrics."""
    config = bn_config(tmp_path)
    work_dir = tmp_path / 'dist'
    run_subprocess(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
         str(work_dir)],
        port=True)
    with open(work_dir / 'val_metrics.json') as file:
        validations = json.load(file)
    assert len(validations) == 2
    checkpoint = str(work_dir / 'epoch_2.pth')
    run_tool('test', config, checkpoint, '--work-dir', str(tmp_path / 't1'))
    run_subprocess([
        'bash', 'tools/dist_test.sh', config, checkpoint, '2', '--work-dir',
        str(tmp_path / 't2')
    ], port=True)
    tests = []
    for name in ('t1', 't2'):
        with open(tmp_path / name / 'osr_metrics.json') as file:
            report = json.load(file)
        report.pop('provenance')
        tests.append(report)
    assert 'osr/class_knn/auroc' in validations[-1]
    assert validations[-1] == tests[0] == tests[1]
