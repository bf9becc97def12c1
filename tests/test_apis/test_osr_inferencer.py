"""OSRInferencer and mmpretrain's own inference on the plugin's configs."""
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain import (
    ImageClassificationInferencer,
    get_model,
    inference_model,
    list_models,
)

from gradmix_plugin.apis import (
    DetectorMismatchError,
    EmptyInputError,
    OSRInferencer,
    UnreadableImageError,
)
from gradmix_plugin.apis.builder import build_detector
from gradmix_plugin.datasets import OSRDataset
from gradmix_plugin.utils.checkpoint import safe_checkpoint_loading

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
CE = osp.join(REPO, 'configs', 'ce_resnet18_cifar10.py')


def _save_checkpoint(model, path, classes):
    torch.manual_seed(0)
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=tuple(classes)))), path)
    return str(path)


@pytest.fixture(scope='module')
def digits_setup(tmp_path_factory):
    """A random digits model, its checkpoint and detector, and the first
    test images as PNG files (known ones first)."""
    root = tmp_path_factory.mktemp('osr_inferencer')
    torch.manual_seed(0)
    model = get_model(DIGITS)
    test = OSRDataset(
        dataset=dict(type='DigitsDataset', split='test'),
        protocol='digits',
        subset='open')
    ckpt = _save_checkpoint(model, root / 'model.pth',
                            test.metainfo['classes'])
    cfg = Config.fromfile(DIGITS)
    # A small bank (20 images per class, 2 of them held out) for speed.
    cfg.custom_hooks[0].dataloader.dataset.max_per_class = 20
    detector = build_detector(cfg, ckpt, batch_size=256)
    det_path = detector.save(str(root / 'detector.pth'))
    images = root / 'images'
    arrays = []
    for i in [0, 1, 2, len(test) - 2, len(test) - 1]:
        img = test.get_data_info(i)['img']
        arrays.append(img)
        mmcv.imwrite(img, str(images / f'{i:04d}.png'))
    return dict(root=root, ckpt=ckpt, detector=det_path, images=images,
                arrays=arrays, test=test, det=detector)


@pytest.mark.slow
def test_paths_folder_and_arrays_give_the_detector_numbers(digits_setup):
    setup = digits_setup
    inferencer = OSRInferencer(
        DIGITS, detector=setup['detector'], pretrained=setup['ckpt'])
    from_folder = inferencer(str(setup['images']), batch_size=2)
    files = sorted(str(p) for p in setup['images'].iterdir())
    from_files = inferencer(files, batch_size=64)
    from_arrays = inferencer(setup['arrays'])
    assert [r['img_path'] for r in from_folder] == files
    for a, b, c in zip(from_folder, from_files, from_arrays):
        assert a['osr_score'] == pytest.approx(b['osr_score'], rel=1e-6)
        assert a['osr_score'] == pytest.approx(c['osr_score'], abs=1e-6)
        assert a['pred_label'] == b['pred_label'] == c['pred_label']
        assert a['is_unknown'] == (a['osr_score'] < a['threshold'])
        assert a['decision'] == ('unknown' if a['is_unknown'] else
                                 a['pred_class'])
        assert a['pred_class'] == inferencer.classes[a['pred_label']]
    # The detector's own numbers on the model's outputs.
    model = inferencer.model
    batch = dict(
        inputs=[torch.from_numpy(a).permute(2, 0, 1) for a in
                setup['arrays']])
    samples = model.test_step(batch)
    outputs = {'embeds': torch.stack([s.embeds for s in samples])}
    expected = setup['det'].predict(outputs)
    np.testing.assert_allclose([r['osr_score'] for r in from_arrays],
                               expected['osr_score'], rtol=1e-6)
    samples = inferencer(setup['arrays'][:1], return_datasamples=True)
    assert samples[0].osr_threshold == setup['det'].threshold
    assert isinstance(samples[0].is_unknown, bool)


@pytest.mark.slow
def test_show_dir_draws_every_image(digits_setup, tmp_path):
    inferencer = OSRInferencer(
        DIGITS, detector=digits_setup['detector'],
        pretrained=digits_setup['ckpt'])
    inferencer(str(digits_setup['images']), show_dir=str(tmp_path / 'vis'))
    drawn = sorted(p.name for p in (tmp_path / 'vis').iterdir())
    assert drawn == sorted(p.stem + '.png'
                           for p in digits_setup['images'].iterdir())
    assert mmcv.imread(str(tmp_path / 'vis' / drawn[0])).shape[0] >= 256


@pytest.mark.slow
def test_detector_of_another_checkpoint_is_refused(digits_setup, tmp_path):
    other = tmp_path / 'other.pth'
    state = torch.load(digits_setup['ckpt'], weights_only=True)
    first = next(iter(state['state_dict']))
    state['state_dict'][first] = state['state_dict'][first] + 1
    torch.save(state, str(other))
    with pytest.raises(DetectorMismatchError,
                       match='was built from checkpoint .*model.pth'):
        OSRInferencer(
            DIGITS, detector=digits_setup['detector'], pretrained=str(other))


@pytest.mark.slow
def test_detector_with_another_score_is_refused(digits_setup):
    with pytest.raises(DetectorMismatchError,
                       match="uses the score 'class_knn', not the "
                       "requested 'knn'"):
        OSRInferencer(
            DIGITS,
            detector=digits_setup['detector'],
            pretrained=digits_setup['ckpt'],
            score='knn')


@pytest.mark.slow
def test_unreadable_image_is_named(digits_setup, tmp_path):
    inferencer = OSRInferencer(
        DIGITS, detector=digits_setup['detector'],
        pretrained=digits_setup['ckpt'])
    folder = tmp_path / 'bad'
    shutil.copytree(digits_setup['images'], folder)
    (folder / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(UnreadableImageError,
                       match=r'cannot read image .*broken\.png'):
        inferencer(str(folder))
    with pytest.raises(FileNotFoundError, match='missing.png is neither'):
        inferencer(str(tmp_path / 'missing.png'))


@pytest.mark.slow
def test_empty_folder_is_refused(digits_setup, tmp_path):
    inferencer = OSRInferencer(
        DIGITS, detector=digits_setup['detector'],
        pretrained=digits_setup['ckpt'])
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no image here')
    with pytest.raises(EmptyInputError,
                       match=r'folder .*empty holds no image file'):
        inferencer(str(tmp_path / 'empty'))
    with pytest.raises(EmptyInputError, match='no input image'):
        inferencer([])


def test_every_shipped_config_has_a_test_pipeline_where_mmpretrain_reads_it():
    import glob
    configs = sorted(
        glob.glob(osp.join(REPO, 'configs', '*.py')) +
        glob.glob(osp.join(REPO, 'configs', 'reference', '*.py'))) + [
        osp.join(REPO, 'configs', 'examples',
                 'mmpretrain_project_ce_gradmix.py')
    ]
    missing = []
    for path in configs:
        cfg = Config.fromfile(path)
        loader = cfg.get('test_dataloader')
        if not loader:
            continue  # self-supervised pre-training: no test set
        if 'pipeline' not in loader.dataset:
            missing.append(osp.basename(path))
    assert not missing


@pytest.mark.slow
@pytest.mark.parametrize('config', [
    CE, osp.join(REPO, 'configs', 'examples',
                 'mmpretrain_project_ce_gradmix.py')
])
def test_mmpretrain_inferencer_gives_the_known_class_names(config, tmp_path):
    classes = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog')
    torch.manual_seed(0)
    ckpt = _save_checkpoint(get_model(config), tmp_path / 'ce.pth', classes)
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    path = str(tmp_path / 'img.png')
    mmcv.imwrite(image, path)
    with safe_checkpoint_loading():
        inferencer = ImageClassificationInferencer(config, pretrained=ckpt)
    result = inferencer(path)[0]
    assert result['pred_class'] in classes
    assert result['pred_scores'].shape == (6, )


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'ce_resnet18_cifar10_ood', 'ce_resnet18_cifar10_osr_ood',
    'ce_resnet18_cifar10_openood'
])
def test_mmpretrain_inferencer_on_the_ood_configs(name, tmp_path):
    """The ID pipeline of an OODDataset test set sits where mmpretrain's
    inferencer reads it."""
    config = osp.join(REPO, 'configs', f'{name}.py')
    model = get_model(config)
    classes = tuple(f'c{i}' for i in range(model.head.num_classes))
    ckpt = _save_checkpoint(model, tmp_path / 'ce.pth', classes)
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    path = str(tmp_path / 'img.png')
    mmcv.imwrite(image, path)
    with safe_checkpoint_loading():
        inferencer = ImageClassificationInferencer(config, pretrained=ckpt)
    result = inferencer(path)[0]
    assert result['pred_class'] in classes
    assert result['pred_scores'].shape == (len(classes), )


@pytest.mark.slow
def test_model_hub_names_and_inference_model(tmp_path):
    import gradmix_plugin  # noqa: F401 registers the model index
    names = list_models('*gradmix*')
    assert 'gradmix_resnet18_digits' in names
    assert 'ce_gradmix_resnet18_cifar10' in names
    model = get_model('gradmix_resnet18_digits')
    assert type(model).__name__ == 'ContrastiveClassifier'
    classes = ('a', 'b', 'c', 'd', 'e', 'f')
    torch.manual_seed(0)
    ckpt = _save_checkpoint(
        get_model('ce_gradmix_resnet18_cifar10'), tmp_path / 'ce.pth',
        classes)
    image = np.zeros((32, 32, 3), np.uint8)
    with safe_checkpoint_loading():
        result = inference_model(
            'ce_gradmix_resnet18_cifar10', image, pretrained=ckpt)
    assert result['pred_class'] in classes


def test_metafile_names_existing_configs():
    import yaml
    with open(osp.join(REPO, 'configs', 'metafile.yml')) as file:
        models = yaml.safe_load(file)['Models']
    for model in models:
        assert osp.isfile(osp.join(REPO, model['Config'])), model['Name']
        assert model['Name'] == osp.splitext(
            osp.basename(model['Config']))[0]
