from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
import torch
import torch.distributed as dist
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample
from torch.nn.parallel import DistributedDataParallel

import gradmix_plugin  # noqa: F401
from gradmix_plugin.engine.hooks import GradMixModelHook
from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)
from gradmix_plugin.models.batch_augments import GradMix
from gradmix_plugin.utils import load_from_local_safely

NUM_CLASSES = 3


def classifier_cfg(batch_augments=None,
                   layers=('backbone.layer3', 'backbone.layer4'),
                   preprocessor='ClsDataPreprocessor'):
    if batch_augments is None:
        batch_augments = dict(augments=[
            dict(type='GradMix', fill='partner', attribution_layers=layers)
        ])
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=64,
            loss=dict(type='CrossEntropyLoss', use_soft=True)),
        data_preprocessor=dict(
            type=preprocessor,
            num_classes=NUM_CLASSES,
            mean=[127.5] * 3,
            std=[64.0] * 3,
            batch_augments=batch_augments))


def stand_in_runner(model):
    return SimpleNamespace(model=model, logger=MagicMock())


class TinyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, length=8):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(
            0, 256, (length, 3, 16, 16), generator=generator,
            dtype=torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return dict(
            inputs=self.images[index],
            data_samples=DataSample().set_gt_label(index % NUM_CLASSES))


@pytest.mark.parametrize('preprocessor',
                         ['ClsDataPreprocessor', 'OSRDataPreprocessor'])
def test_runner_trains_with_gradmix_and_checkpoint_stays_clean(
        tmp_path, preprocessor):
    runner = Runner(
        model=classifier_cfg(preprocessor=preprocessor),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=TinyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[dict(type='GradMixModelHook')],
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=2, by_epoch=False)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')
    (gradmix, ) = find_gradmix_augments(runner.model)
    calls = []
    mask = gradmix._mask

    def counting_mask(inputs, maps):
        calls.append(inputs.shape)
        return mask(inputs, maps)

    gradmix._mask = counting_mask
    runner.train()

    assert gradmix.attached_model is runner.model
    assert calls == [torch.Size([4, 3, 16, 16])] * 2
    # Only tensors in the checkpoint: it loads with weights_only=True.
    checkpoint = load_from_local_safely(
        str(tmp_path / 'iter_2.pth'), map_location='cpu')
    assert set(checkpoint['state_dict']) == set(
        runner.model.state_dict())


def test_hook_attaches_unwrapped_model_under_ddp(tmp_path):
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = MODELS.build(classifier_cfg())
        wrapped = DistributedDataParallel(model)
        runner = stand_in_runner(wrapped)
        HOOKS.build(dict(type='GradMixModelHook')).before_train(runner)
        (gradmix, ) = find_gradmix_augments(model)
        assert gradmix.attached_model is model
        runner.logger.info.assert_called_once()

        data = dict(
            inputs=[torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
                    for _ in range(4)],
            data_samples=[DataSample().set_gt_label(i % 3)
                          for i in range(4)])
        data = wrapped.module.data_preprocessor(data, training=True)
        losses = wrapped(**data, mode='loss')
        losses['loss'].backward()  # the DDP reducer sees one clean backward
        assert all(p.grad is not None for p in model.parameters())
    finally:
        dist.destroy_process_group()


def test_finds_gradmix_among_none_entries_and_attaches_all():
    model = MODELS.build(
        classifier_cfg(
            batch_augments=dict(
                augments=[
                    dict(type='GradMix'),
                    dict(type='Mixup', alpha=0.2),
                    dict(type='GradMix', fill='mean')
                ],
                probs=[0.3, 0.3, 0.3])))
    augments = model.data_preprocessor.batch_augments.augments
    assert augments[-1] is None
    GradMixModelHook().before_train(stand_in_runner(model))
    found = find_gradmix_augments(model)
    assert len(found) == 2
    assert all(gradmix.attached_model is model for gradmix in found)
    assert all(isinstance(gradmix, GradMix) for gradmix in found)


def test_warns_without_gradmix():
    model = MODELS.build(classifier_cfg(batch_augments=False))
    runner = stand_in_runner(model)
    GradMixModelHook().before_train(runner)
    (message, ), _ = runner.logger.warning.call_args
    assert 'found no GradMix' in message


def test_wrong_layer_name_fails_at_attach_time():
    model = MODELS.build(classifier_cfg(layers=('backbone.stage3', )))
    with pytest.raises(ValueError, match=r"\['backbone.stage3'\].*layer3"):
        GradMixModelHook().before_train(stand_in_runner(model))
