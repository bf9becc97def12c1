"""Exact resume with GradMix: stop after epoch k, ``--resume``, compare.

The run stopped after epoch 1 and resumed to epoch 2 must end with the
bit-identical weights of the uninterrupted 2-epoch run (CPU kernels are
deterministic here) and must log the same losses, GradMix ``lambda_eff``
included, at every step of the resumed epoch: the GradMix draws (ratio,
partner permutation, noise) and the pipeline's augmentation draws come
from the global random states that ``RNGStateHook`` checkpoints, also in
data-loader worker processes (``tools/train.py`` restarts them every epoch
with seeds drawn from those states).
"""
import os.path as osp

import pytest
from reliability_helpers import (
    LAYERS,
    RANDOM_VIEW,
    ce_gradmix_model,
    contrastive_model,
    digits,
    load_checkpoint,
    loader,
    osr_digits,
    run_tool,
    runtime,
    same_weights,
    train_scalars,
    two_views,
    write_config,
)

VAL_PIPELINE = [dict(type='PackInputs')]
CE_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def ce_config(tmp_path, png_root, max_epochs, rng_hook=True):
    return write_config(
        tmp_path / f'ce_{max_epochs}_{rng_hook}.py',
        drop_default_hooks=() if rng_hook else ('rng_state', ),
        model=ce_gradmix_model(),
        # One worker process: its seeds must come from the checkpointed
        # state too (tools/train.py restarts it every epoch).
        train_dataloader=dict(
            loader(
                dict(
                    type='CustomDataset',
                    data_root=png_root,
                    pipeline=CE_PIPELINE), 4),
            num_workers=1,
            persistent_workers=True),
        **runtime(max_epochs, custom_hooks=[dict(type='GradMixModelHook')]))


def contrastive_config(tmp_path, max_epochs):
    # Validation after every epoch (with the kNN bank hook) runs after the
    # checkpoint is saved and draws from the global torch generator (one
    # seed per data-loader iterator); RNGStateHook keeps those draws out of
    # the training streams, which a resumed run would otherwise not repeat.
    return write_config(
        tmp_path / f'contrastive_{max_epochs}.py',
        model=contrastive_model(
            gradmix=dict(
                type='GradMix', attribution_layers=LAYERS, fill='noise')),
        train_dataloader=loader(
            digits('train', 16, two_views(RANDOM_VIEW)), 8),
        **runtime(
            max_epochs,
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs,
                           val_interval=1),
            val_cfg=dict(),
            val_dataloader=loader(
                osr_digits('open', 'test', 12, VAL_PIPELINE), 6,
                shuffle=False),
            val_evaluator=dict(
                type='OSRMetric',
                scores=('knn', ),
                feature='embeds',
                class_knn_k=1,
                knn_k=2),
            custom_hooks=[
                dict(
                    type='OSRBankHook',
                    dataloader=loader(
                        osr_digits('known', 'train', 10, VAL_PIPELINE), 5,
                        shuffle=False))
            ]))


def stop_and_resume(make_config, tmp_path):
    """Train 2 epochs straight, and 1 epoch then ``--resume`` to 2."""
    straight_dir = str(tmp_path / 'straight')
    split_dir = str(tmp_path / 'split')
    run_tool('train', make_config(2), '--work-dir', straight_dir)
    run_tool('train', make_config(1), '--work-dir', split_dir)
    first = load_checkpoint(osp.join(split_dir, 'epoch_1.pth'))
    assert first['meta']['epoch'] == 1
    run_tool('train', make_config(2), '--work-dir', split_dir, '--resume')
    straight = load_checkpoint(osp.join(straight_dir, 'epoch_2.pth'))
    resumed = load_checkpoint(osp.join(split_dir, 'epoch_2.pth'))
    assert resumed['meta']['iter'] == straight['meta']['iter']
    return (straight, resumed, train_scalars(straight_dir),
            train_scalars(split_dir), first['meta']['iter'])


@pytest.mark.slow
def test_ce_gradmix_resume_is_bit_identical(tmp_path, png_root):
    straight, resumed, straight_log, resumed_log, first_iters = \
        stop_and_resume(lambda e: ce_config(tmp_path, png_root, e), tmp_path)
    assert same_weights(straight, resumed)
    resumed_steps = [s for s in resumed_log if s > first_iters]
    assert resumed_steps == [s for s in straight_log if s > first_iters]
    assert len(resumed_steps) == 4
    for step in resumed_steps:
        assert resumed_log[step]['loss'] == straight_log[step]['loss']


@pytest.mark.slow
def test_ce_gradmix_resume_without_rng_state_diverges(tmp_path, png_root):
    # The oracle of the test above: without the random states in the
    # checkpoint, the resumed epoch draws other flips, GradMix ratios and
    # partners, so the weights differ.
    straight, resumed, *_ = stop_and_resume(
        lambda e: ce_config(tmp_path, png_root, e, rng_hook=False), tmp_path)
    assert not same_weights(straight, resumed)


@pytest.mark.slow
def test_contrastive_gradmix_resume_is_bit_identical(tmp_path):
    straight, resumed, straight_log, resumed_log, first_iters = \
        stop_and_resume(lambda e: contrastive_config(tmp_path, e), tmp_path)
    assert same_weights(straight, resumed)
    resumed_steps = [s for s in resumed_log if s > first_iters]
    assert len(resumed_steps) == 2
    keys = ('loss', 'loss_supcon', 'loss_simclr', 'loss_simclr_mix',
            'lambda_eff')
    for step in resumed_steps:
        for key in keys:
            assert resumed_log[step][key] == straight_log[step][key], key
    # The ratios are really drawn (not a constant that would trivially
    # repeat): the steps of the run do not all share one lambda_eff.
    lambdas = {record['lambda_eff'] for record in straight_log.values()}
    assert len(lambdas) > 1
    assert all(0.5 <= lam <= 1 for lam in lambdas)

