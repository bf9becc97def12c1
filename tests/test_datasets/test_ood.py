import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS
from PIL import Image

from gradmix_plugin.datasets import UNKNOWN_LABEL
from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.utils import free_port

# The OOD pipeline of the configs: 3 channels, resized to the ID size.
OOD_PIPELINE = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]


@pytest.fixture(scope='module')
def gray_root(tmp_path_factory):
    """An MNIST-like folder: 2 classes x 3 grayscale 28x28 PNGs."""
    root = tmp_path_factory.mktemp('gray')
    rng = np.random.default_rng(1)
    for cls in ('0', '1'):
        os.makedirs(root / cls)
        for i in range(3):
            img = rng.integers(0, 255, (28, 28), dtype=np.uint8)
            Image.fromarray(img, mode='L').save(root / cls / f'{i}.png')
    return str(root)


def digits_known(subset='known', split='test'):
    return dict(
        type='OSRDataset', protocol='digits', split=0, subset=subset,
        dataset=dict(type='DigitsDataset', split=split, indices=40,
                     pipeline=[dict(type='PackInputs')]))


def folder(root, pipeline=OOD_PIPELINE):
    return dict(type='CustomDataset', data_root=root, pipeline=pipeline)


def build(id_dataset, sources, groups=None):
    return DATASETS.build(
        dict(type='OODDataset', id_dataset=id_dataset,
             ood_datasets=[dict(name=n, dataset=d) for n, d in sources],
             ood_groups=groups))


def test_concatenates_and_marks_ood_samples(png_root, gray_root):
    dataset = build(
        digits_known(),
        [('rgb', folder(png_root)), ('mnist', folder(gray_root)),
         ('unknown_digits', digits_known('unknown'))],
        groups=dict(far=['mnist', 'rgb']))
    id_set = DATASETS.build(digits_known())
    unknown = DATASETS.build(digits_known('unknown'))
    num_id = len(id_set)
    assert len(dataset) == num_id + 16 + 6 + len(unknown)
    labels = dataset.get_gt_labels()
    np.testing.assert_array_equal(labels[:num_id], id_set.get_gt_labels())
    assert (labels[num_id:] == UNKNOWN_LABEL).all()
    meta = dataset.metainfo
    assert meta['classes'] == id_set.metainfo['classes']
    assert meta['ood_sources'] == ('rgb', 'mnist', 'unknown_digits')
    assert meta['ood_groups'] == dict(far=['mnist', 'rgb'])

    first = dataset[0]
    assert int(first['data_samples'].gt_label) == int(labels[0])
    assert 'ood_source' not in first['data_samples']
    for idx, source in ((num_id, 'rgb'), (num_id + 16, 'mnist'),
                        (len(dataset) - 1, 'unknown_digits')):
        data = dataset[idx]
        # Grayscale and 16x16 images come out as 3 x 32 x 32.
        assert data['inputs'].shape == (3, 32, 32)
        assert int(data['data_samples'].gt_label) == UNKNOWN_LABEL
        assert data['data_samples'].ood_source == source
        info = dataset.get_data_info(idx)
        assert (info['gt_label'], info['ood_source'],
                info['sample_idx']) == (UNKNOWN_LABEL, source, idx)
    assert 'mnist: \t6 samples' in repr(dataset)


def test_sources_reach_the_metric_in_any_order(png_root, gray_root):
    """The source travels in every sample's result, so the per-source
    metrics do not depend on the order in which ranks return results."""
    dataset = build(digits_known(),
                    [('rgb', folder(png_root)), ('mnist', folder(gray_root))],
                    groups=dict(both=['rgb', 'mnist']))
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    rng = np.random.default_rng(0)
    samples = batch['data_samples']
    for sample in samples:
        sample.set_field(torch.from_numpy(rng.normal(size=6)), 'logits')
    metric = OSRMetric(scores=('mls', ))
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dataset.metainfo
    evaluator.process(samples)
    results = pickle.loads(pickle.dumps(metric.results))  # as collected
    metrics = metric.compute_metrics(results)
    assert {k for k in metrics if k.endswith('/auroc')} == {
        'mls/auroc', 'ood=rgb/mls/auroc', 'ood=mnist/mls/auroc',
        'group=both/mls/auroc'}
    shuffled = [results[i] for i in rng.permutation(len(results))]
    assert metric.compute_metrics(shuffled) == pytest.approx(metrics)
    sources = metric.last_per_sample['ood_source']
    assert (sources == 'mnist').sum() == 6 and (sources == '').sum() == len(
        dataset) - 22


def evaluate_sharded(png_root, gray_root):
    """OSRMetric over an OODDataset, the loader split across the ranks of
    the current process group (if any); the logits are the channel means
    of each image."""
    dataset = build(digits_known(),
                    [('rgb', folder(png_root)), ('mnist', folder(gray_root)),
                     ('digits', digits_known('unknown'))],
                    groups=dict(far=['rgb', 'mnist']))
    loader = Runner.build_dataloader(
        dict(dataset=dataset, batch_size=5, num_workers=0,
             sampler=dict(type='DefaultSampler', shuffle=False)))
    evaluator = Evaluator(OSRMetric(scores=('mls', 'msp')))
    evaluator.dataset_meta = dataset.metainfo
    for batch in loader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            sample.set_field(inputs.float().reshape(3, -1).mean(1), 'logits')
        evaluator.process(batch['data_samples'])
    return evaluator.evaluate(len(dataset))


def sharded_worker(rank, world_size, port, roots, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
        world_size=world_size)
    try:
        metrics = evaluate_sharded(*roots)
        with open(osp.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
            pickle.dump(metrics, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_keep_every_source(png_root, gray_root, tmp_path):
    """Each rank scores its shard; collected on rank 0, every sample still
    names its source, so the per-source metrics equal one process's."""
    metrics = evaluate_sharded(png_root, gray_root)
    assert 'osr/ood=mnist/mls/auroc' in metrics
    assert 'osr/group=far/msp/fpr95_ood_pos' in metrics
    mp.spawn(sharded_worker,
             args=(2, free_port(), (png_root, gray_root), str(tmp_path)),
             nprocs=2, join=True)
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.pkl', 'rb') as f:
            assert pickle.load(f) == pytest.approx(metrics)


def test_bad_configurations(png_root, gray_root):
    rgb = ('rgb', folder(png_root))
    with pytest.raises(ValueError, match='non-empty list'):
        build(digits_known(), [])
    with pytest.raises(ValueError, match="names \\['rgb'\\] are repeated"):
        build(digits_known(), [rgb, rgb])
    with pytest.raises(ValueError, match="name 'a/b' is not accepted"):
        build(digits_known(), [('a/b', folder(png_root))])
    with pytest.raises(ValueError, match="group 'near' names \\['tin'\\]"):
        build(digits_known(), [rgb], groups=dict(near=['rgb', 'tin']))
    with pytest.raises(ValueError, match='must be dict\\(name=..., '
                       'dataset=...\\)'):
        DATASETS.build(dict(type='OODDataset', id_dataset=digits_known(),
                            ood_datasets=[folder(png_root)]))
    with pytest.raises(ValueError, match='has 10 samples with a negative '
                       'gt_label'):
        build(digits_known('open'), [rgb])
    with pytest.raises(ValueError, match="source 'known_digits' "
                       "\\(OSRDataset, subset 'known'\\) has 22 samples of "
                       'known classes'):
        build(digits_known(), [('known_digits', digits_known('known',
                                                              'train'))])
    empty = DATASETS.build(
        dict(type='DigitsDataset', pipeline=[dict(type='PackInputs')]))
    empty = empty.get_subset([])
    with pytest.raises(ValueError, match="source 'nothing' "
                       '\\(DigitsDataset\\) is empty'):
        build(digits_known(), [('nothing', empty)])
    # The ID set itself as a source: the same files, or the same images.
    with pytest.raises(ValueError, match="source 'again' \\(CustomDataset\\)"
                       ' shares 16 of its 16 images with `id_dataset`'):
        build(folder(png_root), [('again', folder(png_root))])
    with pytest.raises(ValueError, match="source 'again' \\(OSRDataset\\) "
                       'shares'):
        build(digits_known()['dataset'], [('again', digits_known('unknown'))])
    with pytest.raises(TypeError, match="OODDataset `id_dataset` must be "
                       "one of \\['BaseDataset', 'OSRDataset'\\] or its "
                       'config, but got list'):
        build([1, 2], [rgb])
    with pytest.raises(FileNotFoundError) as info:
        build(digits_known(), [('tin', folder('/no/such/folder'))])
    assert ('OODDataset `ood_datasets.0.dataset` of type '
            "'CustomDataset' with data_root='/no/such/folder'") in str(
                info.value.__notes__)


def test_pipeline_is_handed_to_the_id_dataset(png_root, gray_root):
    """``OODDataset(pipeline=...)`` is the ID set's pipeline (where
    mmpretrain's inferencer reads it); the sources keep theirs; given twice
    it is refused."""
    sources = [('gray', folder(gray_root))]
    no_pipeline = dict(digits_known(), pipeline=None)
    no_pipeline['dataset'] = dict(no_pipeline['dataset'], pipeline=None)
    dataset = DATASETS.build(
        dict(type='OODDataset', id_dataset=no_pipeline,
             pipeline=[dict(type='Resize', scale=(16, 16)),
                       dict(type='PackInputs')],
             ood_datasets=[dict(name=n, dataset=d) for n, d in sources]))
    assert dataset[0]['inputs'].shape[-2:] == (16, 16)  # as given
    assert dataset[len(dataset) - 1]['inputs'].shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match='OODDataset has a `pipeline` and '
                       "so does its `id_dataset` \\('OSRDataset'\\)"):
        DATASETS.build(
            dict(type='OODDataset', id_dataset=dict(
                digits_known(), pipeline=[dict(type='PackInputs')]),
                 pipeline=[dict(type='PackInputs')],
                 ood_datasets=[dict(name=n, dataset=d) for n, d in sources]))
