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

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def config(tmp_path, png_root, name, hooks=()):
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
        **runtime(3, custom_hooks=[dict(type='LayerCAMHook'), *hooks]))


def wait_for(path, process, timeout=240):
    start = time.monotonic()
    while not osp.exists(path):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() - start < timeout, f'no {path}'
        time.sleep(0.2)


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
