import random

import mmcv
import numpy as np
import pytest
from PIL import Image

from gradmix_plugin.datasets import (
    UNKNOWN_LABEL,
    OSRDataset,
    TinyImageNet,
    get_osr_split,
)

NUM_CLASSES = 200
GRAY_WNID_INDEX = 17  # a class whose training images are grayscale
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A fake Tiny-ImageNet-200 tree: 200 wnids listed in shuffled order,
    one 8x8 training JPEG per class (grayscale for one class), two
    validation JPEGs per class listed in val_annotations.txt."""
    root = tmp_path_factory.mktemp('tiny-imagenet-200')
    wnids = [f'n{9000000 - 7 * i:08d}' for i in range(NUM_CLASSES)]
    sorted_wnids = sorted(wnids)
    listed = wnids[:]
    random.Random(0).shuffle(listed)
    (root / 'wnids.txt').write_text('\n'.join(listed) + '\n')
    color = np.full((8, 8, 3), 128, np.uint8)
    for wnid in wnids:
        image = color
        if wnid == sorted_wnids[GRAY_WNID_INDEX]:
            image = np.full((8, 8), 128, np.uint8)
        mmcv.imwrite(image, str(root / 'train' / wnid / 'images' /
                                f'{wnid}_0.JPEG'))
        (root / 'train' / wnid / f'{wnid}_boxes.txt').write_text('')
    lines = []
    for k in range(2 * NUM_CLASSES):
        wnid = listed[k % NUM_CLASSES]
        mmcv.imwrite(color, str(root / 'val' / 'images' / f'val_{k}.JPEG'))
        lines.append(f'val_{k}.JPEG\t{wnid}\t0\t0\t7\t7')
    (root / 'val' / 'val_annotations.txt').write_text('\n'.join(lines))
    return root


def test_class_index_is_the_sorted_wnid_position(tiny_root):
    listed = (tiny_root / 'wnids.txt').read_text().split()
    assert listed != sorted(listed)  # the fixture tests the sorting
    train = TinyImageNet(str(tiny_root), split='train')
    assert train.CLASSES == tuple(sorted(listed))
    assert len(train) == NUM_CLASSES
    for i in range(len(train)):
        info = train.get_data_info(i)
        wnid = info['img_path'].split('/')[-3]
        assert info['gt_label'] == sorted(listed).index(wnid)

    val = TinyImageNet(str(tiny_root), split='val')
    annotations = dict(
        line.split('\t')[:2] for line in (
            tiny_root / 'val' / 'val_annotations.txt').read_text().split('\n'))
    assert len(val) == len(annotations)
    for i in range(len(val)):
        info = val.get_data_info(i)
        wnid = annotations[info['img_path'].split('/')[-1]]
        assert info['gt_label'] == sorted(listed).index(wnid)


def test_grayscale_jpeg_is_loaded_with_three_channels(tiny_root):
    dataset = TinyImageNet(str(tiny_root), split='train', pipeline=PIPELINE)
    info = dataset.get_data_info(GRAY_WNID_INDEX)
    assert Image.open(info['img_path']).mode == 'L'  # really grayscale
    packed = dataset[GRAY_WNID_INDEX]
    assert packed['inputs'].shape == (3, 8, 8)
    assert packed['data_samples'].gt_label.tolist() == [GRAY_WNID_INDEX]


def test_tinyimagenet_protocol(tiny_root):
    for split in (0, 4):
        known, _ = get_osr_split('tinyimagenet', split)
        train = OSRDataset(
            dict(type='TinyImageNet', data_root=str(tiny_root)),
            protocol='tinyimagenet',
            split=split)
        assert len(train) == len(known)
        assert sorted(train.get_gt_labels()) == list(range(len(known)))
        val = OSRDataset(
            dict(type='TinyImageNet', data_root=str(tiny_root), split='val',
                 pipeline=PIPELINE),
            protocol='tinyimagenet',
            split=split,
            subset='open')
        labels = val.get_gt_labels()
        assert (labels >= 0).sum() == 2 * len(known)
        assert (labels == UNKNOWN_LABEL).sum() == 2 * (NUM_CLASSES - 20)
        for i in (0, len(val) - 1):
            info = val.get_data_info(i)
            packed = val[i]
            assert packed['inputs'].shape == (3, 8, 8)
            assert int(packed['data_samples'].gt_label) == info['gt_label']


def test_missing_files_are_named(tiny_root, tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        TinyImageNet(missing)
    with pytest.raises(FileNotFoundError, match='wnids.txt'):
        TinyImageNet(str(tmp_path))
    with pytest.raises(ValueError, match="'test'"):
        TinyImageNet(str(tiny_root), split='test')

    (tmp_path / 'wnids.txt').write_text('n01\nn02\n')
    (tmp_path / 'train' / 'n01' / 'images').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="n02.*'n02'"):
        TinyImageNet(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='val_annotations.txt'):
        TinyImageNet(str(tmp_path), split='val')
    (tmp_path / 'val').mkdir()
    (tmp_path / 'val' / 'val_annotations.txt').write_text(
        'val_0.JPEG\tn01\t0\t0\t1\t1\nval_1.JPEG\tn07\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match="'n07' on line 2"):
        TinyImageNet(str(tmp_path), split='val')
