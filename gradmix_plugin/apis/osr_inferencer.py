"""Open-set inference: "class X" or "unknown" for new images."""
import copy
import math
import os
import os.path as osp
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.model import BaseModel
from mmpretrain.apis import ImageClassificationInferencer, ModelHub, get_model
from mmpretrain.datasets import remove_transform
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample
from mmpretrain.utils import track

from ..utils.config_rules import merge_data_preprocessor
from ..utils.quiet import read_config
from .builder import load_osr_model
from .detector import DetectorMismatchError, OSRDetector

InputType = Union[str, np.ndarray, Sequence[Union[str, np.ndarray]]]

#: File extensions read from a folder (case-insensitive).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')
#: ``pred_class`` / decision of a rejected image.
UNKNOWN_CLASS = 'unknown'


class UnreadableImageError(ValueError):
    """An input image cannot be read."""


class EmptyInputError(ValueError):
    """An input folder (or list) holds no image."""


def find_test_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline of a config, wherever its test dataset keeps it.

    ``test_dataloader.dataset.pipeline`` (mmpretrain's place, and the
    plugin's configs), else the pipeline of a wrapped dataset (``dataset``
    of ``OSRDataset``, ``id_dataset`` of ``OODDataset``).

    Args:
        cfg (Config): The config.

    Returns:
        list[dict]: A copy of the pipeline.
    """
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    seen = []
    while isinstance(dataset, dict):
        seen.append(dataset.get('type'))
        if dataset.get('pipeline'):
            return copy.deepcopy(list(dataset['pipeline']))
        dataset = dataset.get('dataset', dataset.get('id_dataset'))
    raise ValueError(
        f'config {cfg.filename} has no test pipeline: '
        f'test_dataloader.dataset ({seen}) and the datasets it wraps have '
        'no `pipeline`; set test_dataloader.dataset.pipeline')


def list_images(inputs: InputType) -> list:
    """Image paths and arrays from paths, folders and arrays.

    A folder gives its image files (:data:`IMAGE_EXTENSIONS`, searched
    recursively, sorted); a file path is kept (and read later); an array
    is kept.

    Args:
        inputs (str | np.ndarray | Sequence): What to classify.

    Returns:
        list: Paths and arrays, in order.

    Raises:
        FileNotFoundError: A path does not exist.
        EmptyInputError: A folder has no image file, or nothing is given.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    images = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            images.append(item)
            continue
        item = os.fspath(item)
        if osp.isdir(item):
            found = sorted(
                str(path) for path in Path(item).rglob('*')
                if path.is_file()
                and path.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise EmptyInputError(
                    f'folder {item} holds no image file '
                    f'({", ".join(IMAGE_EXTENSIONS)}); give a folder of '
                    'images or image paths')
            images.extend(found)
        elif osp.isfile(item):
            images.append(item)
        else:
            raise FileNotFoundError(
                f'input {item} is neither an image file nor a folder')
    if not images:
        raise EmptyInputError('no input image given')
    return images


class OSRInferencer(ImageClassificationInferencer):
    """Open-set inference with a trained model and a saved detector.

    Follows mmpretrain's inferencer conventions
    (:class:`~mmpretrain.apis.ImageClassificationInferencer`): call it on
    an image path, an ``HxWx3`` array (BGR, as ``LoadImageFromFile``
    gives), a folder or a list of them, with ``batch_size``; it returns one
    dict per image:

    - ``pred_label``, ``pred_class``, ``pred_score``: the closed-set
      prediction (the classifier's softmax, or for a model without a
      classifier head the class-wise kNN of the detector's bank);
    - ``osr_score`` (higher = more known), ``threshold`` and
      ``is_unknown`` (``osr_score < threshold``);
    - ``decision``: ``pred_class``, or ``'unknown'``;
    - ``img_path`` for images read from files.

    With ``return_datasamples=True`` it returns the model's
    :class:`DataSample` objects with ``osr_score``, ``is_unknown`` and
    ``osr_threshold`` set. Files are read like the config's
    ``LoadImageFromFile`` does (BGR by default), then the config's test
    pipeline (found by :func:`find_test_pipeline`) runs.

    Args:
        model (BaseModel | str | Config): A config file, a Config, a model
            name of mmpretrain's model hub (``gradmix_resnet18_digits``) or a
            model built by ``get_model``.
        detector (str | OSRDetector): The detector, or its file
            (``tools/build_detector.py``).
        pretrained (str, optional): The checkpoint. With a detector file, it
            must be the checkpoint the detector was built from (SHA-256).
            Defaults to None.
        device (str, optional): Device. Defaults to None (mmpretrain's
            choice).
        score (str, optional): The score the caller expects; a detector
            with another is refused. Defaults to None.
        classes (Sequence[str], optional): Class names. Defaults to the
            detector's.

    Examples:
        >>> from gradmix_plugin.apis import OSRInferencer
        >>> inferencer = OSRInferencer(
        ...     'configs/gradmix_resnet18_digits.py',
        ...     detector='detector.pth',
        ...     pretrained='work_dirs/gradmix_resnet18_digits/epoch_10.pth')
        >>> inferencer('digit.png')[0]['decision']
        'unknown'
    """

    visualize_kwargs: set = {'show_dir'}

    def __init__(self,
                 model: Union[BaseModel, str, Config],
                 detector: Union[str, OSRDetector],
                 pretrained: Optional[str] = None,
                 device: Union[str, torch.device, None] = None,
                 score: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None) -> None:
        if isinstance(detector, OSRDetector):
            if score is not None and score != detector.score_name:
                raise DetectorMismatchError(
                    f"the detector uses the score '{detector.score_name}'"
                    f", not the requested '{score}'")
        else:
            detector = OSRDetector.load(
                detector, checkpoint=pretrained, score=score)
        self.detector = detector
        if not isinstance(model, BaseModel):
            if isinstance(model, Config):
                cfg = copy.deepcopy(model)
            elif str(model).endswith('.py'):
                cfg = read_config(str(model))
            else:  # a model name of mmpretrain's model hub
                cfg = ModelHub.get(str(model)).config
            merge_data_preprocessor(cfg)
            if pretrained is None:
                model = get_model(cfg, device=device)
            else:
                model = load_osr_model(cfg, pretrained, device)
        elif pretrained is not None:
            raise ValueError(
                'OSRInferencer got a built model and `pretrained`; load the '
                'weights when building the model (get_model(..., '
                'pretrained=...)) and pass the detector only')
        super().__init__(
            model,
            pretrained=False,
            device=device,
            classes=classes or detector.classes)
        self._input_keys = detector.input_keys

    def _init_pipeline(self, cfg: Config) -> Callable:
        pipeline = find_test_pipeline(cfg)
        loaders = [
            t for t in pipeline if t.get('type') == 'LoadImageFromFile'
        ]
        self._load_image = TRANSFORMS.build(
            loaders[0] if loaders else dict(type='LoadImageFromFile'))
        return Compose([
            TRANSFORMS.build(t)
            for t in remove_transform(pipeline, 'LoadImageFromFile')
        ])

    def _inputs_to_list(self, inputs: InputType) -> list:
        return list_images(inputs)

    def _load(self, item: Union[str, np.ndarray]) -> dict:
        if isinstance(item, np.ndarray):
            if item.ndim not in (2, 3):
                raise UnreadableImageError(
                    f'an input array has shape {item.shape}; give HxW or '
                    'HxWxC images')
            return dict(
                img=item, img_shape=item.shape[:2], ori_shape=item.shape[:2])
        try:
            results = self._load_image(dict(img_path=item))
        except Exception as err:
            raise UnreadableImageError(
                f'cannot read image {item} ({type(err).__name__}: {err}); '
                'remove it or give a readable image file') from err
        if results is None or results.get('img') is None:
            raise UnreadableImageError(
                f'cannot read image {item}: it is empty or not an image; '
                'remove it or give a readable image file')
        return results

    def preprocess(self, inputs: list, batch_size: int = 1) -> Iterator:
        """Load, transform and batch the inputs."""
        pipeline = Compose([self._load, self.pipeline])
        chunks = self._get_chunk_data(map(pipeline, inputs), batch_size)
        yield from map(default_collate, chunks)

    def __call__(self,
                 inputs: InputType,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Classify the inputs as a known class or unknown.

        The model runs batch by batch (with a progress bar); the detector
        then scores all outputs at once, so that the bank is prepared once
        per call, not once per batch.

        Args:
            inputs (str | np.ndarray | list): Image paths, folders or
                arrays.
            return_datasamples (bool): Return the data samples instead of
                dicts. Defaults to False.
            batch_size (int): Batch size of the model. Defaults to 1.
            show_dir (str, optional): Write the images with their decisions
                here. Defaults to None.

        Returns:
            list: One dict (or data sample) per image.
        """
        if (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                or batch_size < 1):
            raise ValueError(
                f'batch_size must be a positive integer, got {batch_size!r}')
        _, _, visualize_kwargs, _ = self._dispatch_kwargs(**kwargs)
        ori_inputs = self._inputs_to_list(inputs)
        batches = self.preprocess(ori_inputs, batch_size=batch_size)
        preds = []
        for batch in track(
                batches, 'Inference',
                total=math.ceil(len(ori_inputs) / batch_size)):
            preds.extend(self.forward(batch))
        self.decide(preds)
        visualization = self.visualize(ori_inputs, preds, **visualize_kwargs)
        return self.postprocess(preds, visualization, return_datasamples)

    def decide(self, samples: List[DataSample]) -> None:
        """Score the model outputs of the samples with the detector and set
        ``osr_score``, ``is_unknown``, ``osr_threshold``,
        ``osr_pred_label`` and ``osr_pred_score`` on each."""
        outputs = {}
        for key in self._input_keys:
            if key not in samples[0]:
                raise ValueError(
                    f'the detector reads the model output {key!r}, which '
                    f'{type(self.model).__name__} does not give; use the '
                    'model the detector was built for')
            outputs[key] = torch.stack([s.get(key) for s in samples])
        decided = self.detector.predict(outputs)
        for index, sample in enumerate(samples):
            sample.set_field(float(decided['osr_score'][index]), 'osr_score',
                             field_type='metainfo')
            sample.set_field(bool(decided['is_unknown'][index]),
                             'is_unknown', field_type='metainfo')
            sample.set_field(self.detector.threshold, 'osr_threshold',
                             field_type='metainfo')
            sample.set_field(int(decided['pred_label'][index]),
                             'osr_pred_label', field_type='metainfo')
            sample.set_field(float(decided['pred_score'][index]),
                             'osr_pred_score', field_type='metainfo')

    def visualize(self,
                  ori_inputs: list,
                  preds: List[DataSample],
                  show_dir: Optional[str] = None) -> Optional[list]:
        """Write every image with its decision drawn on it to
        ``show_dir`` (PNG, upscaled to at least 256 pixels)."""
        if show_dir is None:
            return None
        os.makedirs(show_dir, exist_ok=True)
        names = set()
        pictures = []
        for index, (item, sample) in enumerate(zip(ori_inputs, preds)):
            image = item if isinstance(item, np.ndarray) else mmcv.imread(
                item)
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            scale = max(1, int(np.ceil(256 / min(image.shape[:2]))))
            image = np.ascontiguousarray(
                cv2.resize(
                    image[..., :3], None, fx=scale, fy=scale,
                    interpolation=cv2.INTER_NEAREST))
            unknown = sample.is_unknown
            text = UNKNOWN_CLASS if unknown else self.classes[
                sample.osr_pred_label]
            colour = (0, 0, 255) if unknown else (0, 160, 0)  # BGR
            cv2.rectangle(image, (0, 0), (image.shape[1], 44), (255, 255,
                                                                 255), -1)
            cv2.putText(image, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        colour, 2)
            cv2.putText(
                image, f'score {sample.osr_score:.3g} / thr '
                f'{sample.osr_threshold:.3g}', (6, 38),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
            name = (Path(item).stem
                    if isinstance(item, str) else f'{index:06d}')
            if name in names:
                name = f'{name}_{index}'
            names.add(name)
            mmcv.imwrite(image, osp.join(show_dir, f'{name}.png'))
            pictures.append(image)
        return pictures

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Optional[list],
                    return_datasamples: bool = False) -> list:
        """One dict per image (see the class docstring), or the data
        samples."""
        if return_datasamples:
            return preds
        results = []
        for sample in preds:
            label = int(sample.osr_pred_label)
            pred_class = self.classes[label] if self.classes else str(label)
            result = dict(
                pred_label=label,
                pred_class=pred_class,
                pred_score=float(sample.osr_pred_score),
                osr_score=float(sample.osr_score),
                threshold=float(sample.osr_threshold),
                is_unknown=bool(sample.is_unknown),
                decision=UNKNOWN_CLASS if sample.is_unknown else pred_class)
            if sample.get('img_path') is not None:
                result['img_path'] = sample.img_path
            results.append(result)
        return results
