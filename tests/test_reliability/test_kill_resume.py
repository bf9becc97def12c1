"""A training run SIGKILLed in the middle of an epoch loses nothing but
that epoch: the last complete checkpoint loads with ``weights_only=True``
and ``--resume`` continues from it to the same end as an uninterrupted
run."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from reliability_helpers import (
    ENV,
    REPO,
    ce_gradmix_model,
    load_checkpoint,
    loader,
    run_tool,
    runtime,
    same_weights,
    write_config,
)

# What the config names (mmengine's hook, as in the digits demo): the
# OSR runner saves with AtomicCheckpointHook in its place.
CHECKPOINT_HOOK = 'CheckpointHook'

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def config(tmp_path, png_root, name, hooks=(), checkpoint=None):
    extra = {}
    if checkpoint is not None:
        extra['default_hooks'] = dict(
            logger=dict(type='LoggerHook', interval=1), checkpoint=checkpoint)
    return write_config(
        tmp_path / f'{name}.py',
        custom_imports=dict(
            imports=['gradmix_plugin', 'recording_hooks'],
            allow_failed_imports=False),
        model=ce_gradmix_model(),
        train_dataloader=loader(
            dict(
                type='CustomDataset', data_root=png_root,
                pipeline=PIPELINE), 4),
        **runtime(
            3, custom_hooks=[dict(type='GradMixModelHook'), *hooks], **extra))


def wait_for(path, process, timeout=240):
    start = time.monotonic()
    while not osp.exists(path):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() - start < timeout, f'no {path}'
        time.sleep(0.2)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path, png_root):
    work_dir = str(tmp_path / 'killed')
    marker = str(tmp_path / 'in_epoch_2')
    # The hook writes the marker after iteration 2 of 4 of epoch 2 and
    # waits there: the kill lands mid-epoch, after the epoch-1 checkpoint.
    pausing = config(
        tmp_path, png_root, 'pausing', [
            dict(
                type='PauseMidEpochHook',
                epoch=2,
                iter_in_epoch=2,
                marker=marker)
        ])
    process = subprocess.Popen(
        [sys.executable, 'tools/train.py', pausing, '--work-dir', work_dir],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    try:
        wait_for(marker, process)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert open(marker).read() == '6'  # 4 + 2 iterations done

    # Only the complete checkpoint of epoch 1 exists, and it loads.
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) \
        == ['epoch_1.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as file:
        assert file.read().strip() == osp.join(work_dir, 'epoch_1.pth')
    epoch_1 = load_checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    assert epoch_1['meta']['epoch'] == 1 and epoch_1['meta']['iter'] == 4
    assert {'state_dict', 'optimizer', 'param_schedulers', 'message_hub',
            'rng_state'} <= set(epoch_1)

    # Resume (without the pausing hook) to the end, and compare with an
    # uninterrupted run of the same config.
    plain = config(tmp_path, png_root, 'plain')
    run_tool('train', plain, '--work-dir', work_dir, '--resume')
    run_tool('train', plain, '--work-dir', str(tmp_path / 'straight'))
    resumed = load_checkpoint(osp.join(work_dir, 'epoch_3.pth'))
    straight = load_checkpoint(
        osp.join(str(tmp_path / 'straight'), 'epoch_3.pth'))
    assert resumed['meta']['iter'] == straight['meta']['iter'] == 12
    assert same_weights(resumed, straight)


@pytest.mark.slow
def test_sigkill_while_saving_keeps_the_last_checkpoint(tmp_path, png_root):
    """With ``max_keep_ckpts=1`` (the digits demo) mmengine's CheckpointHook
    removes the only checkpoint before writing the next one: a kill in
    between left no checkpoint. The checkpoint of epoch 1 must survive a
    kill while epoch 2's is saved, and ``--resume`` must end where an
    uninterrupted run ends, bit for bit."""
    work_dir = str(tmp_path / 'killed')
    keep_one = dict(type=CHECKPOINT_HOOK, interval=1, max_keep_ckpts=1)
    killing = config(
        tmp_path, png_root, 'killing',
        [dict(type='KillWhileSavingHook', epoch=2)], checkpoint=keep_one)
    result = subprocess.run(
        [sys.executable, 'tools/train.py', killing, '--work-dir', work_dir],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]

    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) \
        == ['epoch_1.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as file:
        assert file.read().strip() == osp.join(work_dir, 'epoch_1.pth')
    assert load_checkpoint(osp.join(work_dir, 'epoch_1.pth'))['meta'][
        'iter'] == 4

    plain = config(tmp_path, png_root, 'plain', checkpoint=keep_one)
    run_tool('train', plain, '--work-dir', work_dir, '--resume')
    run_tool('train', plain, '--work-dir', str(tmp_path / 'straight'))
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) \
        == ['epoch_3.pth']
    assert not [f for f in os.listdir(work_dir) if '.tmp' in f]
    resumed = load_checkpoint(osp.join(work_dir, 'epoch_3.pth'))
    straight = load_checkpoint(
        osp.join(str(tmp_path / 'straight'), 'epoch_3.pth'))
    assert resumed['meta']['iter'] == straight['meta']['iter'] == 12
    assert same_weights(resumed, straight)
