"""Refusals of the detector builder and the inferencer set-up."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import logged_messages
from mmengine.config import Config
from mmpretrain import get_model

from gradmix_plugin.apis import (
    DetectorMismatchError,
    OSRDetector,
    OSRInferencer,
    find_test_pipeline,
)
from gradmix_plugin.apis.builder import build_detector, find_bank_dataset
from gradmix_plugin.engine.hooks.osr_report_hook import image_paths

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')


def test_config_without_bank_hook_is_refused():
    with pytest.raises(ValueError, match='has no OSRBankHook'):
        find_bank_dataset(Config(dict(custom_hooks=[])))


def test_plain_bank_dataset_gets_a_held_out_split(tmp_path):
    """A bank dataset without OSRDataset (every class known): the
    held-out split is drawn from an OSRDataset view of all its classes."""
    bank = dict(
        type='DigitsDataset',
        split='train',
        indices=150,
        pipeline=[dict(type='PackInputs')])
    cfg = Config(
        dict(custom_hooks=[
            dict(type='OSRBankHook', dataloader=dict(dataset=bank))
        ]))
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'weights')
    detector = build_detector(
        cfg, str(ckpt), model=get_model(DIGITS), holdout=0.2)
    assert detector.classes == tuple(str(d) for d in range(10))
    assert detector.provenance['bank']['dataset']['type'] == 'DigitsDataset'
    assert detector.threshold_source == 'known_holdout'
    sizes = (detector.provenance['bank']['size'],
             detector.provenance['threshold_images']['size'])
    assert sum(sizes) == 150 and 20 <= sizes[1] <= 40
    # OSRBankHook's max_samples caps the bank as the hook does.
    cfg.custom_hooks[0].max_samples = 50
    capped = build_detector(
        cfg, str(ckpt), model=get_model(DIGITS), holdout=0.2)
    assert capped.provenance['bank']['size'] == 50
    assert capped.provenance['bank']['max_samples'] == 50
    unlabelled = dict(bank, metainfo=dict(classes=[]))
    with pytest.raises(ValueError, match='has no classes in its metainfo'):
        build_detector(
            Config(
                dict(custom_hooks=[
                    dict(
                        type='OSRBankHook',
                        dataloader=dict(dataset=unlabelled))
                ])), str(ckpt), model=object())


def test_bad_target_rate_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r'must lie in \(0, 1\], got 95'):
        build_detector(Config(), 'unused.pth', tpr=95, model=object())


def test_logit_score_on_a_model_without_head_is_refused():
    with pytest.raises(DetectorMismatchError,
                       match="score 'msp' needs logits, but the model has "
                       'no classifier head'):
        OSRDetector.required_keys('msp', 'embeds', has_logits=False)
    assert OSRDetector.required_keys('msp', 'embeds', True) == ('logits', )
    assert OSRDetector.required_keys('class_knn', 'both', False) == (
        'feats', 'embeds')


def test_config_without_test_pipeline_is_refused():
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(type='OSRDataset', dataset=dict(type='X')))))
    with pytest.raises(ValueError, match='has no test pipeline'):
        find_test_pipeline(cfg)
    cfg.test_dataloader.dataset.dataset.pipeline = [dict(type='PackInputs')]
    assert find_test_pipeline(cfg) == [dict(type='PackInputs')]


def test_npz_paths_need_an_unshuffled_test_loader():
    dataset = SimpleNamespace(
        __len__=None, get_data_info=lambda i: dict(img_path=f'{i}.png'))
    loader = SimpleNamespace(
        dataset=_Sized(dataset, 2), sampler=SimpleNamespace(shuffle=True))
    with pytest.raises(ValueError, match='must not shuffle'):
        image_paths(loader, 2)
    loader.sampler.shuffle = False
    assert image_paths(loader, 2).tolist() == ['0.png', '1.png']


class _Sized:

    def __init__(self, inner, size):
        self.inner, self.size = inner, size

    def __len__(self):
        return self.size

    def get_data_info(self, index):
        return self.inner.get_data_info(index)


def test_no_holdout_warns_that_the_rate_is_optimistic():
    rng = np.random.default_rng(0)
    with logged_messages() as messages:
        detector = OSRDetector.from_outputs(
            'class_knn',
            dict(embeds=rng.normal(size=(30, 4)), labels=np.arange(30) % 3),
            list('abc'))
    assert detector.threshold_source == 'training'
    assert any('threshold is set on the training images' in m
               and 'optimistic' in m for m in messages)


def test_built_model_with_pretrained_and_bad_batch_size_are_refused():
    rng = np.random.default_rng(0)
    detector = OSRDetector.from_outputs(
        'class_knn',
        dict(embeds=rng.normal(size=(30, 64)), labels=np.arange(30) % 6),
        list('abcdef'),
        threshold=0.2)
    model = get_model(DIGITS)
    with pytest.raises(ValueError, match='got a built model and'):
        OSRInferencer(model, detector=detector, pretrained='x.pth')
    inferencer = OSRInferencer(model, detector=detector)
    with pytest.raises(ValueError, match='batch_size must be a positive'):
        inferencer(np.zeros((32, 32, 3), np.uint8), batch_size=0)
    result = inferencer(np.zeros((32, 32, 3), np.uint8))[0]
    assert result['pred_class'] in 'abcdef'
