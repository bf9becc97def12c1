"""CUB-200-2011, FGVC-Aircraft and Stanford Cars on synthetic trees of their
original layouts, alone and through the SSB protocols."""
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import scipy.io
from helpers import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.datasets.categories import (
    CUB_CATEGORIES,
    STANFORDCARS_CATEGORIES,
)
from mmpretrain.registry import DATASETS

from gradmix_plugin.datasets import (
    UNKNOWN_LABEL,
    OSRDataset,
    load_ssb_split,
)
from gradmix_plugin.utils import prepare_config

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _write_image(path, class_index):
    """A lossless 4x4 image (PNG bytes, whatever the file name says) whose
    pixels hold the class index: the oracle of the labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((4, 4, 3), class_index, np.uint8)
    path.write_bytes(cv2.imencode('.png', image)[1].tobytes())


def _dataset(dataset_type, root, split):
    return dict(type=dataset_type, data_root=str(root), split=split,
                pipeline=PIPELINE)


def _check_protocol(dataset_cfg, protocol, num_per_class):
    """Counts and labels of the known training set and of both open test
    sets; returns the 'hard' open set."""
    known, unknown = load_ssb_split(protocol)
    train = OSRDataset(
        dataset_cfg('train'), protocol=protocol, split='easy')
    assert len(train) == len(known) * num_per_class['train']
    assert sorted(set(train.get_gt_labels())) == list(range(len(known)))
    for difficulty in ('easy', 'hard'):
        test = OSRDataset(
            dataset_cfg('test'), protocol=protocol, split=difficulty,
            subset='open')
        labels = test.get_gt_labels()
        assert (labels >= 0).sum() == len(known) * num_per_class['test']
        assert (labels == UNKNOWN_LABEL).sum() == len(
            unknown[difficulty]) * num_per_class['test']
        assert test.metainfo['unknown_class_ids'] == tuple(
            unknown[difficulty])
    for i in (0, len(test) - 1):  # a known and an unknown sample
        original = int(test[i]['inputs'][0, 0, 0])
        label = int(test[i]['data_samples'].gt_label)
        assert label == (known.index(original) if original in known else
                         UNKNOWN_LABEL)
    return test


# ----------------------------------------------------------------- CUB ---
@pytest.fixture(scope='module')
def cub_root(tmp_path_factory):
    """CUB_200_2011 with 3 images per class (2 train, 1 test), listed in a
    shuffled order so that image ids and class ids are unrelated."""
    root = tmp_path_factory.mktemp('CUB_200_2011')
    entries = [(c, k) for c in range(200) for k in range(3)]
    random.Random(0).shuffle(entries)
    images, labels, split = [], [], []
    for image_id, (c, k) in enumerate(entries, 1):
        path = f'{c + 1:03d}.{CUB_CATEGORIES[c]}/{k}.png'
        images.append(f'{image_id} {path}')
        labels.append(f'{image_id} {c + 1}')
        split.append(f'{image_id} {int(k < 2)}')
        _write_image(root / 'images' / path, c)
    (root / 'images.txt').write_text('\n'.join(images) + '\n')
    (root / 'image_class_labels.txt').write_text('\n'.join(labels) + '\n')
    (root / 'train_test_split.txt').write_text('\n'.join(split) + '\n')
    return root


def test_cub_labels_are_class_ids_minus_one(cub_root):
    for split, num in (('train', 400), ('test', 200)):
        dataset = DATASETS.build(_dataset('CUB2011', cub_root, split))
        assert len(dataset) == num
        assert dataset.CLASSES == CUB_CATEGORIES
        for i in range(0, num, 37):
            info = dataset.get_data_info(i)
            folder = info['img_path'].split('/')[-2]
            assert info['gt_label'] == int(folder[:3]) - 1
            assert (int(info['img_path'][-5]) < 2) == (split == 'train')


def test_cub_protocol(cub_root):
    _check_protocol(lambda split: _dataset('CUB2011', cub_root, split), 'cub',
                    dict(train=2, test=1))


def test_cub_bad_input(cub_root, tmp_path):
    with pytest.raises(ValueError, match="'val' is not one of"):
        DATASETS.build(_dataset('CUB2011', cub_root, 'val'))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        DATASETS.build(_dataset('CUB2011', tmp_path / 'nowhere', 'train'))
    for name in ('images.txt', 'train_test_split.txt'):
        (tmp_path / name).write_text((cub_root / name).read_text())
    with pytest.raises(FileNotFoundError, match='image_class_labels.txt'):
        DATASETS.build(_dataset('CUB2011', tmp_path, 'train'))
    labels = (cub_root / 'image_class_labels.txt').read_text().split('\n')
    (tmp_path / 'image_class_labels.txt').write_text(
        '\n'.join(labels[:-2]))  # the last image has no label
    with pytest.raises(ValueError, match='image id 600 .* not in '
                       'image_class_labels.txt'):
        DATASETS.build(_dataset('CUB2011', tmp_path, 'train'))
    labels[0] = labels[0].split()[0] + ' 201'
    (tmp_path / 'image_class_labels.txt').write_text('\n'.join(labels))
    with pytest.raises(ValueError, match="'201' .* outside 1..200"):
        DATASETS.build(_dataset('CUB2011', tmp_path, 'train'))


# ------------------------------------------------------------ Aircraft ---
@pytest.fixture(scope='module')
def aircraft_root(tmp_path_factory):
    """fgvc-aircraft-2013b/data with names that sort differently from their
    line order in variants.txt, one image per variant in each of train, val
    and test."""
    root = tmp_path_factory.mktemp('fgvc-aircraft-2013b')
    names = [f'Model {i}' for i in range(100)]  # 'Model 10' < 'Model 2'
    listed = names[:]
    random.Random(1).shuffle(listed)
    data = root / 'data'
    data.mkdir()
    (data / 'variants.txt').write_text('\n'.join(listed) + '\n')
    for part_id, part in enumerate(('train', 'val', 'test')):
        lines = []
        for i, name in enumerate(listed):
            image_id = f'{part_id}{i:06d}'
            lines.append(f'{image_id} {name}')
            _write_image(data / 'images' / f'{image_id}.jpg',
                         sorted(names).index(name))
        (data / f'images_variant_{part}.txt').write_text('\n'.join(lines))
    return root


def test_aircraft_labels_are_sorted_variant_positions(aircraft_root):
    dataset = DATASETS.build(_dataset('Aircraft', aircraft_root, 'test'))
    names = sorted(f'Model {i}' for i in range(100))
    assert dataset.CLASSES == tuple(names)
    lines = (aircraft_root / 'data' /
             'images_variant_test.txt').read_text().split('\n')
    assert len(dataset) == 100
    for i, line in enumerate(lines):
        image_id, name = line.split(' ', 1)
        info = dataset.get_data_info(i)
        assert info['img_path'].endswith(f'/data/images/{image_id}.jpg')
        assert info['gt_label'] == names.index(name)
    for split, num in (('train', 100), ('trainval', 200)):
        assert len(DATASETS.build(
            _dataset('Aircraft', aircraft_root, split))) == num


def test_aircraft_protocol(aircraft_root):
    _check_protocol(
        lambda split: _dataset('Aircraft', aircraft_root,
                                'trainval' if split == 'train' else split),
        'aircraft', dict(train=2, test=1))


def test_aircraft_bad_input(aircraft_root, tmp_path):
    with pytest.raises(ValueError, match="'trainvaltest' is not one of"):
        DATASETS.build(_dataset('Aircraft', aircraft_root, 'trainvaltest'))
    with pytest.raises(FileNotFoundError, match='variants.txt'):
        DATASETS.build(_dataset('Aircraft', tmp_path, 'test'))
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'variants.txt').write_text('A\nB\n')
    (data / 'images_variant_train.txt').write_text('1 A\n2 B\n')
    with pytest.raises(FileNotFoundError, match='images_variant_val.txt'):
        DATASETS.build(_dataset('Aircraft', tmp_path, 'trainval'))
    (data / 'images_variant_val.txt').write_text('3 A\n4 F-16A/B\n')
    with pytest.raises(ValueError, match="'F-16A/B' on line 2 of .*val"):
        DATASETS.build(_dataset('Aircraft', tmp_path, 'trainval'))


# ---------------------------------------------------------------- Cars ---
CARS_LAYOUTS = ('devkit', 'class folders')
CARS_ANNOTATIONS = dict(
    train='cars_train_annos.mat', test='cars_test_annos_withlabels.mat')


def _write_annotations(path, fnames, classes):
    fields = ['bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2', 'fname']
    if classes is not None:
        fields.insert(4, 'class')
    annotations = np.zeros((1, len(fnames)), [(f, 'O') for f in fields])
    for i, fname in enumerate(fnames):
        values = dict(fname=np.array([fname]))
        if classes is not None:
            values['class'] = np.array([[classes[i]]], np.uint8)
        annotations[0, i] = tuple(
            values.get(f, np.array([[1]])) for f in fields)
    scipy.io.savemat(str(path), dict(annotations=annotations))


@pytest.fixture(scope='module', params=CARS_LAYOUTS)
def cars_root(request, tmp_path_factory):
    """Stanford Cars with 2 train and 1 test image per class, in the
    devkit layout (annotations in shuffled order) or in class folders."""
    root = tmp_path_factory.mktemp('stanford_cars')
    if request.param == 'devkit':
        names = np.empty((1, 196), object)
        for c, name in enumerate(STANFORDCARS_CATEGORIES):
            names[0, c] = np.array([name])
        (root / 'devkit').mkdir()
        scipy.io.savemat(str(root / 'devkit' / 'cars_meta.mat'),
                         dict(class_names=names))
        for split, num in (('train', 2), ('test', 1)):
            classes = [c for c in range(196) for _ in range(num)]
            random.Random(2).shuffle(classes)
            fnames = [f'{i:05d}.jpg' for i in range(len(classes))]
            for fname, c in zip(fnames, classes):
                _write_image(root / f'cars_{split}' / fname, c)
            _write_annotations(
                root / 'devkit' / CARS_ANNOTATIONS[split], fnames,
                [c + 1 for c in classes])
    else:
        for split, num in (('train', 2), ('test', 1)):
            for c, name in enumerate(STANFORDCARS_CATEGORIES):
                for k in range(num):
                    _write_image(
                        root / split / name.replace('/', '-') / f'{k}.jpg', c)
    return root


def test_cars_labels_follow_the_cars_meta_order(cars_root):
    dataset = DATASETS.build(_dataset('Cars', cars_root, 'train'))
    assert dataset.CLASSES == STANFORDCARS_CATEGORIES
    assert len(dataset) == 2 * 196
    assert np.bincount(dataset.get_gt_labels()).tolist() == [2] * 196
    for i in range(0, len(dataset), 7):
        assert dataset.get_data_info(i)['gt_label'] == int(
            dataset[i]['inputs'][0, 0, 0])
    if not dataset.devkit:
        # Class 6 (label 5) would be label 1 in sorted folder order.
        integra = 'Acura Integra Type R 2001'
        assert sorted(STANFORDCARS_CATEGORIES).index(integra) == 1
        assert [dataset.get_data_info(i)['img_path'].split('/')[-2]
                for i in (10, 11)] == [integra] * 2


def test_cars_protocol(cars_root):
    _check_protocol(lambda split: _dataset('Cars', cars_root, split), 'scars',
                    dict(train=2, test=1))


def test_cars_bad_input(cars_root, tmp_path):
    with pytest.raises(ValueError, match="'val' is not one of"):
        DATASETS.build(_dataset('Cars', cars_root, 'val'))
    with pytest.raises(FileNotFoundError,
                       match='neither .*devkit.* nor .*train'):
        DATASETS.build(_dataset('Cars', tmp_path, 'train'))

    # Class folders: every class, by name.
    (tmp_path / 'train' / 'Not A Car 1999').mkdir(parents=True)
    with pytest.raises(ValueError, match=r"missing \['AM General Hummer SUV "
                       r"2000'.* \(196\), unexpected \['Not A Car 1999'\]"):
        DATASETS.build(_dataset('Cars', tmp_path, 'train'))

    # Devkit: the meta file, the labelled test annotations, the classes.
    devkit = tmp_path / 'devkit'
    devkit.mkdir()
    with pytest.raises(FileNotFoundError, match='cars_meta.mat'):
        DATASETS.build(_dataset('Cars', tmp_path, 'train'))
    names = np.empty((1, 2), object)
    names[0, 0], names[0, 1] = np.array(['Car A']), np.array(['Car B'])
    scipy.io.savemat(str(devkit / 'cars_meta.mat'), dict(class_names=names))
    with pytest.raises(FileNotFoundError,
                       match='cars_test_annos_withlabels.mat'):
        DATASETS.build(_dataset('Cars', tmp_path, 'test'))
    _write_annotations(devkit / 'cars_test_annos_withlabels.mat',
                       ['1.jpg', '2.jpg'], None)
    with pytest.raises(ValueError, match='no `class` field'):
        DATASETS.build(_dataset('Cars', tmp_path, 'test'))
    _write_annotations(devkit / 'cars_train_annos.mat', ['1.jpg', '2.jpg'],
                       [2, 3])
    with pytest.raises(ValueError, match="class 3 of '2.jpg'.* outside "
                       '1..2'):
        DATASETS.build(_dataset('Cars', tmp_path, 'train'))
    _write_annotations(devkit / 'cars_train_annos.mat', ['1.jpg', '2.jpg'],
                       [2, 1])
    with pytest.raises(ValueError, match="'scars' refers to a dataset with "
                       '196 classes, but .*Cars.* has 2'):
        OSRDataset(_dataset('Cars', tmp_path, 'train'), protocol='scars',
                   split='easy')


# ------------------------------------------------------------- Configs ---
def _check_config(name, root):
    """An SSB config on a synthetic tree, with the tools' options
    ``data_root=<tree> osr_split=easy``: 2 training and 1 test image per
    class in the training, test and kNN bank datasets."""
    init_default_scope('mmpretrain')  # as the Runner does
    path = osp.join(REPO, 'configs', f'gradmix_resnet50_{name}.py')
    cfg = prepare_config(
        Config.fromfile(path), path,
        cfg_options=dict(data_root=str(root), osr_split='easy'))
    known, unknown = load_ssb_split(name)
    bank_hook, = (hook for hook in cfg.custom_hooks
                  if hook.type == 'OSRBankHook')
    for loader, num in ((cfg.train_dataloader, 2 * len(known)),
                        (cfg.test_dataloader,
                         len(known) + len(unknown['easy'])),
                        (bank_hook.dataloader, 2 * len(known))):
        dataset = DATASETS.build(loader.dataset)
        assert (dataset.protocol, dataset.split) == (name, 'easy')
        assert len(dataset) == num


def test_cub_config(cub_root):
    _check_config('cub', cub_root)


def test_aircraft_config(aircraft_root):
    _check_config('aircraft', aircraft_root)


def test_cars_config(cars_root):
    _check_config('scars', cars_root)
