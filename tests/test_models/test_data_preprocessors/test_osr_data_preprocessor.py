import copy

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from gradmix_plugin.datasets import OSRDataset

MEAN, STD = [100., 110., 120.], [50., 60., 70.]
CONFIG = dict(
    mean=MEAN,
    std=STD,
    to_rgb=True,
    num_classes=3,
    batch_augments=dict(augments=dict(type='Mixup', alpha=1.)))


def _batch(labels, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(
        0, 256, (len(labels), 3, size, size),
        dtype=torch.uint8,
        generator=generator)
    samples = [DataSample().set_gt_label(label) for label in labels]
    return dict(inputs=inputs, data_samples=samples)


def _normalised(inputs):
    """The oracle: BGR to RGB, then per-channel normalisation."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (inputs.flip(1).float() - mean) / std


def test_test_batch_with_unknown_labels_keeps_integer_labels():
    preprocessor = MODELS.build(dict(type='OSRDataPreprocessor', **CONFIG))
    batch = _batch([0, -1, 2, -1])
    # mmpretrain's own pre-processor one-hots test labels when batch
    # augments are set, which fails on the unknown label.
    with pytest.raises(RuntimeError):
        ClsDataPreprocessor(**CONFIG)(copy.deepcopy(batch), training=False)
    out = preprocessor(copy.deepcopy(batch), training=False)
    torch.testing.assert_close(out['inputs'], _normalised(batch['inputs']))
    assert [s.gt_label.tolist() for s in out['data_samples']] == [[0], [-1],
                                                                  [2], [-1]]
    assert all('gt_score' not in s for s in out['data_samples'])


def test_training_batch_with_an_unknown_label_raises():
    preprocessor = MODELS.build(dict(type='OSRDataPreprocessor', **CONFIG))
    with pytest.raises(ValueError, match='sample 1 has gt_label -1'):
        preprocessor(_batch([0, -1, 2]), training=True)


def test_training_is_exactly_the_parent_behaviour():
    batch = _batch([0, 1, 2, 1])
    results = []
    for preprocessor in (MODELS.build(dict(type='OSRDataPreprocessor',
                                           **CONFIG)),
                         ClsDataPreprocessor(**CONFIG)):
        torch.manual_seed(3)  # Mixup draws from torch and numpy
        np.random.seed(3)
        results.append(preprocessor(copy.deepcopy(batch), training=True))
    ours, parents = results
    torch.testing.assert_close(ours['inputs'], parents['inputs'])
    # Mixup was applied: the inputs are not the plain normalised images
    # and the scores are mixed one-hot vectors.
    assert not torch.allclose(ours['inputs'], _normalised(batch['inputs']))
    scores = torch.stack([s.gt_score for s in ours['data_samples']])
    assert scores.shape == (4, 3)
    torch.testing.assert_close(scores.sum(1), torch.ones(4))
    torch.testing.assert_close(
        scores, torch.stack([s.gt_score for s in parents['data_samples']]))


@pytest.mark.parametrize('collate', ['default', 'pseudo'])
def test_multi_view_inputs_are_normalised_per_view(collate):
    views = [_batch([0, 1], seed=seed)['inputs'] for seed in (1, 2)]
    if collate == 'default':
        inputs = views
    else:  # pseudo_collate: a list of per-sample tensors for each view
        inputs = [list(view) for view in views]
    samples = [DataSample().set_gt_label(label) for label in (0, -1)]
    config = dict(CONFIG, batch_augments=None)
    preprocessor = MODELS.build(dict(type='OSRDataPreprocessor', **config))

    out = preprocessor(dict(inputs=inputs, data_samples=samples))
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 2
    for view, processed in zip(views, out['inputs']):
        torch.testing.assert_close(processed, _normalised(view))
    assert [s.gt_label.tolist() for s in out['data_samples']] == [[0], [-1]]

    samples = [DataSample().set_gt_label(label) for label in (0, 2)]
    out = MODELS.build(
        dict(type='OSRDataPreprocessor', to_onehot=True, **config))(
            dict(inputs=inputs, data_samples=samples), training=True)
    for view, processed in zip(views, out['inputs']):
        torch.testing.assert_close(processed, _normalised(view))
    assert out['data_samples'][1].gt_score.tolist() == [0., 0., 1.]

    with pytest.raises(ValueError, match='2 views.*batch_augments'):
        MODELS.build(dict(type='OSRDataPreprocessor', **CONFIG))(
            dict(inputs=inputs, data_samples=samples), training=True)


def test_multi_view_pipeline_end_to_end():
    dataset = OSRDataset(
        dict(
            type='DigitsDataset',
            split='test',
            pipeline=[
                dict(
                    type='MultiView',
                    num_views=2,
                    transforms=[[dict(type='RandomFlip', prob=0.5)]]),
                dict(type='PackInputs')
            ]),
        protocol='digits',
        split=0,
        subset='open')
    batch = default_collate([dataset[i] for i in (0, 1, len(dataset) - 1)])
    preprocessor = MODELS.build(
        dict(type='OSRDataPreprocessor', mean=MEAN, std=STD, num_classes=6))
    out = preprocessor(batch, training=False)
    assert [tuple(view.shape) for view in out['inputs']] == [(3, 3, 32, 32)
                                                             ] * 2
    assert out['data_samples'][-1].gt_label.tolist() == [-1]


def test_pseudo_collated_single_view():
    dataset = OSRDataset(
        dict(type='DigitsDataset', split='test',
             pipeline=[dict(type='PackInputs')]),
        known_classes=[4, 2],
        subset='open')
    packed = [dataset[i] for i in (0, len(dataset) - 1)]
    batch = pseudo_collate(packed)
    assert isinstance(batch['inputs'], list)
    preprocessor = MODELS.build(dict(type='OSRDataPreprocessor', **CONFIG))
    out = preprocessor(batch, training=False)
    expected = torch.stack([p['inputs'] for p in packed])
    torch.testing.assert_close(out['inputs'], _normalised(expected))
    assert out['data_samples'][-1].gt_label.tolist() == [-1]
