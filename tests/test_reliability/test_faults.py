"""Faults that used to lose data or give silent wrong results: a second
run in the same work dir, a ``last_checkpoint`` naming a lost file, a
resumed run with a changed config, a diverged run, a checkpoint damaged on
disk (issue: nothing lost, nothing silently wrong)."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import logged_messages
from mmengine.config import Config
from reliability_helpers import (
    ENV,
    ce_gradmix_model,
    load_checkpoint,
    loader,
    run_tool,
    runtime,
    write_config,
)

from gradmix_plugin.engine.hooks.fail_fast_hook import DataCheckError
from gradmix_plugin.engine.hooks.non_finite_check_hook import (
    NonFiniteCheckHook,
    NonFiniteError,
)
from gradmix_plugin.engine.runner import OSRRunner
from gradmix_plugin.utils import check_checkpoint_fits
from gradmix_plugin.utils.checkpoint import (
    DamagedCheckpointError,
    NonFiniteCheckpointError,
    find_resumable_checkpoint,
)
from gradmix_plugin.utils.provenance import (
    ProvenanceMismatchError,
    check_class_names,
    config_differences,
    warn_resume_config_changes,
)
from gradmix_plugin.utils.workdir_lock import (
    WorkDirLockedError,
    acquire_work_dir,
    release_work_dir,
)

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def config(tmp_path, png_root, name='run', max_epochs=1, **cfg):
    return write_config(
        tmp_path / f'{name}.py',
        model=ce_gradmix_model(),
        train_dataloader=loader(
            dict(
                type='CustomDataset', data_root=png_root,
                pipeline=PIPELINE), 4),
        **runtime(
            max_epochs, custom_hooks=[dict(type='GradMixModelHook')],
            **cfg))


# Work-dir lock ---------------------------------------------------------


def hold_lock(work_dir):
    """A process that holds the lock of ``work_dir`` until killed."""
    code = ('import sys, time\n'
            'from gradmix_plugin.utils.workdir_lock import acquire_work_dir\n'
            'acquire_work_dir(sys.argv[1])\n'
            'print("locked", flush=True)\n'
            'time.sleep(600)\n')
    process = subprocess.Popen([sys.executable, '-c', code, work_dir],
                               env=ENV, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == 'locked'
    return process


@pytest.mark.slow
def test_second_run_in_a_work_dir_is_refused_naming_the_holder(
        tmp_path, png_root):
    work_dir = str(tmp_path / 'work')
    holder = hold_lock(work_dir)
    try:
        with pytest.raises(WorkDirLockedError,
                           match=f'is in use by another run \\(PID '
                           f'{holder.pid}, lock file'):
            run_tool('train', config(tmp_path, png_root), '--work-dir',
                     work_dir)
        assert not [f for f in os.listdir(work_dir) if f != 'work'
                    and not f.startswith('.gradmix_plugin.lock')]
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released it: the next run goes.
    assert holder.returncode == -signal.SIGKILL
    run_tool('train', config(tmp_path, png_root), '--work-dir', work_dir)
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_lock_is_reentrant_within_a_process(tmp_path):
    work_dir = str(tmp_path)
    acquire_work_dir(work_dir)
    acquire_work_dir(work_dir)
    release_work_dir(work_dir)
    release_work_dir(work_dir)
    # released: another process can take it.
    holder = hold_lock(work_dir)
    holder.kill()
    holder.wait()


# Resume ------------------------------------------------------------------


@pytest.mark.slow
def test_resume_falls_back_to_the_newest_intact_checkpoint(
        tmp_path, png_root):
    """``last_checkpoint`` names a file that a kill (of an older version)
    or a user removed: ``--resume`` continues from the newest intact
    checkpoint and says so, instead of ``FileNotFoundError``."""
    work_dir = str(tmp_path / 'work')
    run_tool('train', config(tmp_path, png_root, 'one'), '--work-dir',
             work_dir)
    missing = osp.join(work_dir, 'epoch_2.pth')
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as file:
        file.write(missing)
    two = config(tmp_path, png_root, 'two', max_epochs=2)
    with logged_messages() as messages:
        cfg = Config.fromfile(two)
        cfg.work_dir, cfg.resume = work_dir, True
        OSRRunner.check_before_build(cfg)
    assert cfg.load_from == osp.join(work_dir, 'epoch_1.pth')
    assert any(f'--resume: last_checkpoint names {missing}, which does not '
               f'exist; resuming from {cfg.load_from}, the newest intact '
               'checkpoint there' in m for m in messages)
    run_tool('train', two, '--work-dir', work_dir, '--resume')
    assert load_checkpoint(osp.join(work_dir, 'epoch_2.pth'))['meta'][
        'iter'] == 8


def test_find_resumable_checkpoint_skips_damaged_files(tmp_path):
    old, new = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    torch.save(dict(state_dict={}), old)
    new.write_bytes(b'PK\x03\x04 half a checkpoint')
    os.utime(old, (1, 1))
    (tmp_path / 'last_checkpoint').write_text(str(new))
    with logged_messages() as messages:
        assert find_resumable_checkpoint(str(tmp_path)) == str(old)
    assert any('--resume: last_checkpoint names a damaged file '
               f'(checkpoint file {new} is corrupted or not a PyTorch '
               'checkpoint' in m for m in messages)
    old.unlink()
    with pytest.raises(DamagedCheckpointError,
                       match='holds no other intact checkpoint. Pass an '
                       'intact checkpoint with --resume PATH'):
        find_resumable_checkpoint(str(tmp_path))


@pytest.mark.slow
def test_resume_with_a_changed_config_says_which_value_wins(
        tmp_path, png_root):
    work_dir = str(tmp_path / 'work')
    run_tool('train', config(tmp_path, png_root), '--work-dir', work_dir)
    # The same config again: nothing to report (the runner's own
    # additions and the experiment name are no change).
    cfg = Config.fromfile(config(tmp_path, png_root))
    cfg.work_dir, cfg.resume, cfg.launcher = work_dir, True, 'none'
    cfg = OSRRunner.prepare_cfg(cfg)
    with logged_messages() as messages:
        OSRRunner.check_before_build(cfg)
    assert not [m for m in messages if 'config differs' in m]

    cfg = Config.fromfile(config(tmp_path, png_root, max_epochs=2))
    cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 0.1})
    cfg.work_dir, cfg.resume, cfg.launcher = work_dir, True, 'none'
    cfg = OSRRunner.prepare_cfg(cfg)
    with logged_messages() as messages:
        OSRRunner.check_before_build(cfg)
    warning = next(m for m in messages if 'config differs' in m)
    assert ("optim_wrapper.optimizer.lr: 0.05 in the checkpoint, 0.1 now: "
            "the checkpoint's value 0.05 wins (the optimizer state is "
            'restored with its hyper-parameters)') in warning
    assert ("train_cfg.max_epochs: 1 in the checkpoint, 2 now: the "
            "config's value 2 wins") in warning
    assert 'start a new run with load_from=<checkpoint>' in warning


def test_config_differences_ignore_where_and_how_a_run_is_launched():
    saved = dict(work_dir='a', launcher='none', optim_wrapper=dict(
        optimizer=dict(lr=1)), train_dataloader=dict(pin_memory=False))
    current = dict(work_dir='b', launcher='pytorch', optim_wrapper=dict(
        optimizer=dict(lr=2)), train_dataloader=dict(pin_memory=True),
        custom_hooks=[dict(type='X')])
    assert config_differences(saved, current) == {
        'optim_wrapper.optimizer.lr': (1, 2),
        'custom_hooks.0.type': ('<unset>', 'X')
    }


# Divergence --------------------------------------------------------------


@pytest.mark.slow
def test_diverged_training_stops_before_saving(tmp_path, png_root):
    work_dir = str(tmp_path / 'work')
    cfg = config(
        tmp_path, png_root,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e36,
                                          momentum=0.9)))
    with pytest.raises(NonFiniteError,
                       match=r'training diverged: .* at iteration \d+ '
                       r'\(epoch 1\)\. Training stopped; no checkpoint of '
                       r'this state was written \(no checkpoint was '
                       r'written\)'):
        run_tool('train', cfg, '--work-dir', work_dir)
    assert not [f for f in os.listdir(work_dir) if f.endswith('.pth')]


def fake_runner(model, work_dir, iteration=5):
    return SimpleNamespace(
        model=model, iter=iteration, epoch=0, work_dir=str(work_dir))


def test_non_finite_buffer_with_a_finite_loss_stops(tmp_path):
    """lr=1e8: the logged loss stayed finite while BatchNorm's running_var
    became inf."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 2),
                                torch.nn.BatchNorm1d(2))
    model[1].running_var[1] = float('inf')
    (tmp_path / 'last_checkpoint').write_text('/w/epoch_3.pth')
    hook = NonFiniteCheckHook()
    with pytest.raises(NonFiniteError,
                       match=r'1.running_var has inf in 1 of 2 values after '
                       r'iteration 6 \(epoch 1\).*the last checkpoint '
                       r'written is /w/epoch_3.pth'):
        hook.after_train_iter(
            fake_runner(model, tmp_path), 5,
            outputs=dict(loss=torch.tensor(0.5)))
    with pytest.raises(NonFiniteError,
                       match="the logged 'loss' is nan at iteration 6"):
        hook.after_train_iter(
            fake_runner(torch.nn.Linear(1, 1), tmp_path), 5,
            outputs=dict(loss=torch.tensor(float('nan'))))
    with pytest.raises(NonFiniteError,
                       match='1.running_var has inf in 1 of 2 values in the '
                       'checkpoint of iteration 6'):
        hook.before_save_checkpoint(
            fake_runner(model, tmp_path),
            dict(state_dict=model.state_dict()))


def test_testing_non_finite_weights_says_so(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    state = model.state_dict()
    state['0.weight'][0, 0] = float('nan')
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(NonFiniteCheckpointError,
                       match=f'checkpoint {path} has non-finite weights: '
                       '0.weight has nan in 1 of 4 values'):
        check_checkpoint_fits(model, str(path))


# Fail fast ---------------------------------------------------------------


def folder_with_empty_class(tmp_path, png_root):
    """Classes a (8 images), b (empty folder), c (8 images)."""
    root = tmp_path / 'folder'
    shutil.copytree(osp.join(png_root, 'a'), root / 'a')
    os.makedirs(root / 'b')
    shutil.copytree(osp.join(png_root, 'b'), root / 'c')
    return str(root)


def osr_config(tmp_path, root, known, name='osr', bank_known=None,
               **metric):
    test = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

    def osr(subset, known_classes):
        return dict(
            type='OSRDataset',
            known_classes=known_classes,
            subset=subset,
            dataset=dict(type='CustomDataset', data_root=root,
                         pipeline=test))

    return write_config(
        tmp_path / f'{name}.py',
        model=ce_gradmix_model(num_classes=len(known)),
        train_dataloader=loader(osr('known', known), 4),
        **runtime(
            1,
            train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
            val_cfg=dict(),
            val_dataloader=loader(osr('open', known), 4, shuffle=False),
            val_evaluator=dict(
                type='OSRMetric', scores=('msp', 'knn', 'class_knn'),
                feature='feats', **metric),
            custom_hooks=[
                dict(type='GradMixModelHook'),
                dict(
                    type='OSRBankHook',
                    dataloader=loader(
                        osr('known', bank_known or known), 4,
                        shuffle=False))
            ]))


def test_empty_known_class_fails_before_the_first_iteration(
        tmp_path, png_root):
    root = folder_with_empty_class(tmp_path, png_root)
    cfg = osr_config(tmp_path, root, [0, 1], class_knn_k=1, knn_k=1)
    with logged_messages() as messages:
        with pytest.raises(DataCheckError,
                           match=r"has no sample of the known class\(es\) "
                           r"\['b'\]: check the data folder"):
            run_tool('train', cfg, '--work-dir', str(tmp_path / 'work'))
    assert not [m for m in messages if 'Epoch(train)' in m]


def test_bank_smaller_than_k_fails_before_the_first_iteration(
        tmp_path, png_root):
    root = folder_with_empty_class(tmp_path, png_root)
    work_dir = str(tmp_path / 'work')
    cfg = osr_config(tmp_path, root, [0, 2], 'knn', knn_k=17,
                     class_knn_k=1)
    with pytest.raises(DataCheckError,
                       match=r'val_evaluator: knn_k=17 is larger than the '
                       r'kNN bank of OSRBankHook \(16 samples\)'):
        run_tool('train', cfg, '--work-dir', work_dir)
    cfg = osr_config(tmp_path, root, [0, 2], 'class_knn', knn_k=2,
                     class_knn_k=9)
    with pytest.raises(DataCheckError,
                       match=r'class_knn needs at least class_knn_k=9 bank '
                       r'vectors per known class, but the bank of '
                       r'OSRBankHook has fewer for a: 8, c: 8'):
        run_tool('train', cfg, '--work-dir', work_dir)
    assert not [f for f in os.listdir(work_dir) if f.endswith('.pth')]


@pytest.mark.parametrize('epochs', [0, -1])
def test_no_epochs_is_refused(tmp_path, png_root, epochs):
    with pytest.raises(DataCheckError,
                       match=f'train_cfg.max_epochs is {epochs}: nothing '
                       'would be trained'):
        run_tool('train', config(tmp_path, png_root), '--work-dir',
                 str(tmp_path / 'work'), '--cfg-options',
                 f'train_cfg.max_epochs={epochs}')


# Class names -------------------------------------------------------------


def class_folder(root, classes, png_root):
    for name in classes:
        shutil.copytree(osp.join(png_root, 'a'), osp.join(root, name))
    return str(root)


@pytest.mark.slow
def test_shifted_class_folders_are_refused_by_name(tmp_path, png_root):
    """A test folder without ``b/`` and with an extra ``x/`` has as many
    classes, but label 1 is now ``c``: testing must refuse it by name
    (it used to score with shifted labels, exit 0)."""
    train_root = class_folder(tmp_path / 'train', 'abc', png_root)
    test_root = class_folder(tmp_path / 'test', 'acx', png_root)
    test = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

    def osr(root, subset):
        return dict(type='OSRDataset', known_classes=[0, 1], subset=subset,
                    dataset=dict(type='CustomDataset', data_root=root,
                                 pipeline=test))

    cfg = write_config(
        tmp_path / 'names.py',
        model=ce_gradmix_model(num_classes=2),
        train_dataloader=loader(osr(train_root, 'known'), 4),
        test_dataloader=loader(osr(test_root, 'open'), 4, shuffle=False),
        test_evaluator=dict(type='OSRMetric', scores=('msp', ),
                            feature='feats'),
        test_cfg=dict(),
        **runtime(1, custom_hooks=[dict(type='GradMixModelHook')]))
    work_dir = str(tmp_path / 'work')
    run_tool('train', cfg, '--work-dir', work_dir)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert load_checkpoint(checkpoint)['meta']['provenance'][
        'class_names'] == ['a', 'b']
    with pytest.raises(ProvenanceMismatchError,
                       match="the classes of the test set differ by name "
                       "from those of the checkpoint's training set: label "
                       "1 is 'b' in the checkpoint's training set but 'c' "
                       'in the test set. Labels would be compared shifted'):
        run_tool('test', cfg, checkpoint, '--work-dir',
                 str(tmp_path / 'test_work'))
    assert not osp.exists(tmp_path / 'test_work' / 'osr_metrics.json')


def test_class_names_compared_label_by_label():
    check_class_names(['a', 'b'], ['a', 'b'], 'x', 'y')
    check_class_names([], ['a'], 'x', 'y')  # nothing recorded
    with pytest.raises(ProvenanceMismatchError,
                       match="label 1 is 'b' in the bank but 'c' in the "
                       "val set; 2 classes in the bank, 3 in the val set"):
        check_class_names(['a', 'b'], ['a', 'c', 'd'], 'the bank',
                          'the val set')
    with logged_messages() as messages:
        check_class_names(['a'], ['b'], 'x', 'y', allow_mismatch=True)
    assert any('(allow_mismatch: going on)' in m for m in messages)


def test_non_finite_check_interval_is_checked():
    with pytest.raises(ValueError,
                       match='NonFiniteCheckHook interval must be a positive '
                       'integer, got 0'):
        NonFiniteCheckHook(interval=0)


def test_unreadable_stored_config_is_said(tmp_path):
    checkpoint = dict(meta=dict(cfg='this is ( not python'))
    with logged_messages() as messages:
        assert warn_resume_config_changes(checkpoint, Config(),
                                          'epoch_1.pth') == {}
    assert any('--resume: the config stored in epoch_1.pth cannot be read'
               in m for m in messages)


# Testing a checkpoint ------------------------------------------------------


@pytest.mark.slow
def test_testing_amp_on_cpu_and_refusing_broken_checkpoints(
        tmp_path, png_root):
    """``tools/test.py --amp`` on CPU used to crash in OSRMetric.process
    (bf16 outputs); a checkpoint damaged on disk or with NaN weights used to
    be tested with exit code 0."""
    test = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    dataset = dict(type='OSRDataset', known_classes=[0], subset='open',
                   dataset=dict(type='CustomDataset', data_root=png_root,
                                pipeline=test))
    cfg = write_config(
        tmp_path / 'amp.py',
        model=ce_gradmix_model(),
        train_dataloader=loader(
            dict(type='CustomDataset', data_root=png_root, pipeline=test),
            4),
        test_dataloader=loader(dataset, 4, shuffle=False),
        test_evaluator=dict(type='OSRMetric', scores=('msp', ),
                            feature='feats'),
        test_cfg=dict(),
        **runtime(1, custom_hooks=[dict(type='GradMixModelHook')]))
    work_dir = str(tmp_path / 'work')
    run_tool('train', cfg, '--work-dir', work_dir)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    run_tool('test', cfg, checkpoint, '--work-dir', str(tmp_path / 'amp'),
             '--amp')
    assert osp.isfile(tmp_path / 'amp' / 'osr_metrics.json')

    nan = load_checkpoint(checkpoint)
    nan['state_dict']['head.fc.bias'][0] = float('nan')
    torch.save(nan, tmp_path / 'nan.pth')
    with pytest.raises(NonFiniteCheckpointError,
                       match="has non-finite weights: head.fc.bias has nan"):
        run_tool('test', cfg, str(tmp_path / 'nan.pth'), '--work-dir',
                 str(tmp_path / 'nan'))

    damaged = tmp_path / 'damaged.pth'
    shutil.copy(checkpoint, damaged)
    data = bytearray(damaged.read_bytes())
    middle = len(data) // 2  # inside a weight tensor's storage
    data[middle:middle + 64] = bytes(64)
    damaged.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpointError,
                       match='does not match the CRC-32 checksum'):
        run_tool('test', cfg, str(damaged), '--work-dir',
                 str(tmp_path / 'damaged'))
    assert not osp.exists(tmp_path / 'damaged' / 'osr_metrics.json')
