from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...utils.provenance import collect_provenance


@HOOKS.register_module()
class ProvenanceHook(Hook):
    """Record where a checkpoint comes from in ``meta['provenance']``.

    The record (:func:`gradmix_plugin.utils.provenance.collect_provenance`
    of the training set: config file, dataset type and root, OSR protocol,
    split and class lists, seed, world size, plugin and library versions)
    lets ``tools/test.py`` and ``tools/train.py --resume`` refuse a config
    that describes other data than the checkpoint was trained on.
    ``tools/train.py`` adds this hook to every config.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._record: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the record to the checkpoint's meta."""
        if self._record is None:
            self._record = collect_provenance(runner.cfg, 'train_dataloader')
        checkpoint.setdefault('meta', {})['provenance'] = dict(self._record)
