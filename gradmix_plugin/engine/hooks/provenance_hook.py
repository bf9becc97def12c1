from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from ...utils.provenance import (
    check_class_names,
    collect_provenance,
    recorded_class_names,
)


def _names(dataset) -> List[str]:
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    return [str(name) for name in classes or ()]


def _is_osr(metainfo: Optional[dict]) -> bool:
    """Whether the data are the known classes of an ``OSRDataset`` (the
    names of an OSR subset and those of a whole dataset are not compared:
    e.g. contrastive training on every class, evaluation on the known
    ones)."""
    return 'known_class_ids' in (metainfo or {})


@HOOKS.register_module()
class ProvenanceHook(Hook):
    """Record where a checkpoint comes from in ``meta['provenance']``, and
    compare the class names of every dataset used with it.

    The record (:func:`gradmix_plugin.utils.provenance.collect_provenance`
    of the training set: config file, dataset type and root, OSR protocol,
    split and class lists, seed, world size, plugin and library versions,
    and the training set's ``class_names`` in label order) lets testing
    and ``--resume`` refuse a config that describes other data than the
    checkpoint was trained on.

    Class names are compared by name, label by label
    (:func:`~gradmix_plugin.utils.provenance.check_class_names`): before
    training, the validation set and the kNN bank (``OSRBankHook``) against
    the training set; before testing or validating a loaded checkpoint, the
    evaluated set and the bank against the checkpoint's training set. A
    missing or extra class folder, which shifts every later label while
    the number of classes may still match, is refused (a warning with the
    top-level config key ``allow_mismatch = True``). The OSR runner adds
    this hook to every config.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._record: Optional[dict] = None
        self._loaded_names: List[str] = []
        self._loaded_osr = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the record to the checkpoint's meta."""
        if self._record is None:
            self._record = collect_provenance(runner.cfg, 'train_dataloader')
            self._record['class_names'] = _names(
                runner.train_dataloader.dataset)
        checkpoint.setdefault('meta', {})['provenance'] = dict(self._record)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the class names the checkpoint was trained with."""
        self._loaded_names = recorded_class_names(checkpoint)
        self._loaded_osr = _is_osr(
            (checkpoint.get('meta') or {}).get('dataset_meta'))

    def before_train(self, runner) -> None:
        """Validation set and bank against the training set (and the
        training set against a resumed checkpoint's)."""
        dataset = runner.train_dataloader.dataset
        names, osr = _names(dataset), _is_osr(dataset.metainfo)
        if getattr(runner, '_resume', False):  # not load_from: fine-tuning
            if osr == self._loaded_osr:
                self._check(runner, self._loaded_names, names,
                            "the resumed checkpoint's training set",
                            'the training set')
        self._check_others(runner, names, osr, 'the training set',
                           '_val_loop', 'the validation set')

    def before_val(self, runner) -> None:
        """Outside training: the validation set and the bank against the
        loaded checkpoint's training set."""
        if getattr(runner, '_train_loop', None) is None or not isinstance(
                runner._train_loop, BaseLoop):
            self._check_others(runner, self._loaded_names,
                               self._loaded_osr,
                               "the checkpoint's training set", '_val_loop',
                               'the validation set')

    def before_test(self, runner) -> None:
        """The test set and the bank against the loaded checkpoint's
        training set."""
        self._check_others(runner, self._loaded_names, self._loaded_osr,
                           "the checkpoint's training set", '_test_loop',
                           'the test set')

    def _check_others(self, runner, names: List[str], osr: bool, what: str,
                      loop_name: str, loop_what: str) -> None:
        if not names:
            return
        datasets = []
        loop = getattr(runner, loop_name, None)
        if isinstance(loop, BaseLoop):
            datasets.append((loop.dataloader.dataset, loop_what))
        from .osr_bank_hook import OSRBankHook
        for hook in runner.hooks:
            loader = getattr(hook, '_loader', None)
            if isinstance(hook, OSRBankHook) and loader is not None:
                datasets.append(
                    (loader.dataset, 'the kNN bank of OSRBankHook'))
        for dataset, dataset_what in datasets:
            if _is_osr(getattr(dataset, 'metainfo', None)) == osr:
                self._check(runner, names, _names(dataset), what,
                            dataset_what)

    @staticmethod
    def _check(runner, expected: List[str], actual: List[str],
               expected_what: str, actual_what: str) -> None:
        check_class_names(expected, actual, expected_what, actual_what,
                          bool(runner.cfg.get('allow_mismatch', False)))
