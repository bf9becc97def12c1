import mmcv
import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS

from gradmix_plugin.datasets import (
    UNKNOWN_LABEL,
    DigitsDataset,
    OSRDataset,
    get_osr_split,
)
from gradmix_plugin.datasets.osr_splits import NUM_SPLITS

CIFAR10_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                 'frog', 'horse', 'ship', 'truck')
NUM_TRAIN, NUM_TEST = 3, 2  # images per class
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _write_class_folders(root, names, num_per_class, ext, marker):
    """Class folders of flat 4x4 images; pixel (0, 0, 0) holds the class
    index in sorted-name order (the oracle), channel 1 a dataset marker."""
    for class_id, name in enumerate(sorted(names)):
        for k in range(num_per_class):
            img = np.zeros((4, 4, 3), np.uint8)
            img[..., 0] = class_id
            img[..., 1] = marker
            mmcv.imwrite(img, str(root / name / f'{k:04d}{ext}'))


@pytest.fixture(scope='module')
def cifar_trees(tmp_path_factory):
    """CIFAR-10-like train/test folder trees (PNG, lossless) and a
    CIFAR-100-like test tree with 100 classes, one image each."""
    root = tmp_path_factory.mktemp('cifar')
    _write_class_folders(root / 'cifar10' / 'train', CIFAR10_NAMES,
                         NUM_TRAIN, '.png', 10)
    _write_class_folders(root / 'cifar10' / 'test', CIFAR10_NAMES, NUM_TEST,
                         '.png', 10)
    _write_class_folders(root / 'cifar100' / 'test',
                         [f'fine{c:03d}' for c in range(100)], 1, '.png',
                         100)
    return root


def _folder(root, *parts):
    return dict(
        type='CustomDataset',
        data_root=str(root.joinpath(*parts)),
        pipeline=PIPELINE)


def _samples(dataset):
    """(original class from the pixels, dataset marker, packed label)."""
    result = []
    for i in range(len(dataset)):
        packed = dataset[i]
        pixel = packed['inputs'][:, 0, 0]  # CHW, as written
        result.append((int(pixel[0]), int(pixel[1]),
                       int(packed['data_samples'].gt_label)))
    return result


def test_cifar10_folder_protocol_known_train(cifar_trees):
    for split in range(NUM_SPLITS):
        dataset = DATASETS.build(
            dict(
                type='OSRDataset',
                dataset=_folder(cifar_trees, 'cifar10', 'train'),
                protocol='cifar10',
                split=split))
        known, _ = get_osr_split('cifar10', split)
        assert len(dataset) == len(known) * NUM_TRAIN
        for original, _, label in _samples(dataset):
            assert label == known.index(original)
        assert dataset.metainfo['classes'] == tuple(
            sorted(CIFAR10_NAMES)[c] for c in known)
        assert dataset.CLASSES == dataset.metainfo['classes']


def test_cifar10_folder_protocol_open_test(cifar_trees):
    known, _ = get_osr_split('cifar10', 2)
    subsets = {}
    for subset in ('known', 'unknown', 'open'):
        subsets[subset] = OSRDataset(
            _folder(cifar_trees, 'cifar10', 'test'),
            protocol='cifar10',
            split=2,
            subset=subset)
    assert len(subsets['known']) == len(known) * NUM_TEST
    assert len(subsets['unknown']) == (10 - len(known)) * NUM_TEST
    open_samples = _samples(subsets['open'])
    assert open_samples == _samples(subsets['known']) + _samples(
        subsets['unknown'])
    for original, _, label in open_samples:
        if original in known:
            assert label == known.index(original)
        else:
            assert label == UNKNOWN_LABEL
    np.testing.assert_array_equal(subsets['open'].get_gt_labels(),
                                  [label for *_, label in open_samples])
    assert subsets['open'].get_cat_ids(len(open_samples) - 1) == [-1]
    assert subsets['open'].metainfo['unknown_class_ids'] == tuple(
        c for c in range(10) if c not in known)


def test_data_info_is_relabelled_and_indexed_in_the_wrapper(cifar_trees):
    dataset = OSRDataset(
        _folder(cifar_trees, 'cifar10', 'test'),
        known_classes=[9, 3],
        subset='open')
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [info['sample_idx'] for info in infos] == list(range(len(infos)))
    # Samples keep the wrapped dataset's order: cat (3) before truck (9).
    assert [info['gt_label'] for info in infos[:2 * NUM_TEST]] == (
        [1] * NUM_TEST + [0] * NUM_TEST)
    assert '/cat/' in infos[0]['img_path']
    assert '/truck/' in infos[NUM_TEST]['img_path']
    assert dataset.get_data_info(-1)['sample_idx'] == len(dataset) - 1
    with pytest.raises(IndexError):
        dataset.get_data_info(len(dataset))


def test_cifar_plus_n_takes_unknowns_from_the_second_dataset(cifar_trees):
    for protocol, num_unknown in (('cifar_plus10', 10), ('cifar_plus50', 50)):
        split = 3
        known, unknown = get_osr_split(protocol, split)
        dataset = OSRDataset(
            _folder(cifar_trees, 'cifar10', 'test'),
            protocol=protocol,
            split=split,
            subset='open',
            unknown_dataset=_folder(cifar_trees, 'cifar100', 'test'))
        samples = _samples(dataset)
        assert len(samples) == len(known) * NUM_TEST + num_unknown
        for original, marker, label in samples:
            if marker == 10:
                assert label == known.index(original)
            else:
                assert marker == 100 and label == UNKNOWN_LABEL
                assert original in unknown
        assert sorted(o for o, m, _ in samples if m == 100) == sorted(unknown)

    train = OSRDataset(
        _folder(cifar_trees, 'cifar10', 'train'),
        protocol='cifar_plus10',
        split=3)
    assert len(train) == len(known) * NUM_TRAIN


def test_digits_protocol_splits_are_complementary():
    inner = DigitsDataset(split='test')
    counts = np.bincount(inner.get_gt_labels(), minlength=10)
    for split in range(NUM_SPLITS):
        dataset = OSRDataset(
            inner, protocol='digits', split=split, subset='open')
        known = dataset.metainfo['known_class_ids']
        unknown = dataset.metainfo['unknown_class_ids']
        assert not set(known) & set(unknown)
        assert sorted(known + unknown) == list(range(10))
        labels = dataset.get_gt_labels()
        assert (labels == UNKNOWN_LABEL).sum() == counts[list(unknown)].sum()
        for new_label, class_id in enumerate(known):
            assert (labels == new_label).sum() == counts[class_id]


def test_digits_open_set_samples_go_through_the_pipeline():
    dataset = OSRDataset(
        dict(
            type='DigitsDataset',
            split='test',
            pipeline=[dict(type='PackInputs')]),
        protocol='digits',
        split=1,
        subset='unknown')
    packed = dataset[0]
    assert packed['inputs'].shape == (3, 32, 32)
    assert packed['inputs'].dtype == torch.uint8
    assert packed['data_samples'].gt_label.tolist() == [UNKNOWN_LABEL]


def test_explicit_unknown_classes_and_lazy_init():
    dataset = OSRDataset(
        dict(type='DigitsDataset', split='train'),
        known_classes=[1, 7],
        unknown_classes=[0],
        subset='open',
        lazy_init=True)
    assert not dataset._fully_initialized
    labels = DigitsDataset(split='train').get_gt_labels()
    assert len(dataset) == np.isin(labels, [0, 1, 7]).sum()
    assert dataset._fully_initialized
    assert dataset.metainfo['classes'] == ('1', '7')


def test_max_per_class_keeps_a_seeded_subset_of_every_class():
    inner = DigitsDataset(split='test')
    full = OSRDataset(inner, protocol='digits', split=0, subset='open')
    small = OSRDataset(
        inner, protocol='digits', split=0, subset='open', max_per_class=3)
    again = OSRDataset(
        inner, protocol='digits', split=0, subset='open', max_per_class=3)
    other = OSRDataset(
        inner,
        protocol='digits',
        split=0,
        subset='open',
        max_per_class=3,
        seed=1)
    # 6 known and 4 unknown classes, 3 samples each.
    assert len(small) == 30 < len(full)
    labels = small.get_gt_labels()
    assert np.bincount(labels[labels >= 0]).tolist() == [3] * 6
    ori_labels = inner.get_gt_labels()[small._ori_indices[labels < 0]]
    assert np.unique(ori_labels, return_counts=True)[1].tolist() == [3] * 4
    assert small._ori_indices.tolist() == again._ori_indices.tolist()
    assert small._ori_indices.tolist() != other._ori_indices.tolist()
    # Kept in dataset order, a subset of the full selection.
    assert set(small._ori_indices) <= set(full._ori_indices)


def test_annotation_file_layout_needs_class_names(tmp_path):
    _write_class_folders(tmp_path / 'imgs', ['a', 'b'], 1, '.png', 0)
    (tmp_path / 'ann.txt').write_text('a/0000.png 0\nb/0000.png 1\n')
    config = dict(
        type='CustomDataset',
        data_root=str(tmp_path),
        data_prefix='imgs',
        ann_file='ann.txt')
    with pytest.raises(ValueError, match='CustomDataset.*classes'):
        OSRDataset(config, known_classes=[1])
    dataset = OSRDataset(
        dict(config, metainfo=dict(classes=('a', 'b'))), known_classes=[1])
    assert dataset.get_gt_labels().tolist() == [0]
    assert dataset.get_data_info(0)['img_path'].endswith('b/0000.png')


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (dict(protocol='cifar100'), ValueError, "'cifar100'.*'cifar10'"),
        (dict(protocol='digits', split=5), ValueError, "5 .*'digits'"),
        (dict(protocol='digits', split=-1), ValueError, '-1 '),
        (dict(protocol='digits', subset='test'), ValueError, "'test'"),
        (dict(), ValueError, 'exactly one'),
        (dict(protocol='digits', known_classes=[1]), ValueError,
         'exactly one'),
        (dict(protocol='digits', unknown_classes=[1]), ValueError,
         "'digits'.*unknown_classes"),
        (dict(protocol='cifar_plus10', subset='open'), ValueError,
         "'cifar_plus10'.*unknown_dataset"),
        (dict(protocol='tinyimagenet'), ValueError,
         "'tinyimagenet'.*200.*DigitsDataset.*10"),
        (dict(known_classes=[2, 10]), ValueError,
         'Class id 10 .*known_classes.*DigitsDataset'),
        (dict(known_classes=[-1]), ValueError, 'Class id -1 '),
        (dict(known_classes=[1.5]), ValueError, 'Class id 1.5 '),
        (dict(known_classes=[3], unknown_classes=[12], subset='open'),
         ValueError, 'Class id 12 .*unknown_classes'),
        (dict(known_classes=[3, 3]), ValueError, r'repeats.*\[3, 3\]'),
        (dict(known_classes=[3, 4], unknown_classes=[4, 5]), ValueError,
         r'\[4\] are both known and unknown'),
        (dict(protocol='digits', max_per_class=0), ValueError,
         'max_per_class` must be a positive integer or None, got 0'),
    ])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        OSRDataset(dict(type='DigitsDataset', split='test'), **kwargs)


def test_empty_subset_and_bad_datasets_are_named(tmp_path):
    first_five = DigitsDataset(split='test', indices=5)
    absent = sorted(set(range(10)) - set(first_five.get_gt_labels()))[0]
    with pytest.raises(ValueError, match=f"'known' is empty.*\\[{absent}\\]"):
        OSRDataset(first_five, known_classes=[absent])
    with pytest.raises(TypeError, match='`dataset`.*list'):
        OSRDataset([1, 2], known_classes=[0])
    with pytest.raises(FileNotFoundError, match='missing'):
        OSRDataset(
            dict(type='CustomDataset', data_root=str(tmp_path / 'missing')),
            protocol='cifar10')

