"""The held-out known subset and the wrapper-level pipeline of OSRDataset.
"""
import numpy as np
import pytest
from mmpretrain.datasets import CustomDataset

from gradmix_plugin.datasets import OSRDataset

DIGITS = dict(type='DigitsDataset', split='train')


def _digits(subset, **kwargs):
    return OSRDataset(
        dataset=DIGITS, protocol='digits', split=0, subset=subset, **kwargs)


def test_holdout_and_train_partition_the_known_samples_per_class():
    known = _digits('known')
    holdout = _digits('known_holdout')
    train = _digits('known_train')
    held, rest = set(holdout._ori_indices), set(train._ori_indices)
    assert not held & rest
    assert held | rest == set(known._ori_indices)
    counts = np.bincount(known.get_gt_labels())
    # round(0.1 * n) per class, the same labels as 'known'.
    assert np.bincount(holdout.get_gt_labels()).tolist() == [
        int(round(0.1 * n)) for n in counts
    ]
    assert holdout.metainfo['classes'] == known.metainfo['classes']
    assert holdout.metainfo['holdout'] == 0.1
    assert 'holdout 0.1' in repr(holdout)


def test_holdout_is_seeded():
    first = _digits('known_holdout', holdout=0.3, seed=1)._ori_indices
    again = _digits('known_holdout', holdout=0.3, seed=1)._ori_indices
    other = _digits('known_holdout', holdout=0.3, seed=2)._ori_indices
    np.testing.assert_array_equal(first, again)
    assert set(first) != set(other)
    assert len(first) == len(other)


def test_default_subsets_are_unchanged_by_the_new_ones():
    assert len(_digits('known')) == 754
    assert _digits('known').holdout is None


@pytest.mark.parametrize('holdout', [0, 1, 1.5, -0.1, True, '0.1'])
def test_bad_holdout_fraction_is_refused(holdout):
    with pytest.raises(ValueError, match='fraction in'):
        _digits('known_holdout', holdout=holdout)


def test_holdout_with_another_subset_is_refused():
    with pytest.raises(ValueError, match="`holdout`=0.2 needs subset"):
        _digits('known', holdout=0.2)


def test_holdout_of_a_one_sample_class_is_refused():
    with pytest.raises(ValueError, match='too few to hold one out'):
        _digits('known_holdout', max_per_class=1)


def test_pipeline_given_to_the_wrapper_reaches_the_wrapped_dataset():
    dataset = OSRDataset(
        dataset=dict(type='DigitsDataset', split='test'),
        protocol='digits',
        subset='open',
        pipeline=[dict(type='PackInputs')])
    packed = dataset[0]
    assert tuple(packed['inputs'].shape) == (3, 32, 32)
    assert dataset.dataset.pipeline.transforms


def test_pipeline_given_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match='give the pipeline once'):
        OSRDataset(
            dataset=dict(DIGITS, pipeline=[dict(type='PackInputs')]),
            protocol='digits',
            pipeline=[dict(type='PackInputs')])
    (tmp_path / 'a').mkdir()
    built = CustomDataset(
        data_root=str(tmp_path), pipeline=[dict(type='PackInputs')],
        lazy_init=True)
    with pytest.raises(ValueError, match='give the pipeline once'):
        OSRDataset(
            dataset=built,
            known_classes=[0],
            pipeline=[dict(type='PackInputs')],
            lazy_init=True)
