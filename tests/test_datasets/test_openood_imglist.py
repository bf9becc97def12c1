"""OpenOOD's benchmark image lists (tiny synthetic copy of the layout)."""
import os
import os.path as osp

import numpy as np
import pytest
from mmcv import imwrite

from gradmix_plugin.datasets import OODDataset, OpenOODImglist


def make_openood(root, sources=('cifar10', 'cifar100', 'mnist')):
    """``root/benchmark_imglist/cifar10/test_<source>.txt`` and images."""
    rng = np.random.default_rng(0)
    for source in sources:
        lines = []
        for i in range(4):
            name = f'{source}/test/{i}.png'
            imwrite(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                    osp.join(root, 'images_classic', name))
            label = i % 2 if source == 'cifar10' else -1
            lines.append(f'{name} {label}')
        list_dir = osp.join(root, 'benchmark_imglist', 'cifar10')
        os.makedirs(list_dir, exist_ok=True)
        with open(osp.join(list_dir, f'test_{source}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


def test_reads_the_list_in_order(tmp_path):
    make_openood(str(tmp_path))
    dataset = OpenOODImglist(data_root=str(tmp_path), source='cifar10',
                             pipeline=[dict(type='LoadImageFromFile'),
                                       dict(type='PackInputs')])
    assert len(dataset) == 4
    info = dataset.get_data_info(1)
    assert info['img_path'] == osp.join(str(tmp_path), 'images_classic',
                                        'cifar10/test/1.png')
    assert info['gt_label'] == 1
    assert dataset[0]['inputs'].shape == (3, 8, 8)
    assert len(OpenOODImglist(data_root=str(tmp_path), indices=2)) == 2


def test_as_ood_benchmark_with_groups(tmp_path):
    make_openood(str(tmp_path))

    def source(name):
        return dict(name=name, dataset=dict(
            type='OpenOODImglist', data_root=str(tmp_path), source=name,
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='PackInputs')]))

    dataset = OODDataset(
        id_dataset=dict(type='OpenOODImglist', data_root=str(tmp_path),
                        source='cifar10', pipeline=[
                            dict(type='LoadImageFromFile'),
                            dict(type='PackInputs')]),
        ood_datasets=[source('cifar100'), source('mnist')],
        ood_groups=dict(near=['cifar100'], far=['mnist']))
    assert len(dataset) == 12
    assert dataset.metainfo['ood_groups'] == dict(near=['cifar100'],
                                                  far=['mnist'])


def test_refuses_missing_and_bad_lists(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match='test_svhn.txt not found; download OpenOOD'):
        OpenOODImglist(data_root=str(tmp_path), source='svhn')
    list_dir = tmp_path / 'benchmark_imglist' / 'cifar10'
    list_dir.mkdir(parents=True)
    (list_dir / 'test_bad.txt').write_text('a.png\n')
    with pytest.raises(ValueError, match=r'test_bad.txt:1: expected'):
        OpenOODImglist(data_root=str(tmp_path), source='bad')
    (list_dir / 'test_abs.txt').write_text('/x/a.png 0\n')
    with pytest.raises(ValueError, match='is absolute'):
        OpenOODImglist(data_root=str(tmp_path), source='abs')
    (list_dir / 'test_dict.txt').write_text("a.png {'label': 3}\n")
    dataset = OpenOODImglist(data_root=str(tmp_path), source='dict')
    assert dataset.get_data_info(0)['gt_label'] == 0
