"""OSRBankHook gives OSRMetric the final layer of the model's head, so a
score that needs it (ReAct) runs in a runner."""
import numpy as np
import torch
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import gradmix_plugin  # noqa: F401


class Toy(Dataset):

    def __init__(self, labels, seed):
        generator = torch.Generator().manual_seed(seed)
        self.labels = list(labels)
        self.images = [
            torch.randint(0, 255, (3, 16, 16), generator=generator).to(
                torch.uint8) for _ in self.labels
        ]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return dict(inputs=self.images[index],
                    data_samples=DataSample().set_gt_label(
                        self.labels[index]))


def loader(dataset):
    return dict(dataset=dataset, batch_size=4, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'))


def test_react_in_a_runner_gets_the_head(tmp_path):
    torch.manual_seed(0)
    runner = Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                          base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='OSRLinearClsHead', num_classes=3,
                      in_channels=64),
            data_preprocessor=dict(type='ClsDataPreprocessor',
                                   mean=[127.5] * 3, std=[64.0] * 3)),
        work_dir=str(tmp_path),
        val_dataloader=loader(Toy([0, 1, 2, -1, 0, 1, -1, 2], seed=2)),
        val_cfg=dict(),
        val_evaluator=dict(type='OSRMetric', scores=('react', 'mls'),
                           feature='feats'),
        custom_hooks=[
            dict(type='OSRBankHook',
                 dataloader=loader(Toy([i % 3 for i in range(12)], seed=1)))
        ],
        default_scope='mmpretrain',
        log_level='WARNING')
    metrics = runner.val()
    assert 'osr/react/auroc' in metrics
    metric = runner.val_evaluator.metrics[0]
    assert metric.model_name == 'ImageClassifier'
    np.testing.assert_array_equal(
        metric.fc_weight, runner.model.head.fc.weight.detach().numpy())
    assert metric.last_fit_info['react']['fitted']['fit_on'] == 'train'
