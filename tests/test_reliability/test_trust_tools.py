"""Results carry their provenance; the tools refuse contradicting inputs.

One tiny CE + GradMix run on the digits protocol (split 0) is trained
once for the module; the tests then test, resume and misuse its
checkpoint through ``tools/train.py`` / ``tools/test.py`` in-process.
"""
import json
import os.path as osp

import pytest
import torch
from helpers import logged_messages
from reliability_helpers import (
    ce_gradmix_model,
    load_checkpoint,
    loader,
    osr_digits,
    run_tool,
    runtime,
    write_config,
)

from gradmix_plugin.datasets import get_osr_split
from gradmix_plugin.utils import ProvenanceMismatchError, file_sha256

PIPELINE = [dict(type='PackInputs')]


def write(tmp_path, name='digits', bank_dataset=None, test_dataset=None):
    bank = bank_dataset or osr_digits('known', 'train', 24, PIPELINE)
    test = test_dataset or osr_digits('open', 'test', 30, PIPELINE)
    return write_config(
        tmp_path / f'{name}.py',
        osr_split=0,
        model=ce_gradmix_model(num_classes=6),
        train_dataloader=loader(osr_digits('known', 'train', 24, PIPELINE),
                                8),
        test_dataloader=loader(test, 8, shuffle=False),
        test_evaluator=dict(
            type='OSRMetric',
            scores=('msp', 'class_knn'),
            feature='feats',
            class_knn_k=1),
        test_cfg=dict(),
        **runtime(
            1,
            custom_hooks=[
                dict(type='GradMixModelHook'),
                dict(
                    type='OSRBankHook',
                    dataloader=loader(bank, 8, shuffle=False))
            ]))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(config, work dir, checkpoint) of a 1-epoch split-0 run."""
    tmp_path = tmp_path_factory.mktemp('provenance')
    config = write(tmp_path)
    work_dir = str(tmp_path / 'train')
    run_tool('train', config, '--work-dir', work_dir)
    return config, work_dir, osp.join(work_dir, 'epoch_1.pth')


def test_checkpoint_records_its_provenance(trained):
    config, _, checkpoint = trained
    record = load_checkpoint(checkpoint)['meta']['provenance']
    known, _ = get_osr_split('digits', 0)
    assert record['config'] == osp.abspath(config)
    assert record['protocol'] == 'digits' and record['split'] == 0
    assert record['known_classes'] == known
    assert record['unknown_classes'] == [
        c for c in range(10) if c not in known
    ]
    assert record['dataset_type'] == 'DigitsDataset'
    assert record['seed'] == 0 and record['world_size'] == 1
    assert record['versions']['torch'] == torch.__version__.split('+')[0] \
        or record['versions']['torch'] == torch.__version__
    assert {'mmengine', 'mmpretrain', 'gradmix_plugin',
            'python'} <= set(record['versions'])


@pytest.mark.slow
def test_metrics_json_records_config_data_and_checkpoint(trained, tmp_path):
    config, _, checkpoint = trained
    run_tool('test', config, checkpoint, '--work-dir', str(tmp_path))
    with open(tmp_path / 'osr_metrics.json') as file:
        report = json.load(file)
    record = report['provenance']
    assert record['checkpoint'] == osp.abspath(checkpoint)
    assert record['checkpoint_sha256'] == file_sha256(checkpoint)
    assert record['config'] == osp.abspath(config)
    assert (record['protocol'], record['split']) == ('digits', 0)
    assert 'osr/msp/auroc' in report


@pytest.mark.slow
def test_test_refuses_a_checkpoint_of_another_split(trained, tmp_path):
    config, _, checkpoint = trained
    with pytest.raises(ProvenanceMismatchError) as err:
        run_tool('test', config, checkpoint, '--work-dir', str(tmp_path),
                 '--cfg-options', 'osr_split=1')
    message = str(err.value)
    assert 'split: 0 in the checkpoint, 1 in the config' in message
    assert 'known_classes' in message and '--allow-mismatch' in message
    assert not osp.exists(tmp_path / 'osr_metrics.json')
    # An explicit override tests anyway.
    run_tool('test', config, checkpoint, '--work-dir', str(tmp_path),
             '--allow-mismatch', '--cfg-options', 'osr_split=1')
    assert osp.exists(tmp_path / 'osr_metrics.json')


@pytest.mark.slow
def test_test_refuses_a_checkpoint_of_another_dataset(trained, tmp_path):
    config, _, checkpoint = trained
    other = write(
        tmp_path,
        name='folders',
        test_dataset=dict(
            type='OSRDataset',
            protocol='cifar10',
            split=0,
            subset='open',
            dataset=dict(type='CustomDataset', data_root='/nowhere')))
    with pytest.raises(ProvenanceMismatchError,
                       match="dataset_type: 'DigitsDataset' in the "
                       "checkpoint, 'CustomDataset' in the config"):
        run_tool('test', other, checkpoint, '--work-dir', str(tmp_path))


@pytest.mark.slow
def test_resume_refuses_another_split(trained, tmp_path):
    config, work_dir, checkpoint = trained
    with pytest.raises(ProvenanceMismatchError,
                       match='split: 0 in the checkpoint, 2 in the config'):
        run_tool('train', config, '--work-dir', work_dir, '--resume',
                 checkpoint, '--cfg-options', 'osr_split=2')


@pytest.mark.slow
def test_resume_without_checkpoint_says_so(trained, tmp_path):
    config, _, _ = trained
    with logged_messages() as messages:
        run_tool('train', config, '--work-dir', str(tmp_path), '--resume')
    assert any(f'--resume: no checkpoint found in {tmp_path}' in m and
               'training starts from scratch' in m for m in messages)
    assert osp.exists(tmp_path / 'epoch_1.pth')


@pytest.mark.slow
def test_test_checks_the_evaluator_before_testing(trained, tmp_path):
    config, _, checkpoint = trained
    with pytest.raises(ValueError,
                       match=r"test_evaluator has no OSRMetric \(found "
                       r"\['Accuracy'\]\)"):
        run_tool('test', config, checkpoint, '--work-dir', str(tmp_path),
                 '--cfg-options', 'test_evaluator.type=Accuracy',
                 'test_evaluator.scores=None', 'test_evaluator.feature=None')
    assert not osp.exists(tmp_path / 'osr_metrics.json')


@pytest.mark.parametrize('dataset,message', [
    (dict(type='NoSuchDataset'), 'NoSuchDataset'),
    (dict(type='CustomDataset', data_root='/no/such/bank'), '/no/such/bank'),
])
@pytest.mark.slow
def test_bad_bank_loader_fails_before_the_first_iteration(
        tmp_path, dataset, message):
    bank = osr_digits('known', 'train', 24, PIPELINE)
    bank['dataset'] = dataset
    config = write(tmp_path, bank_dataset=bank)
    with pytest.raises(Exception, match=message):
        run_tool('train', config, '--work-dir', str(tmp_path / 'work'))
    assert not osp.exists(tmp_path / 'work' / 'epoch_1.pth')


@pytest.mark.slow
def test_resume_with_other_shapes_fails_short(trained, tmp_path):
    config, work_dir, checkpoint = trained
    with pytest.raises(ValueError) as err:
        run_tool('train', config, '--work-dir', work_dir, '--resume',
                 checkpoint, '--cfg-options',
                 'model.backbone.base_channels=16')
    message = str(err.value)
    assert f'checkpoint {checkpoint} does not fit the model ImageClassifier' \
        in message
    assert 'has shape (8, 8, 3, 3) in the checkpoint but (16, 8, 3, 3) in ' \
        'the model' in message
    assert 'more shape mismatches' in message
    assert len(message) < 1500
