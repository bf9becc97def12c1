"""CIFAR-10-C / CIFAR-100-C arrays and Tiny-ImageNet-C folders."""
import os

import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.datasets import CIFAR10C, CIFAR100C, TinyImageNetC

N = 4  # images per severity


def write_cifar_c(root, corruption='fog', num_classes=10, shape=None,
                  labels=None):
    """``N`` images per severity; image ``j`` of severity ``s`` is filled
    with ``10 * s + j`` in its red channel, 0 elsewhere."""
    os.makedirs(root, exist_ok=True)
    images = np.zeros((5 * N, 32, 32, 3), np.uint8)
    for s in range(5):
        for j in range(N):
            images[s * N + j, ..., 0] = 10 * (s + 1) + j
    if shape is not None:
        images = np.zeros(shape, np.uint8)
    if labels is None:
        labels = np.tile(np.arange(N) % num_classes, 5).astype(np.uint8)
    np.save(os.path.join(root, f'{corruption}.npy'), images)
    np.save(os.path.join(root, 'labels.npy'), labels)
    return str(root)


@pytest.mark.parametrize('severity', [1, 3, 5])
def test_reads_the_severity_block(tmp_path, severity):
    root = write_cifar_c(tmp_path)
    dataset = DATASETS.build(
        dict(type='CIFAR10C', data_root=root, corruption='fog',
             severity=severity))
    assert len(dataset) == N
    assert dataset.metainfo['classes'][0] == 'airplane'
    for j in range(N):
        info = dataset.get_data_info(j)
        assert info['img'].shape == (32, 32, 3)
        assert info['img'].dtype == np.uint8
        assert info['img'][0, 0].tolist() == [10 * severity + j, 0, 0]
        assert info['gt_label'] == j
        assert info['sample_idx'] == j


def test_bgr_order_and_pipeline(tmp_path):
    root = write_cifar_c(tmp_path)
    dataset = CIFAR10C(root, 'fog', 2, channel_order='bgr',
                       pipeline=[dict(type='PackInputs')])
    item = dataset[1]
    assert item['inputs'].shape == (3, 32, 32)
    assert item['inputs'][:, 0, 0].tolist() == [0, 0, 21]
    assert item['data_samples'].gt_label.tolist() == [1]


def test_osr_known_subset_of_cifar10(tmp_path):
    # Split 0 of the CIFAR-10 protocol: known classes [0, 6, 4, 9, 1, 7].
    labels = np.tile(np.array([0, 3, 4, 9], np.uint8), 5)
    root = write_cifar_c(tmp_path, labels=labels)
    dataset = DATASETS.build(
        dict(type='OSRDataset', protocol='cifar10', split=0, subset='known',
             dataset=dict(type='CIFAR10C', data_root=root,
                          corruption='fog', severity=4)))
    assert len(dataset) == 3
    assert dataset.get_gt_labels().tolist() == [0, 2, 3]
    assert dataset.get_data_info(2)['img'][0, 0, 0] == 43


def test_cifar100c_classes(tmp_path):
    labels = np.tile(np.array([0, 50, 99, 7], np.uint8), 5)
    root = write_cifar_c(tmp_path, labels=labels)
    dataset = CIFAR100C(root, 'fog', 1)
    assert len(dataset.metainfo['classes']) == 100
    assert dataset.get_gt_labels().tolist() == [0, 50, 99, 7]


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(corruption='rain'), ValueError, "'rain'.*gaussian_noise"),
    (dict(severity=0), ValueError, 'severity 0 '),
    (dict(severity=6), ValueError, 'severity 6 '),
    (dict(corruption='snow'), FileNotFoundError, 'snow.npy'),
    (dict(channel_order='hsv'), ValueError, "'hsv'"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    root = write_cifar_c(tmp_path)
    args = dict(data_root=root, corruption='fog', severity=1)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        CIFAR10C(**args)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing'):
        CIFAR10C(str(tmp_path / 'missing'), 'fog', 1)
    root = write_cifar_c(tmp_path / 'a')
    os.remove(os.path.join(root, 'labels.npy'))
    with pytest.raises(FileNotFoundError, match='labels.npy'):
        CIFAR10C(root, 'fog', 1)
    root = write_cifar_c(tmp_path / 'b', shape=(5 * N, 32, 32))
    with pytest.raises(ValueError, match=r'\(20, 32, 32\).*\(5 N, H, W, 3\)'):
        CIFAR10C(root, 'fog', 1)
    root = write_cifar_c(tmp_path / 'c', shape=(7, 32, 32, 3),
                         labels=np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match=r'\(7, 32, 32, 3\)'):
        CIFAR10C(root, 'fog', 1)
    root = write_cifar_c(tmp_path / 'd', labels=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r'shape \(3,\).*\(20, \)'):
        CIFAR10C(root, 'fog', 1)
    root = write_cifar_c(tmp_path / 'e', labels=np.full(5 * N, 12, np.uint8))
    with pytest.raises(ValueError, match=r'\[12\] outside the 10 classes'):
        CIFAR10C(root, 'fog', 1)
    root = str(tmp_path / 'f')
    os.makedirs(root)
    with open(os.path.join(root, 'fog.npy'), 'w') as f:
        f.write('not an array')
    np.save(os.path.join(root, 'labels.npy'), np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match='not a readable .npy'):
        CIFAR10C(root, 'fog', 1)


def test_tiny_imagenet_c_folders(tmp_path):
    for severity in (1, 2):
        for i, wnid in enumerate(('n02', 'n01')):
            folder = tmp_path / 'fog' / str(severity) / wnid
            os.makedirs(folder)
            Image.fromarray(np.full((64, 64, 3), 10 * severity + i,
                                    np.uint8)).save(folder / 'a.JPEG')
    dataset = TinyImageNetC(
        str(tmp_path), 'fog', 2,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    assert dataset.metainfo['classes'] == ('n01', 'n02')
    assert dataset.get_gt_labels().tolist() == [0, 1]
    assert int(dataset[0]['inputs'][0, 0, 0]) == 21
    with pytest.raises(FileNotFoundError, match=r'fog/3'):
        TinyImageNetC(str(tmp_path), 'fog', 3)
    with pytest.raises(ValueError, match="'mist'"):
        TinyImageNetC(str(tmp_path), 'mist', 1)
