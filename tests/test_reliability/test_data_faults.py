"""Misplaced data: a symbolic link loop in a data folder, an image of
another size among the others; a smoke run on a little data."""
import json
import os
import shutil

import pytest
import torch
from helpers import logged_messages
from mmpretrain.structures import DataSample
from reliability_helpers import (
    ce_gradmix_model,
    load_checkpoint,
    loader,
    osr_digits,
    run_tool,
    runtime,
    write_config,
)

from gradmix_plugin.models.data_preprocessors import OSRDataPreprocessor
from gradmix_plugin.utils import apply_smoke
from gradmix_plugin.utils.data_checks import SymlinkLoopError

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def test_symlink_loop_in_a_data_folder_is_named(tmp_path, png_root):
    root = tmp_path / 'data'
    shutil.copytree(png_root, root)
    link = root / 'a' / 'again'
    os.symlink(root / 'a', link)
    cfg = write_config(
        tmp_path / 'loop.py',
        model=ce_gradmix_model(),
        train_dataloader=loader(
            dict(type='CustomDataset', data_root=str(root),
                 pipeline=PIPELINE), 4),
        **runtime(1, custom_hooks=[dict(type='GradMixModelHook')]))
    with pytest.raises(SymlinkLoopError) as err:
        run_tool('train', cfg, '--work-dir', str(tmp_path / 'work'))
    message = str(err.value)
    assert (f'a data folder holds a symbolic link loop: {link} is a '
            f'symbolic link to {root / "a"}, a folder that contains it'
            in message)
    assert 'again/again' not in message


def test_image_of_another_size_warns_once_naming_it():
    preprocessor = OSRDataPreprocessor(mean=[0.] * 3, std=[1.] * 3)
    images = [torch.zeros(3, 32, 32, dtype=torch.uint8)] * 3 + [
        torch.zeros(3, 28, 28, dtype=torch.uint8)
    ]
    samples = [
        DataSample(metainfo=dict(img_path=f'/data/cat/{i}.png'))
        for i in range(4)
    ]
    with logged_messages() as messages:
        out = preprocessor(dict(inputs=images, data_samples=samples))
        preprocessor(dict(inputs=images, data_samples=samples))
    assert out['inputs'].shape == (4, 3, 32, 32)
    warnings = [m for m in messages if 'is zero-padded' in m]
    assert warnings == [
        'OSRDataPreprocessor: image /data/cat/3.png is 28x28 but the other '
        'images of its batch are 32x32: it is zero-padded to the largest '
        'size, not resized. Fix the file or add a Resize to the pipeline. '
        '(Warned once.)'
    ]


@pytest.mark.slow
def test_smoke_run_shrinks_every_dataset_and_validates_at_the_end(
        tmp_path):
    view = [dict(type='PackInputs')]
    bank = osr_digits('known', 'train', 200, view)
    cfg = write_config(
        tmp_path / 'smoke.py',
        custom_imports=dict(
            imports=['gradmix_plugin', 'recording_hooks'],
            allow_failed_imports=False),
        osr_split=0,
        model=ce_gradmix_model(num_classes=6),
        train_dataloader=loader(osr_digits('known', 'train', 200, view), 4),
        **runtime(
            10,
            train_cfg=dict(by_epoch=True, max_epochs=10, val_interval=1),
            val_cfg=dict(),
            val_dataloader=loader(
                osr_digits('open', 'test', 200, view), 8, shuffle=False),
            val_evaluator=dict(
                type='OSRMetric', scores=('msp', 'knn', 'class_knn'),
                feature='feats'),
            custom_hooks=[
                dict(type='GradMixModelHook'),
                dict(type='OSRBankHook',
                     dataloader=loader(bank, 8, shuffle=False)),
                dict(type='ValMetricsRecorderHook')
            ]))
    work_dir = tmp_path / 'work'
    run_tool('train', cfg, '--work-dir', str(work_dir), '--smoke', '2')
    checkpoints = sorted(f for f in os.listdir(work_dir)
                         if f.endswith('.pth'))
    assert checkpoints == ['epoch_2.pth']
    # 6 known classes x 2 samples, batches of 4: 3 iterations per epoch.
    assert load_checkpoint(str(work_dir / 'epoch_2.pth'))['meta'][
        'iter'] == 6
    with open(work_dir / 'val_metrics.json') as file:
        assert len(json.load(file)) == 1  # validated once, at the end


def test_smoke_needs_a_positive_number():
    with pytest.raises(ValueError,
                       match='--smoke needs a positive number of samples per '
                       'class, got 0'):
        apply_smoke(dict(), 0)
